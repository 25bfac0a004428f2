"""Provider prompt caching: automatic `cache_control` breakpoints, and honest accounting of what they save.

Anthropic caches a prompt *prefix* only up to a `cache_control` breakpoint, at most 4 breakpoints per request,
and only when the prefix reaches the model's minimum cacheable length; a shorter prefix is silently not cached.
`place_anthropic_breakpoints(request)` returns a copy of the request with breakpoints after the tools, the
system prompt, the last long stable block of the conversation and the conversation so far (the turn before
the newest), skipping (and warning about) every candidate below the minimum.

OpenAI caches prefixes automatically; `prepare_openai_request(request)` adds a `prompt_cache_key` derived from
the stable prefix (tools + leading system/developer messages) so requests sharing it are routed together.

`PromptCacheLedger.record(usage)` turns each call's normalized `agentcache.usage.Usage` into money: the actual
cost (cache writes at 1.25x / 2x input, reads at 0.1x) against the cost without provider caching, so the net
saving can be negative. It warns when a prefix that used to be read is suddenly written again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar, overload

from agentcache.stats.prompt_ledger import PromptCacheLedger, PromptCacheStats, PromptCacheWarning, ledger
from agentcache.usage import extract_usage, price_for

__all__ = [
    "MAX_BREAKPOINTS",
    "BreakpointReport",
    "PromptCacheLedger",
    "PromptCacheStats",
    "PromptCacheWarning",
    "approx_tokens",
    "ledger",
    "min_cacheable_tokens",
    "place_anthropic_breakpoints",
    "prepare_openai_request",
    "prefix_digest",
    "prompt_cached",
]

P = ParamSpec("P")
R = TypeVar("R")

MAX_BREAKPOINTS = 4
CacheTTL = Literal["5m", "1h"]

# Minimum cacheable prefix, in tokens, from Anthropic's prompt-caching documentation; first match wins.
_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-haiku", 2048),
)
_DEFAULT_MINIMUM = 1024  # Sonnet and Opus models


def approx_tokens(text: str) -> int:
    """Approximate token count of `text` (about 4 characters per token for English and JSON)."""
    return math.ceil(len(text) / 4)


def min_cacheable_tokens(model: str) -> int:
    """The smallest prefix, in tokens, that `model` caches (1024 Sonnet/Opus, 2048 Haiku 3.x, 4096 where set)."""
    name = model.rsplit("/", 1)[-1]
    for prefix, minimum in _MINIMUMS:
        if name.startswith(prefix):
            return minimum
    return _DEFAULT_MINIMUM


@dataclass(frozen=True, slots=True)
class BreakpointReport:
    """Where breakpoints were placed (`placed`) and which candidates were too short (`too_short`).

    Each entry is `(label, prefix_tokens)`; labels are `tools`, `system`, `message[i]` or `message[i].block[j]`.
    """

    placed: tuple[tuple[str, int], ...]
    too_short: tuple[tuple[str, int], ...]
    minimum: int
    digest: str


def _block_tokens(block: Any) -> int:
    if isinstance(block, Mapping) and isinstance(block.get("text"), str):
        return approx_tokens(block["text"])
    return approx_tokens(json.dumps(block, sort_keys=True, default=str))


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(block) for block in content]


def _has_control(block: Any) -> bool:
    return isinstance(block, Mapping) and "cache_control" in block


def prefix_digest(request: Mapping[str, Any]) -> str:
    """A short digest of the stable prefix (model, tools, system): equal digests mean the same cacheable head."""
    head = {k: request.get(k) for k in ("model", "tools", "system")}
    raw = json.dumps(head, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def place_anthropic_breakpoints(
    request: Mapping[str, Any], *, ttl: CacheTTL = "5m", warn: bool = True
) -> tuple[dict[str, Any], BreakpointReport]:
    """Return a copy of an Anthropic `messages.create` request with `cache_control` breakpoints added.

    Candidates, in prompt order: the end of `tools`, the end of `system`, the last message block that is long
    on its own (a document), and the end of the turn before the newest one. A candidate whose prefix is below
    `min_cacheable_tokens(model)` is skipped and reported (with a `PromptCacheWarning` when `warn`); existing
    breakpoints are kept and count against the limit of 4. The caller's objects are never mutated.
    """
    out: dict[str, Any] = dict(request)
    model = str(request.get("model", ""))
    minimum = min_cacheable_tokens(model)
    control: dict[str, Any] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}

    tools = [dict(t) for t in request.get("tools") or []]
    system = _as_blocks(request["system"]) if request.get("system") else []
    messages = [dict(m) for m in request.get("messages") or []]
    for message in messages:
        message["content"] = _as_blocks(message.get("content") or [])
    existing = sum(_has_control(b) for b in (*tools, *system)) + sum(
        _has_control(b) for m in messages for b in m["content"]
    )

    # (label, cumulative prefix tokens, the block that would carry the breakpoint)
    candidates: list[tuple[str, int, dict[str, Any]]] = []
    running = sum(_block_tokens(t) for t in tools)
    if tools:
        candidates.append(("tools", running, tools[-1]))
    running += sum(_block_tokens(b) for b in system)
    if system:
        candidates.append(("system", running, system[-1]))
    document: tuple[str, int, dict[str, Any]] | None = None
    turn: tuple[str, int, dict[str, Any]] | None = None
    for i, message in enumerate(messages):
        for j, block in enumerate(message["content"]):
            tokens = _block_tokens(block)
            running += tokens
            is_newest = i == len(messages) - 1 and j == len(message["content"]) - 1
            if tokens >= minimum and not is_newest:
                document = (f"message[{i}].block[{j}]", running, block)
        if i == len(messages) - 2 and message["content"]:
            turn = (f"message[{i}]", running, message["content"][-1])
    for extra in (document, turn):
        if extra is not None and all(extra[2] is not c[2] for c in candidates):
            candidates.append(extra)

    placed: list[tuple[str, int]] = []
    too_short: list[tuple[str, int]] = []
    budget = MAX_BREAKPOINTS - existing
    eligible = []
    for label, tokens, block in candidates:
        if _has_control(block):
            continue
        if tokens < minimum:
            too_short.append((label, tokens))
        else:
            eligible.append((label, tokens, block))
    # Keep the stable heads (tools, system) and the latest candidates: a later breakpoint covers more.
    if len(eligible) > max(budget, 0):
        heads = [c for c in eligible if c[0] in ("tools", "system")]
        rest = [c for c in eligible if c[0] not in ("tools", "system")]
        eligible = (heads + rest[len(rest) - max(budget - len(heads), 0) :])[: max(budget, 0)]
    for label, tokens, block in eligible:
        block["cache_control"] = dict(control)
        placed.append((label, tokens))

    if tools:
        out["tools"] = tools
    if system:
        out["system"] = system
    if messages:
        out["messages"] = messages
    report = BreakpointReport(tuple(placed), tuple(too_short), minimum, prefix_digest(request))
    if warn and too_short:
        names = ", ".join(f"{label} ({tokens} tokens)" for label, tokens in too_short)
        warnings.warn(
            f"prompt caching: {names} below the {minimum}-token minimum of {model!r}; not cached",
            PromptCacheWarning,
            stacklevel=3,
        )
    return out, report


def prepare_openai_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of an OpenAI chat/responses request with a `prompt_cache_key` from its stable prefix.

    The key digests the tools and the leading system/developer messages, so calls sharing that prefix land on
    the same provider cache. An explicit `prompt_cache_key` is kept.
    """
    out = dict(request)
    if out.get("prompt_cache_key"):
        return out
    messages = request.get("messages") or request.get("input") or []
    head = []
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, Mapping) or message.get("role") not in ("system", "developer"):
                break
            head.append(message)
    stable = {"tools": request.get("tools"), "head": head, "instructions": request.get("instructions")}
    raw = json.dumps(stable, sort_keys=True, default=str).encode()
    out["prompt_cache_key"] = "ac-" + hashlib.sha256(raw).hexdigest()[:24]
    return out


