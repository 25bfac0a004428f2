"""The exception tree of agentcache.

```
AgentCacheError                          base: catch this to catch everything we raise
├── ConfigurationError                   a bad option or an unknown backend URL (the message lists valid ones)
├── MissingDependencyError(ImportError)  an optional extra is not installed (the message says what to install)
├── KeyEncodingError(TypeError)          an argument cannot be turned into a cache key (names the argument)
├── SerializationError                   a value cannot be encoded, or stored bytes cannot be decoded
└── BackendError                         a backend failed; mapped from driver errors, never reaches a cached call
    ├── BackendUnavailable               cannot connect or timed out; opens the circuit breaker at once
    │   └── BackendBusy                  another writer held the store's lock too long (SQLite); the write is skipped
    └── InvalidationError                an invalidation did not reach a store (raised by `invalidate()` and co.)
```

Cached calls never raise `BackendError`: a failing store degrades to a miss (see `agentcache.backends.resilient`).
Invalidations are the exception: they report failure by raising `InvalidationError`
(see `agentcache.engine.invalidation`).
"""

from __future__ import annotations

__all__ = [
    "AgentCacheError",
    "BackendBusy",
    "BackendError",
    "BackendUnavailable",
    "ConfigurationError",
    "InvalidationError",
    "KeyEncodingError",
    "MissingDependencyError",
    "SerializationError",
]


class AgentCacheError(Exception):
    """Base class of every error agentcache raises."""


class ConfigurationError(AgentCacheError, ValueError):
    """Raised for an invalid option, namespace or backend URL."""


# The name agentcache is installed under (`pip install agentcache` is an unrelated project on the public index).
DISTRIBUTION = "agentcache-py"


class MissingDependencyError(AgentCacheError, ImportError):
    """Raised when a feature needs an optional extra that is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package!r} is required for this feature: pip install '{DISTRIBUTION}[{extra}]' "
            f"(from a clone of agentcache: pip install '.[{extra}]')",
        )
        self.package = package
        self.extra = extra


class KeyEncodingError(AgentCacheError, TypeError):
    """Raised when an argument cannot be canonically encoded into a cache key."""


class SerializationError(AgentCacheError):
    """Raised when a value cannot be serialized, or stored bytes cannot be decoded."""


class BackendError(AgentCacheError):
    """Raised by a backend when its store fails; the resilience layer turns it into a miss."""


class BackendUnavailable(BackendError):
    """Raised when a backend cannot be reached or timed out."""


class BackendBusy(BackendUnavailable):
    """Raised when another writer held the store's lock longer than the backend waits (SQLite's busy timeout)."""


class InvalidationError(BackendError):
    """Raised when an invalidation did not reach a store, after bounded retries.

    The invalidation is not dropped: this process keeps it pending, retries it in the background until it lands,
    and meanwhile neither serves nor stores the entries it may cover. `deleted` counts the entries the parts that
    did land deleted; `pending` describes what is still pending.
    """

    def __init__(self, message: str, *, deleted: int = 0, pending: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.deleted = deleted
        self.pending = pending
