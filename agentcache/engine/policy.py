"""A cache layer's options (`Policy`), validated once: at decoration time for decorators, at construction for
`CacheLayer`, so a bad option is an error at start-up, never one per call."""

from __future__ import annotations

from collections.abc import Callable, Collection

from agentcache._record import Frozen
from agentcache.durations import TTL, parse_ttl
from agentcache.engine import cache as _cache
from agentcache.errors import ConfigurationError
from agentcache.keys.encoding import validate_namespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Policy", "make_policy"]


class Policy(Frozen):
    """A layer's options, validated once (at decoration time for decorators)."""

    __match_args__ = (
        "layer",
        "ttl",
        "ttl_set",
        "tags",
        "namespace",
        "key",
        "ignore",
        "drop",
        "drop_when_streaming",
        "backend",
        "cache_if",
        "version",
        "name",
        "single_flight",
        "lock_ttl",
        "lock_wait",
        "track_usage",
    )
    __slots__ = __match_args__

    layer: str
    ttl: float | None
    ttl_set: bool
    tags: tuple[str, ...] | Callable[..., Collection[str]]
    namespace: str | Callable[..., str] | None
    key: Callable[..., object] | None
    ignore: frozenset[str]
    drop: frozenset[str]
    drop_when_streaming: frozenset[str]
    backend: Any
    cache_if: Callable[[Any], bool] | None
    version: str | None
    name: str | None
    single_flight: bool
    lock_ttl: float
    lock_wait: float
    track_usage: bool

    def __init__(
        self,
        layer: str,
        ttl: float | None = None,
        ttl_set: bool = False,
        tags: tuple[str, ...] | Callable[..., Collection[str]] = (),
        namespace: str | Callable[..., str] | None = None,
        key: Callable[..., object] | None = None,
        ignore: frozenset[str] = frozenset(),
        drop: frozenset[str] = frozenset(),
        drop_when_streaming: frozenset[str] = frozenset(),
        backend: Any = None,
        cache_if: Callable[[Any], bool] | None = None,
        version: str | None = None,
        name: str | None = None,
        single_flight: bool = True,
        lock_ttl: float = 60.0,
        lock_wait: float = 65.0,
        track_usage: bool = False,
    ) -> None:
        self._fill(
            layer,
            ttl,
            ttl_set,
            tags,
            namespace,
            key,
            ignore,
            drop,
            drop_when_streaming,
            backend,
            cache_if,
            version,
            name,
            single_flight,
            lock_ttl,
            lock_wait,
            track_usage,
        )


def make_policy(
    layer: str,
    *,
    ttl: TTL = None,
    tags: Collection[str] | Callable[..., Collection[str]] = (),
    namespace: str | Callable[..., str] | None = None,
    key: Callable[..., object] | None = None,
    ignore: Collection[str] = (),
    backend: Any = None,
    cache_if: Callable[[Any], bool] | None = None,
    version: str | int | None = None,
    name: str | None = None,
    single_flight: bool = True,
    lock_ttl: TTL = 60.0,
    drop: Collection[str] = (),
    drop_when_streaming: Collection[str] = (),
    track_usage: bool = False,
) -> Policy:
    """Validate layer options into a `Policy` (raises `ConfigurationError` with what to fix)."""
    if isinstance(tags, str) or isinstance(ignore, str):
        raise ConfigurationError("tags= and ignore= take a list of strings, e.g. tags=['search']")
    if isinstance(namespace, str):
        namespace = validate_namespace(namespace)
    _cache.check_spec(backend)  # a bad URL is an error at start-up, never one per call
    lock_seconds = parse_ttl(lock_ttl) or 60.0
    return Policy(
        layer=layer,
        ttl=parse_ttl(ttl),
        ttl_set=ttl is not None,
        tags=tags if callable(tags) else tuple(tags),
        namespace=namespace,
        key=key,
        ignore=frozenset(ignore),
        drop=frozenset(drop),
        drop_when_streaming=frozenset(drop_when_streaming),
        backend=backend,
        cache_if=cache_if,
        version=None if version is None else str(version),
        name=name,
        single_flight=single_flight,
        lock_ttl=lock_seconds,
        lock_wait=lock_seconds + 5.0,
        track_usage=track_usage,
    )
