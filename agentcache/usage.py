"""Token usage of an LLM result, normalized across providers, and what it costs.

`extract_usage(result)` reads the usage block of an OpenAI chat/responses result, an Anthropic message, or a
plain dict of either shape (SDK objects and dicts alike) and returns one `Usage` record. `Usage.cost()` prices it
with the built-in table (`PRICES`, dollars per million tokens), which `set_prices()` overrides or extends.

Anthropic reports `input_tokens` *excluding* cache reads and writes; OpenAI reports `prompt_tokens` *including*
`cached_tokens`. `Usage.input_tokens` always means uncached input, so the two providers add up the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PRICES", "Price", "Usage", "extract_usage", "price_for", "set_prices"]


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens: uncached input, output, cache read and cache write (5 min / 1 h)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None

    def read_rate(self) -> float:
        """Price of a cached input token (defaults to 10 % of input, the providers' usual discount)."""
        return self.input * 0.1 if self.cache_read is None else self.cache_read

    def write_rate(self, ttl: str = "5m") -> float:
        """Price of a token written to the provider cache (1.25x input for 5 min, 2x for 1 h by default)."""
        if ttl == "1h":
            return self.input * 2.0 if self.cache_write_1h is None else self.cache_write_1h
        return self.input * 1.25 if self.cache_write_5m is None else self.cache_write_5m


def _p(inp: float, out: float, cached: float | None = None) -> Price:
    return Price(inp, out, cached)


# Public list prices, USD per 1M tokens. Override with `agentcache.set_prices({...})` or `configure(prices=...)`.
PRICES: dict[str, Price] = {
    "gpt-5": _p(1.25, 10.0, 0.125),
    "gpt-5-mini": _p(0.25, 2.0, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.0, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "o3": _p(2.0, 8.0, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "gpt-4-turbo": _p(10.0, 30.0),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    "text-embedding-ada-002": _p(0.10, 0.0),
    "claude-opus-4-1": _p(15.0, 75.0),
    "claude-opus-4": _p(15.0, 75.0),
    "claude-sonnet-4-5": _p(3.0, 15.0),
    "claude-sonnet-4": _p(3.0, 15.0),
    "claude-3-7-sonnet": _p(3.0, 15.0),
    "claude-3-5-sonnet": _p(3.0, 15.0),
    "claude-haiku-4-5": _p(1.0, 5.0),
    "claude-3-5-haiku": _p(0.80, 4.0),
    "claude-3-haiku": _p(0.25, 1.25),
}

_lock = threading.Lock()
_resolved: dict[str, Price | None] = {}


def set_prices(prices: Mapping[str, Price | tuple[float, float] | Mapping[str, float]]) -> None:
    """Add or override model prices (USD per million tokens).

    Accepts `Price` objects, `(input, output)` tuples, or mappings with the `Price` field names::

        agentcache.set_prices({"my-finetune": (3.0, 12.0), "gpt-4o": {"input": 2.0, "output": 8.0}})
    """
    with _lock:
        for model, value in prices.items():
            if isinstance(value, Price):
                PRICES[model] = value
            elif isinstance(value, tuple):
                PRICES[model] = Price(float(value[0]), float(value[1]))
            else:
                PRICES[model] = Price(**{k: float(v) for k, v in value.items()})
        _resolved.clear()


def price_for(model: str | None) -> Price | None:
    """The price of `model`: an exact entry, else the longest table name it starts with (dated snapshots)."""
    if not model:
        return None
    try:
        return _resolved[model]
    except KeyError:
        pass
    name = model.rsplit("/", 1)[-1]  # "openai/gpt-4o" and router prefixes
    found = PRICES.get(name)
    if found is None:
        best = ""
        for candidate in PRICES:
            if name.startswith(candidate) and len(candidate) > len(best):
                best = candidate
        found = PRICES[best] if best else None
    with _lock:
        _resolved[model] = found
    return found


@dataclass(frozen=True, slots=True)
class Usage:
    """One call's tokens, normalized: `input_tokens` excludes cache reads and writes on every provider."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        """Every token billed for the call."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def cost(self, price: Price | None = None) -> float:
        """Dollars this call cost at `price` (default: the table price of `self.model`; 0.0 if unknown)."""
        p = price or price_for(self.model)
        if p is None:
            return 0.0
        write_5m = self.cache_write_tokens - self.cache_write_1h_tokens
        dollars = (
            self.input_tokens * p.input
            + self.output_tokens * p.output
            + self.cache_read_tokens * p.read_rate()
            + write_5m * p.write_rate("5m")
            + self.cache_write_1h_tokens * p.write_rate("1h")
        )
        return dollars / 1_000_000

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (zero fields omitted)."""
        out: dict[str, Any] = {k: v for k, v in _fields(self).items() if v}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Inverse of `to_dict`."""
        return cls(**{k: data[k] for k in _FIELD_NAMES if k in data})


_FIELD_NAMES = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "model",
)


def _fields(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "model": u.model,
    }


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def extract_usage(result: Any) -> Usage | None:
    """Return the normalized usage of an LLM result (SDK object or dict), or `None` when it has none.

    Understands OpenAI chat completions (`prompt_tokens`, `completion_tokens`,
    `prompt_tokens_details.cached_tokens`), the OpenAI Responses API (`input_tokens`, `output_tokens`,
    `input_tokens_details.cached_tokens`), embeddings (`prompt_tokens` only), and Anthropic messages
    (`input_tokens`, `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`,
    `cache_creation.ephemeral_1h_input_tokens`).
    """
    usage = _get(result, "usage")
    if usage is None:
        return None
    model = _get(result, "model")
    model = model if isinstance(model, str) else None
    if _get(usage, "prompt_tokens") is not None:  # OpenAI chat completions / embeddings
        cached = _int(_get(_get(usage, "prompt_tokens_details") or {}, "cached_tokens"))
        return Usage(
            input_tokens=max(_int(_get(usage, "prompt_tokens")) - cached, 0),
            output_tokens=_int(_get(usage, "completion_tokens")),
            cache_read_tokens=cached,
            model=model,
        )
    if _get(usage, "input_tokens") is None:
        return None
    details = _get(usage, "input_tokens_details")
    if details is not None:  # OpenAI Responses API: input_tokens includes cached_tokens
        cached = _int(_get(details, "cached_tokens"))
        return Usage(
            input_tokens=max(_int(_get(usage, "input_tokens")) - cached, 0),
            output_tokens=_int(_get(usage, "output_tokens")),
            cache_read_tokens=cached,
            model=model,
        )
    creation = _get(usage, "cache_creation")  # Anthropic: input_tokens excludes cache reads and writes
    write_1h = _int(_get(creation, "ephemeral_1h_input_tokens")) if creation is not None else 0
    return Usage(
        input_tokens=_int(_get(usage, "input_tokens")),
        output_tokens=_int(_get(usage, "output_tokens")),
        cache_read_tokens=_int(_get(usage, "cache_read_input_tokens")),
        cache_write_tokens=_int(_get(usage, "cache_creation_input_tokens")),
        cache_write_1h_tokens=write_1h,
        model=model,
    )
