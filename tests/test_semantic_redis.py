"""Semantic cache on Redis: processes share entries through the backend and stay in sync through the event log."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from support.backends import with_query
from support.semantic_worker import serve

from agentcache.decorators.semantic import invalidate_similar, last_semantic_hit, semantic_cached
from agentcache.engine.cache import Cache
from agentcache.semantic.eventlog import EventBatch, SupportsEventLog
from agentcache.semantic.partitions import loaded_partitions, settle, stream_of
from agentcache.semantic.store_logs import event_log_for

pytestmark = pytest.mark.redis


class Worker:
    """One spawned process serving `support.semantic_worker.serve`."""

    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(url, child), daemon=True)
        self.proc.start()
        child.close()
        assert self._recv(60) == "ready"

    def _recv(self, timeout: float) -> Any:
        conn: Connection = self.conn
        if not conn.poll(timeout):
            raise TimeoutError("the worker process did not answer")
        return conn.recv()

    def __call__(self, *command: Any) -> Any:
        self.conn.send(command)
        return self._recv(60)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.conn.send(("stop",))
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@pytest.fixture
def redis_url(redis_server: str, tmp_path: Path) -> str:
    """A Redis URL with a key prefix private to this test."""
    return with_query(redis_server, prefix=f"sem{tmp_path.name[-20:]}{id(tmp_path):x}:")


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[Worker, Worker]]:
    """Two processes, A and B, sharing one Redis-backed semantic cache."""
    a = Worker(redis_url)
    try:
        b = Worker(redis_url)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


class TestTwoProcesses:
    def test_answer_stored_in_one_process_is_a_paraphrase_hit_in_the_other(self, pair: tuple[Worker, Worker]) -> None:
        """B, whose index was loaded before A stored, hits A's answer at its next lookup (via the stream)."""
        a, b = pair
        b("ask", "How do I reset my password?")  # loads B's index of the partition (and its model)
        a("ask", "What is the capital of France?")
        value, similarity, calls, _ = b("ask", "Can you tell me the capital of France?")
        assert value == "answer to What is the capital of France?"
        assert similarity is not None and 0.8 <= similarity < 1.0
        assert calls == 1  # only B's warm-up question was computed in B
        assert b("index_size") == 2

    def test_tag_invalidation_in_one_process_is_never_served_by_the_other(self, pair: tuple[Worker, Worker]) -> None:
        """After A invalidates by tag, B's very next lookup of the paraphrase is a miss, not the old answer."""
        a, b = pair
        a("ask", "What is the capital of France?")
        assert b("ask", "Can you tell me the capital of France?")[1] is not None
        deleted, _ = a("invalidate_tags", ["faq"])
        assert deleted >= 2
        value, similarity, calls, _ = b("ask", "Can you tell me the capital of France?")
        assert similarity is None and calls == 1
        assert value == "answer to Can you tell me the capital of France?"

    def test_invalidate_similar_in_one_process_drops_vectors_in_the_other(self, pair: tuple[Worker, Worker]) -> None:
        """`invalidate_similar` in A removes the entry for B and B's index drops the vector (stream event)."""
        a, b = pair
        a("ask", "How do I cancel my subscription?")
        a("ask", "What is the capital of France?")
        assert b("ask", "How can I cancel my subscription?")[1] is not None
        assert b("index_size") == 2
        deleted, _ = a("invalidate_similar", "cancel my subscription")
        assert deleted == 1
        value, similarity, calls, _ = b("ask", "How can I cancel my subscription?")
        assert similarity is None and calls == 1
        assert value == "answer to How can I cancel my subscription?"
        assert b("index_size") == 2  # France (A's) + B's own fresh entry; the invalidated vector is gone

    def test_expired_entry_is_never_served_by_the_other_process(self, pair: tuple[Worker, Worker]) -> None:
        """An entry A stored with a 1 s TTL is a hit in B before it expires and a miss after."""
        a, b = pair
        b("ask", "How do I reset my password?")  # loads B's model first: on a busy machine that alone took > 1 s
        a("ask_short", "What is the capital of France?")
        assert b("ask_short", "Can you tell me the capital of France?")[1] is not None
        time.sleep(1.2)
        _, similarity, calls, _ = b("ask_short", "Can you tell me the capital of France?")
        assert similarity is None and calls == 2  # B's warm-up question, then this miss


class TestEventLog:
    def test_redis_store_has_an_event_log_and_memory_has_none(self, redis_url: str) -> None:
        """The Redis backend (behind the fail-open wrapper) gets a stream log; the memory store gets none."""
        cache = Cache(redis_url)
        try:
            log = event_log_for(cache.store)
            assert isinstance(log, SupportsEventLog)
            assert event_log_for(Cache("memory://").store) is None
        finally:
            cache.close()

    def test_reads_after_a_cursor_and_detects_lost_events(self, redis_url: str) -> None:
        """A reader gets exactly the newer events; a cleared stream reports `complete=False`."""
        cache = Cache(redis_url)
        try:
            log = event_log_for(cache.store)
            assert log is not None
            stream = stream_of("default")
            start = log.read(stream, None)  # creates the stream, so a later deletion is always noticed
            assert start.events == [] and start.complete
            assert log.read(stream, start.last_id) == EventBatch([], start.last_id, True)
            first = log.append(stream, {"op": "add", "keys": "k1"})
            log.append(stream, {"op": "del", "keys": "k1 k2"})
            batch = log.read(stream, first)
            assert [f for _, f in batch.events] == [{"op": "del", "keys": "k1 k2"}] and batch.complete
            assert log.read(stream, batch.last_id).events == []
            cache.invalidate(namespace="default")  # clearing the namespace removes its stream too
            gap = log.read(stream, batch.last_id)
            assert gap.complete is False
            assert log.read(stream, gap.last_id).complete  # the reader starts over from the recreated stream
        finally:
            cache.close()

    def test_a_lagging_reader_rebuilds_instead_of_missing_removals(self, redis_url: str) -> None:
        """When the stream lost events a reader had not seen, its partition reconciles with the backend."""
        one, two = Cache(redis_url), Cache(redis_url)
        try:

            def make(cache: Cache) -> Any:
                @semantic_cached(backend=cache, name="lag.answer")
                def answer(question: str) -> str:
                    return question.upper()

                return answer

            first, second = make(one), make(two)
            second("How do I reset my password?")
            first("What is the capital of France?")
            log = event_log_for(one.store)
            assert log is not None
            one.store.clear("ac:v1:default:")  # also deletes the stream: a gap for every reader
            first("What is the capital of France?")  # stored again; the new stream starts after the gap
            second("Can you tell me the capital of France?")
            assert last_semantic_hit() is not None
            assert settle(timeout=60)  # the reconcile the gap queued runs on the background thread
            (part,) = loaded_partitions(two.store)
            assert len(part.meta) == 1 and not part.stale
            assert invalidate_similar("capital of France", threshold=0.8, backend=one) == 1
        finally:
            one.close()
            two.close()
