"""The provider prompt-cache ledger: tokens written and read from the providers' own prompt caches, and the net
dollars that saved (after the write premium), fed by `wrap(..., prompt_cache=True)` and `@prompt_cached`."""

from __future__ import annotations

import copy
import threading
import warnings
from dataclasses import dataclass, field

from agentcache.usage import Usage

__all__ = ["PromptCacheLedger", "PromptCacheStats", "PromptCacheWarning", "ledger", "uncached_cost"]


class PromptCacheWarning(UserWarning):
    """A prompt-caching problem that costs money silently: a block too short to cache, or a busted prefix."""


@dataclass
class PromptCacheStats:
    """Totals over every recorded call: tokens by kind and dollars (actual, without caching, net saved)."""

    calls: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_usd: float = 0.0
    uncached_cost_usd: float = 0.0
    busted_prefixes: int = 0
    by_model: dict[str, int] = field(default_factory=dict)

    @property
    def net_saved_usd(self) -> float:
        """Dollars saved by provider caching after paying the write premium (negative when it cost more)."""
        return self.uncached_cost_usd - self.cost_usd

    @property
    def hit_ratio(self) -> float:
        """Share of prompt tokens read from the provider cache."""
        total = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / total if total else 0.0


def uncached_cost(usage: Usage) -> float:
    """What `usage` would have cost with no provider caching: every prompt token at the plain input price."""
    plain = Usage(
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        model=usage.model,
    )
    return plain.cost()


class PromptCacheLedger:
    """Thread-safe accumulator of provider prompt-cache usage, with busted-prefix detection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = PromptCacheStats()
        self._last: dict[str, tuple[str, int]] = {}  # stream -> (prefix digest, cache_read_tokens)

    def record(self, usage: Usage, *, stream: str = "", digest: str = "") -> None:
        """Add one call's usage; `stream` names a series of calls sharing a prefix (e.g. model + call site).

        Warns with `PromptCacheWarning` when the previous call of `stream` read from the provider cache and
        this one reads nothing but writes: the prefix changed (different `digest`) or its cache expired.
        """
        busted = ""
        with self._lock:
            s = self._stats
            s.calls += 1
            s.input_tokens += usage.input_tokens
            s.cache_read_tokens += usage.cache_read_tokens
            s.cache_write_tokens += usage.cache_write_tokens
            s.cache_write_1h_tokens += usage.cache_write_1h_tokens
            s.cost_usd += usage.cost()
            s.uncached_cost_usd += uncached_cost(usage)
            if usage.model:
                s.by_model[usage.model] = s.by_model.get(usage.model, 0) + 1
            previous = self._last.get(stream)
            if previous is not None and previous[1] > 0 and usage.cache_read_tokens == 0 and usage.cache_write_tokens:
                s.busted_prefixes += 1
                busted = "changed" if digest and previous[0] and digest != previous[0] else "expired or changed"
            self._last[stream] = (digest, usage.cache_read_tokens)
        if busted:
            warnings.warn(
                f"prompt caching: the prefix of {stream or 'these calls'} used to be read from the provider cache"
                f" but was written again ({usage.cache_write_tokens} tokens at the write premium): it {busted}"
                " (a timestamp or id in the system prompt?)",
                PromptCacheWarning,
                stacklevel=4,
            )

    def snapshot(self) -> PromptCacheStats:
        """A copy of the totals."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def reset(self) -> None:
        """Forget every recorded call."""
        with self._lock:
            self._stats = PromptCacheStats()
            self._last.clear()


ledger = PromptCacheLedger()
"""The process-wide ledger `wrap(..., prompt_cache=True)` records into (read it with `ledger.snapshot()`)."""
