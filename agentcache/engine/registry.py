"""Every cache layer alive in this process, for the stats report, the shared snapshots and fork handling."""

from __future__ import annotations

import weakref

TYPE_CHECKING = False

if TYPE_CHECKING:
    from agentcache.engine.layer import CacheLayer

__all__ = ["add", "every_layer"]

_layers: weakref.WeakSet[CacheLayer] = weakref.WeakSet()


def add(layer: CacheLayer) -> None:
    """Remember `layer` while it is alive."""
    _layers.add(layer)


def every_layer() -> list[CacheLayer]:
    """Every layer alive in this process (decorated functions, wrapped clients, integrations, your own)."""
    return list(_layers)
