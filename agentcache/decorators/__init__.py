"""The cache decorators."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agentcache.decorators._options import CacheDecorator, CacheOptions
    from agentcache.decorators.response import TRANSPORT_FIELDS, response_cached
    from agentcache.decorators.tool import tool_cached

__all__ = ["TRANSPORT_FIELDS", "CacheDecorator", "CacheOptions", "response_cached", "tool_cached"]

_HOMES = {
    "CacheDecorator": "agentcache.decorators._options",
    "CacheOptions": "agentcache.decorators._options",
    "TRANSPORT_FIELDS": "agentcache.decorators.response",
    "response_cached": "agentcache.decorators.response",
    "tool_cached": "agentcache.decorators.tool",
}


def __getattr__(name: str) -> object:
    # Loaded on first use: a process using `tool_cached` alone never loads the others (#13).
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(__import__(home, fromlist=[name]), name)
    return value
