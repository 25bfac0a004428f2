"""`agentcache.reset()` while the semantic index's background thread waits for work (seen in the full suite as
"cannot notify on un-acquired lock" raised in that thread, failing whichever test ran next)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agentcache.semantic import partitions


class _Store:
    """Anything weakly referenceable: the reconcile of the dummy partition fails (logged), as designed."""


class _Part:
    def __init__(self) -> None:
        self.queued = False
        self.refreshing = threading.Lock()
        self.prefix = "p"


def test_reset_while_the_thread_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    refresher: Any = partitions._Refresher()
    monkeypatch.setattr(partitions._Refresher, "IDLE", 0.2)
    store, part = _Store(), _Part()
    refresher.submit(store, part)
    assert refresher.wait(5)  # the work is done; the thread now waits IDLE seconds for more
    thread = refresher._thread
    assert thread is not None
    refresher.reset()  # what agentcache.reset() and a fork do
    thread.join(5)  # the thread ends on its own condition; an exception in it fails this test (filterwarnings)
    assert not thread.is_alive()
    assert refresher._thread is None
    refresher.submit(store, _Part())  # the reset refresher starts a thread of its own
    assert refresher.wait(5)
