"""Small per-call costs: a store's locking support is asked once, the decoded-entry memo counts its heap."""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import agentcache
from agentcache.backends.memory import MemoryBackend
from agentcache.codec import entries as serialization


class CountingStore(MemoryBackend):
    """A memory store that counts how often anyone checks whether it takes cross-process locks."""

    checks = 0

    @property
    def acquire_lock(self) -> Any:  # a runtime-checkable Protocol's isinstance looks this attribute up
        type(self).checks += 1
        raise AttributeError("acquire_lock")


def test_locking_support_is_asked_once_per_store() -> None:
    """Five misses on one store check its locking support at most twice (once when the store is wrapped,
    once on the first miss); before, every miss ran the Protocol `isinstance` again (~13 µs each)."""
    store = CountingStore()

    @agentcache.tool_cached(backend=store)
    def double(x: int) -> int:
        return 2 * x

    assert [double(i) for i in range(5)] == [0, 2, 4, 6, 8]
    assert double(4) == 8
    assert double.cache_info().misses == 5
    assert CountingStore.checks <= 2


def test_decoded_memo_heap_stays_within_its_budget() -> None:
    """The entries kept decoded hold at most about `decoded_bytes` of heap (traced), counting the decoded
    objects and not just the entry bytes. (Before: ~3.2x the budget for ~2.6 KB chat completions.)"""
    budget = 256 << 10
    agentcache.configure(decoded_bytes=budget)
    entries = []
    for i in range(600):
        key = f"test:memo:{i}"
        value = {
            "id": f"chatcmpl-{i}",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": " ".join(f"w{i}-{j}" for j in range(220))}}
            ],
            "tags": [f"t{j}" for j in range(20)],
            "meta": {f"k{j}": j * 1000 for j in range(20)},
        }
        entries.append((key, value, serialization.encode_entry(value, key=key)))
    serialization.forget_decoded()
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for key, value, raw in entries:
            assert serialization.decode_hit(key, bytes(bytearray(raw)))[1] == value  # new bytes, as from SQLite
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    count, accounted = serialization.decoded_footprint()
    assert 0 < count < 600
    assert accounted <= budget
    assert held <= budget * 1.15  # the estimate of a decoded value's heap is within a few percent
    serialization.forget_decoded()


def test_stream_events_parse_and_serialise_what_orjson_refuses() -> None:
    """Stream events are parsed and rebuilt with orjson, with stdlib `json` for what orjson refuses: NaN in a
    recorded event, an integer beyond 64 bits in a value turned into events."""
    from openai.types.chat import ChatCompletionChunk

    from agentcache.integrations import _streams

    head = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]'
    events = [[None, head + "}"], [None, head + ',"x":NaN}'], [None, "[DONE]"]]
    items = _streams.build_items(None, ChatCompletionChunk, events, None)
    assert [item.id for item in items] == ["c", "c"]
    completion = {
        "id": "c",
        "created": 2**70,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo"}, "finish_reason": "stop"}],
    }
    events = _streams.chat_events(completion, include_usage=False)
    assert f'"created":{2**70},' in events[0][1]
    assert _streams.events_to_object("openai.chat", events)["choices"][0]["message"]["content"] == "héllo"


def test_stats_flush_skips_a_store_whose_breaker_is_not_closed() -> None:
    """The stats snapshot (written every 10 s of misses and at exit) is not sent to a store whose breaker opened,
    even once its cooldown is over: it would wait for a timeout to fail anyway. (Before: at exit it connected to
    the hung server and waited `socket_timeout`.)"""
    import socket

    from agentcache.engine.shared_stats import flush_stats

    silent = socket.socket()  # the kernel accepts connections; nobody ever answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    silent.setblocking(False)
    held: list[socket.socket] = []

    def connections() -> int:
        count = 0
        while True:
            try:
                conn, _ = silent.accept()
            except BlockingIOError:
                return count
            held.append(conn)
            count += 1

    try:
        agentcache.configure(retries=0, failure_threshold=1, cooldown=0.05)

        @agentcache.tool_cached(backend=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        def remote(x: int) -> int:
            return x

        assert remote(1) == 1  # the store times out: the call falls through and the breaker opens
        assert connections() >= 1
        time.sleep(0.1)  # past the cooldown: the next store call would be a probe
        flush_stats()
        assert connections() == 0
    finally:
        for conn in held:
            conn.close()
        silent.close()
