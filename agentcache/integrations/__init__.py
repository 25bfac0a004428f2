"""Cached provider clients: `agentcache.wrap(OpenAI())`, `agentcache.wrap(Anthropic(), prompt_cache=True)`.

Nothing here imports an SDK: `openai` and `anthropic` are imported only when a client of theirs is wrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from agentcache.durations import TTL, parse_ttl
from agentcache.errors import ConfigurationError
from agentcache.integrations._hits import is_cache_hit
from agentcache.integrations._semantic import semantic_options
from agentcache.integrations._wrap import WrapOptions, core_of
from agentcache.keys.encoding import validate_namespace

__all__ = ["core_of", "is_cache_hit", "wrap"]

C = TypeVar("C")


def wrap(
    client: C,
    *,
    semantic: bool | float | Mapping[str, Any] | None = None,
    prompt_cache: bool | Literal["5m", "1h"] = False,
    namespace: str | None = None,
    ttl: TTL = None,
    backend: Any = None,
) -> C:
    """Return a cached copy of an OpenAI or Anthropic SDK client (same class, same connection pool).

    Args:
        client: `openai.OpenAI`, `openai.AsyncOpenAI`, `anthropic.Anthropic` or `anthropic.AsyncAnthropic`.
        semantic: paraphrase hits for `chat.completions.create`, `responses.create` and `messages.create`
            through `@semantic_cached`: `True` (default threshold), a similarity threshold (`0.9`), or a dict
            of `semantic_cached` options (`threshold`, `embedder`, `guards`, `verify`, ...). The exact entry
            is read first; the query is the last user message, and only entries with the same model, system
            prompt, tools, earlier turns, other parameters and namespace can match. Non-streamed calls only
            (streamed calls keep the exact cache). `agentcache.last_semantic_hit()` shows the similarity.
        prompt_cache: add provider prompt-caching hints: Anthropic `cache_control` breakpoints (`True`/`"5m"`,
            or `"1h"`), OpenAI `prompt_cache_key`.
        namespace: the namespace of this client's entries (default: the current `agentcache.namespace()`).
        ttl: entry lifetime (seconds, timedelta or ``"1h"``); default: the configured TTL.
        backend: a backend URL, backend object or `agentcache.Cache`; default: the configured store.

    Hits are the SDK's own typed objects (streams replay through the SDK's `Stream` classes);
    `agentcache.is_cache_hit(response)` tells whether one came from the cache.

    Example::

        client = agentcache.wrap(OpenAI())
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    """
    from agentcache.engine.cache import check_spec

    check_spec(backend)
    options = WrapOptions(
        namespace=validate_namespace(namespace) if namespace is not None else None,
        ttl=parse_ttl(ttl),
        backend=backend,
        prompt_cache=prompt_cache,
        semantic=semantic_options(semantic),
    )
    module = type(client).__module__.split(".", 1)[0]
    if module == "openai":
        from agentcache.integrations.openai import wrap_openai

        wrapped: C = wrap_openai(client, options)
        return wrapped
    if module == "anthropic":
        from agentcache.integrations.anthropic import wrap_anthropic

        wrapped = wrap_anthropic(client, options)
        return wrapped
    raise ConfigurationError(f"wrap() supports openai and anthropic clients, not {type(client).__qualname__}")
