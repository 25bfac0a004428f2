"""Keep the example's own caches (the `search` tool's results) in memory: running its tests writes nothing to
your cache dir. The model calls are answered by the cassettes (pytest.ini), not by a store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentcache


@pytest.fixture(autouse=True)
def _memory_store() -> Iterator[None]:
    agentcache.configure(url="memory://")
    yield
    agentcache.reset()
