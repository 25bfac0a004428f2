"""The bare/called dispatch every cache decorator shares."""

from __future__ import annotations

from agentcache.decorators.function import decorate
from agentcache.engine.layer import make_policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentcache.decorators._options import CacheOptions

__all__ = ["build"]


def build(layer: str, func: Callable[..., Any] | None, options: CacheOptions, layer_defaults: dict[str, Any]) -> Any:
    """Apply a decorator to `func` now (bare form) or return the decorator (called form)."""
    policy = make_policy(layer, **{**layer_defaults, **options})

    def apply(f: Callable[..., Any]) -> Any:
        if not callable(f):
            raise TypeError(f"{layer}_cached decorates functions, not {type(f).__name__}")
        return decorate(f, policy)

    return apply if func is None else apply(func)