def has_price(model: str | None) -> bool:
    """Whether the price table knows `model` (money figures are 0.0 otherwise)."""
    return price_for(model) is not None


_PROMPT_FIELDS = ("model", "system", "tools", "messages")


@overload
def prompt_cached(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def prompt_cached(*, ttl: CacheTTL = "5m") -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def prompt_cached(func: Callable[..., Any] | None = None, /, *, ttl: CacheTTL = "5m") -> Any:
    """Place Anthropic `cache_control` breakpoints on the arguments of a function that calls the SDK.

    The function takes some of `model`, `system`, `tools` and `messages` (by those names) and passes them to
    `messages.create`; the decorator rewrites them with `place_anthropic_breakpoints` before each call and
    records the result's usage in `ledger` (write/read tokens, net dollars saved). Sync and async functions.

    Example::

        @agentcache.decorators.prompt.prompt_cached(ttl="1h")
        def ask(system: str, messages: list[dict], model: str = "claude-sonnet-4-6") -> Message:
            return claude.messages.create(model=model, system=system, messages=messages, max_tokens=512)
    """

    def decorate(f: Callable[..., Any]) -> Any:
        signature = inspect.signature(f)

        def rewrite(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments, str]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = {k: bound.arguments[k] for k in _PROMPT_FIELDS if bound.arguments.get(k) is not None}
            placed, report = place_anthropic_breakpoints(given, ttl=ttl)
            for name in given:
                bound.arguments[name] = placed[name]
            return bound, report.digest

        def account(result: Any, digest: str) -> None:
            usage = extract_usage(result)
            if usage is not None:
                ledger.record(usage, stream=f"{f.__module__}.{f.__qualname__}", digest=digest)

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def async_face(*args: Any, **kwargs: Any) -> Any:
                bound, digest = rewrite(args, kwargs)
                result = await f(*bound.args, **bound.kwargs)
                account(result, digest)
                return result

            return async_face

        @functools.wraps(f)
        def sync_face(*args: Any, **kwargs: Any) -> Any:
            bound, digest = rewrite(args, kwargs)
            result = f(*bound.args, **bound.kwargs)
            account(result, digest)
            return result

        return sync_face

    return decorate if func is None else decorate(func)
