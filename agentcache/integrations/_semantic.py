"""`wrap(client, semantic=...)`: paraphrase hits for the chat, responses and messages endpoints.

Each semantic endpoint of a wrapped client gets one `SemanticLayer` (the engine layer of `@semantic_cached`:
exact read first, then the embedded query searched in its partition, the checks, the store of answer and vector
record), keyed by the request's fields, so the decorator's query/partition split applies unchanged: the query is
the last user message (`messages`, or the Responses API `input`), the partition is everything else (model,
system prompt, tools, earlier turns, other parameters, the endpoint URL and the namespace). A miss runs the real
SDK call, returns the SDK's own object and stores its JSON; a hit returns the stored JSON, which the wrapper
rebuilds into the SDK's typed object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agentcache.errors import ConfigurationError

__all__ = ["SEMANTIC_QUERY", "Pending", "SemanticEndpoint", "answer_text", "semantic_options"]

#: The endpoints served semantically, and the request field holding the query.
SEMANTIC_QUERY = {"chat.completions.create": "messages", "responses.create": "input", "messages.create": "messages"}

_FIXED = ("query", "key", "name")  # the wrapper decides these


def semantic_options(value: Any) -> dict[str, Any] | None:
    """Normalize `wrap(semantic=...)`: `None`/`False` off, `True` defaults, a float threshold, or a dict of options.

    The dict takes the options of `@semantic_cached` (`threshold`, `embedder`, `guards`, `verify`, `judge`,
    `max_wrong`, `verify_sample`, `compare`, `ttl`, `tags`, `version`, `single_flight`, `cache_if`, ...) except
    `query`, `key` and `name`, which the wrapper sets.
    """
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"threshold": float(value)}
    if isinstance(value, Mapping):
        options = dict(value)
        fixed = sorted(set(_FIXED).intersection(options))
        if fixed:
            raise ConfigurationError(f"wrap(semantic={{...}}) cannot set {fixed}: the wrapper decides them")
        return options
    raise ConfigurationError(
        f"wrap(semantic=...) takes True, a similarity threshold or a dict of semantic_cached options, "
        f"not {type(value).__name__}"
    )


class Pending:
    """The real SDK call behind one semantic lookup; after a miss, `result` holds the SDK's own object."""

    __slots__ = ("kwargs", "method", "result")

    def __init__(self, method: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self.method = method
        self.kwargs = kwargs
        self.result: Any = None

    def run(self) -> Any:
        """Call the SDK; return the JSON to store (`None`: not storable)."""
        self.result = self.method(**self.kwargs)
        return _dump(self.result)

    async def arun(self) -> Any:
        """Await the SDK; return the JSON to store (`None`: not storable)."""
        self.result = await self.method(**self.kwargs)
        return _dump(self.result)


def _dump(result: Any) -> Any:
    try:
        return result.model_dump(mode="json", exclude_unset=True, warnings=False)
    except Exception:  # an odd SDK object: returned to the caller, not stored
        return None


def answer_text(body: Any) -> Any:
    """The answer in a stored chat/responses/messages JSON body (what shadow verification compares).

    Response ids, timestamps and usage differ between two real calls; the text the user reads is what must
    agree. Bodies of other shapes are compared whole.
    """
    if not isinstance(body, Mapping):
        return body
    if isinstance(body.get("choices"), list):  # chat.completions
        return [(c.get("message") or {}).get("content") for c in body["choices"] if isinstance(c, Mapping)]
    if isinstance(body.get("output"), list):  # responses
        return [
            part.get("text")
            for item in body["output"]
            if isinstance(item, Mapping)
            for part in item.get("content") or []
            if isinstance(part, Mapping)
        ]
    if isinstance(body.get("content"), list):  # anthropic messages
        return [part.get("text") for part in body["content"] if isinstance(part, Mapping)]
    return body


def _same_answer(cached: Any, fresh: Any) -> bool:
    from agentcache.semantic.checks import normalize_answer

    return bool(normalize_answer(answer_text(cached)) == normalize_answer(answer_text(fresh)))


class SemanticEndpoint:
    """The semantic lookup of one wrapped endpoint, on its own engine layer."""

    def __init__(self, name: str, path: str, options: Mapping[str, Any], *, is_async: bool) -> None:
        from agentcache.decorators.semantic import LAYER, SemanticLayer
        from agentcache.engine.layer import make_policy
        from agentcache.semantic.budget import DEFAULT_MAX_WRONG
        from agentcache.semantic.checks import HitChecks

        opts = dict(options)
        user_check: Callable[[Any], bool] | None = opts.pop("cache_if", None)

        def storable(body: Any) -> bool:
            return body is not None and (user_check is None or user_check(body))

        semantic = {k: opts.pop(k) for k in _SEMANTIC_OPTIONS if k in opts}
        max_wrong = semantic.pop("max_wrong", None)
        checks = HitChecks(
            name,
            judge=semantic.pop("judge", None),
            max_wrong=DEFAULT_MAX_WRONG if max_wrong is None else max_wrong,
            verify_sample=semantic.pop("verify_sample", 0.0),
            compare=semantic.pop("compare", _same_answer),  # shadow checks compare the answer text
        )
        self.query = SEMANTIC_QUERY[path]
        policy = make_policy(LAYER, name=name, cache_if=storable, track_usage=True, **opts)
        layer = SemanticLayer.from_policy(policy, name)
        assert isinstance(layer, SemanticLayer)
        layer.setup_semantic(
            threshold=semantic.get("threshold"),
            query=self.query,
            embedder=semantic.get("embedder"),
            guards=semantic.get("guards"),
            verify=semantic.get("verify"),
            checks=checks,
        )
        self.layer = layer

    def applies(self, fields: Mapping[str, Any]) -> bool:
        """Whether this request has a query the semantic layer can embed (else it takes the exact path)."""
        from agentcache.semantic.query import split_query

        try:
            split_query(fields, self.query)
        except ConfigurationError:
            return False
        return True

    def _call(self, fields: Mapping[str, Any]) -> Any:
        layer = self.layer
        ns = layer.namespace_for((), {})
        key_fields = dict(fields)
        return layer.call_at(layer.key_in(ns, key_fields), ns, key_fields, (), {})

    def call(
        self, method: Callable[..., Any], kwargs: dict[str, Any], fields: Mapping[str, Any]
    ) -> tuple[Any, Pending]:
        """Run the blocking lookup; returns `(stored JSON or None, the pending call)`."""
        from agentcache.decorators.semantic import serve

        pending = Pending(method, kwargs)
        body = serve(self.layer, self._call(fields), pending.run, lambda: self.call(method, kwargs, fields)[0])
        return body, pending

    async def acall(
        self, method: Callable[..., Any], kwargs: dict[str, Any], fields: Mapping[str, Any]
    ) -> tuple[Any, Pending]:
        """Run the awaitable lookup; returns `(stored JSON or None, the pending call)`."""
        from agentcache.decorators.semantic import aserve

        pending = Pending(method, kwargs)

        async def retry() -> Any:
            return (await self.acall(method, kwargs, fields))[0]

        body = await aserve(self.layer, self._call(fields), pending.arun, retry)
        return body, pending


_SEMANTIC_OPTIONS = ("threshold", "embedder", "guards", "verify", "judge", "max_wrong", "verify_sample", "compare")
