"""Entries cannot lie: each carries its key's digest and a checksum, so damaged bytes or another key's entry are a
miss (counted as ``corrupt``, deleted, warned about once), never a wrong value."""

from __future__ import annotations

import logging
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from test_decorators import call, make

import agentcache
from agentcache.backends import open_backend
from agentcache.backends.base import Item
from agentcache.codec.entries import (
    MAGIC,
    VECTOR_MAGIC,
    CorruptEntryError,
    decode_entry,
    decode_vector,
    encode_entry,
    encode_vector,
    key_digest,
)
from agentcache.engine.cache import Cache
from agentcache.errors import SerializationError
from agentcache.semantic.partitions import decode_record, encode_record


def answer(i: int) -> dict[str, Any]:
    return {"i": i, "text": f"the answer to question {i}", "xs": [i, i * i]}


class TestByteFlips:
    def test_flipped_bytes_in_a_sqlite_file_never_give_a_wrong_hit(self, tmp_path: Path) -> None:
        """Every byte of three entries, and 120 random positions of the file, flipped one at a time in a real
        SQLite cache file: every call returns its own right answer (a hit or a recomputation), never another."""
        path = tmp_path / "cache.db"
        n = 12
        cache = Cache(f"sqlite://{path}")
        fill = agentcache.tool_cached(backend=cache, name="fuzz")(answer)
        for i in range(n):
            fill(i)
        stored = [cache.store.get(fill.cache_key(i)) for i in (0, 5, 11)]
        cache.close()  # the last connection checkpoints the WAL into the file
        pristine = path.read_bytes()
        positions: list[int] = []
        for raw in stored:
            assert raw is not None
            start = pristine.find(raw)
            assert start > 0, "the entry's bytes sit in the file as written"
            positions += range(start, start + len(raw))
        rng = random.Random(14)
        positions += rng.sample(range(len(pristine)), 120)

        wrong: list[tuple[int, int, Any]] = []
        corrupt = 0
        for position in positions:
            data = bytearray(pristine)
            data[position] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            cache = Cache(f"sqlite://{path}")
            fn = agentcache.tool_cached(backend=cache, name="fuzz")(answer)
            try:
                for i in range(n):
                    got = fn(i)
                    if got != answer(i):
                        wrong.append((position, i, got))
            finally:
                cache.close()
            corrupt += fn.__agentcache_layer__.counters.corrupt  # type: ignore[attr-defined]
        assert wrong == []
        assert corrupt >= len(stored) * 30  # the checks fired: flips in the entries are counted as corrupt

    def test_a_flip_is_never_served_from_the_decoded_copy(self) -> None:
        """Bytes that differ from the entry decoded before are verified again, whatever the kept copy says."""
        backend = open_backend("memory://")
        fn = agentcache.tool_cached(backend=backend, name="memo")(answer)
        assert fn(3) == answer(3) and fn(3) == answer(3)  # decoded once, then served from the kept copy
        key = fn.cache_key(3)
        raw = backend.get(key)
        assert raw is not None
        flipped = bytearray(raw)
        flipped[-3] ^= 0x01
        backend.set_many([Item(key, bytes(flipped))])
        assert fn(3) == answer(3)
        assert fn.cache_info().hits == 1 and fn.__agentcache_layer__.counters.corrupt == 1  # type: ignore[attr-defined]


class TestKeyBinding:
    async def test_an_entry_copied_under_another_key_is_a_miss(self, face: str, backend: Any) -> None:
        """f(7)'s entry copied under f(160)'s key: f(160) runs and returns its own answer; counted, replaced."""
        fn = make(face, answer, agentcache.tool_cached(backend=backend, name="moved"))
        assert await call(fn, 7) == answer(7)
        seven = backend.get(fn.cache_key(7))
        assert seven is not None
        backend.set_many([Item(fn.cache_key(160), seven)])
        assert await call(fn, 160) == answer(160)
        assert fn.__agentcache_layer__.counters.corrupt == 1
        assert backend.get(fn.cache_key(160)) != seven  # deleted, then replaced by the fresh result
        assert await call(fn, 160) == answer(160)
        assert fn.cache_info().hits == 1

    def test_decoders_refuse_another_keys_bytes(self) -> None:
        """Entries, embeddings and semantic vector records name their key: read under another, they are refused."""
        a, b = "ac:v1:default:tool:f:aa", "ac:v1:default:tool:f:bb"
        assert decode_entry(encode_entry({"x": 1}, key=a), a).value == {"x": 1}
        with pytest.raises(CorruptEntryError, match="another key"):
            decode_entry(encode_entry({"x": 1}, key=a), b)
        assert decode_vector(encode_vector([1.0, 2.0], key=a), a) == [1.0, 2.0]
        with pytest.raises(CorruptEntryError, match="another key"):
            decode_vector(encode_vector([1.0, 2.0], key=a), b)
        record = encode_record(a, "query", "ac:v1:default:semantic:f:cc", "model", [0.5, 0.25])
        assert decode_record(a, record) == ("query", "ac:v1:default:semantic:f:cc", "model", [0.5, 0.25])
        with pytest.raises(CorruptEntryError, match="another key"):
            decode_record(b, record)
        damaged = bytearray(record)
        damaged[30] ^= 0x10
        with pytest.raises(CorruptEntryError, match="checksum"):
            decode_record(a, bytes(damaged))


class TestCounting:
    def test_corrupt_entries_are_counted_deleted_and_warned_about_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """Two damaged entries of one function: two misses counted as corrupt, both deleted, one warning."""
        backend = open_backend("memory://")
        fn = agentcache.tool_cached(backend=backend, name="damaged")(answer)
        for i in (1, 2):
            key = fn.cache_key(i)
            damaged = encode_entry(answer(i), key=key).replace(b"question", b"questioN")
            backend.set_many([Item(key, damaged)])
        deleted: list[str] = []
        real_delete = backend.delete_many

        def spy(keys: Any) -> int:
            deleted.extend(keys)
            return real_delete(keys)

        backend.delete_many = spy  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert fn(1) == answer(1) and fn(2) == answer(2)
        assert deleted == [fn.cache_key(1), fn.cache_key(2)]
        assert [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()] == [
            "agentcache: dropped a corrupt entry of damaged: entry fails its checksum"
        ]
        report = agentcache.stats()
        assert report.by_function["damaged"].corrupt == 2
        assert report.to_dict()["total"]["corrupt"] == 2
        assert "corrupt" in str(report).splitlines()[1]

    def test_an_entry_of_the_earlier_format_is_a_quiet_miss(self, caplog: pytest.LogCaptureFixture) -> None:
        """An ``ac2`` entry (written before entries carried a checksum) is recomputed and replaced, not counted."""
        backend = open_backend("memory://")
        fn = agentcache.tool_cached(backend=backend, name="upgraded")(answer)
        old = b"ac2v" + struct.pack("<ddI", 1.7e9, 0.5, 0) + b'{"i":0}'
        backend.set_many([Item(fn.cache_key(0), old)])
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert fn(0) == answer(0)
        assert caplog.records == []
        assert fn.__agentcache_layer__.counters.corrupt == 0  # type: ignore[attr-defined]
        assert fn.cache_info().errors == 0
        assert fn(0) == answer(0) and fn.cache_info().hits == 1


def _vector(i: int) -> list[float]:
    return [float(i), 0.5, -0.25]


class TestEmbeddings:
    def test_garbage_payloads_are_never_accepted(self) -> None:
        """20,000 payloads under an embedding key (random bytes of a multiple of 4 bytes, bytes behind the right
        magic, valid entries with a flipped bit, truncated or extended, or another key's): 0 accepted."""
        key, other = "ac:v1:default:embedding:m:aa", "ac:v1:default:embedding:m:bb"
        rng = random.Random(6)
        valid = encode_vector([rng.uniform(-1, 1) for _ in range(16)], key=key)
        accepted = 0
        for n in range(20_000):
            variant = n % 5
            if variant == 0:
                payload = rng.randbytes(4 * rng.randrange(1, 40))
            elif variant == 1:
                payload = VECTOR_MAGIC + rng.randbytes(4 * rng.randrange(1, 40))
            elif variant == 2:
                flipped = bytearray(valid)
                flipped[rng.randrange(len(valid))] ^= 1 << rng.randrange(8)
                payload = bytes(flipped)
            elif variant == 3:
                payload = valid[: rng.randrange(len(valid))] if n % 2 else valid + rng.randbytes(4)
            else:
                payload = encode_vector([rng.uniform(-1, 1) for _ in range(16)], key=other)
            try:
                decode_vector(payload, key)
            except SerializationError:
                continue
            accepted += 1
        assert accepted == 0

    def test_a_garbage_vector_in_the_store_is_recomputed(self) -> None:
        """2,000 garbage payloads stored under the key of a cached embedding: each call embeds the text again
        and returns the real vector, never the garbage."""
        backend = open_backend("memory://")
        calls: list[str] = []

        @agentcache.embedding_cached(model="m", backend=backend)
        def embed(text: str) -> list[float]:
            calls.append(text)
            return _vector(1)

        assert embed("t") == _vector(1)
        key = next(iter(backend._data))  # type: ignore[attr-defined]
        rng = random.Random(2)
        for n in range(2_000):
            garbage = rng.randbytes(4 * rng.randrange(1, 8)) if n % 2 else MAGIC + b"e" + rng.randbytes(24)
            backend.set_many([Item(key, garbage)])
            assert embed("t") == _vector(1)
        assert len(calls) == 2_001
        core = embed.__agentcache_layer__  # type: ignore[attr-defined]
        assert core.counters.corrupt == 1_000  # the other half look like the earlier format: a quiet miss
        assert embed("t") == _vector(1) and len(calls) == 2_001  # the last fresh vector replaced the garbage

    def test_a_vector_copied_under_another_text_is_a_miss(self) -> None:
        """The vector of "a" copied under the key of "b": "b" is embedded for real."""
        backend = open_backend("memory://")

        @agentcache.embedding_cached(model="m", backend=backend)
        def embed(texts: list[str]) -> list[list[float]]:
            return [_vector(len(t)) for t in texts]

        embed(["a", "bb"])
        keys = sorted(backend._data)  # type: ignore[attr-defined]
        raws = backend.get_many(keys)
        backend.set_many([Item(keys[0], raws[1]), Item(keys[1], raws[0])])  # type: ignore[arg-type]
        assert embed(["a", "bb"]) == [_vector(1), _vector(2)]
        assert embed.__agentcache_layer__.counters.corrupt == 2  # type: ignore[attr-defined]


def test_key_digest_is_eight_bytes_and_key_specific() -> None:
    """The digest every entry carries: 8 bytes, different for different keys."""
    assert len(key_digest("a")) == 8 and key_digest("a") != key_digest("b")


class TestSemanticRecords:
    def test_a_damaged_vector_record_is_never_used_and_is_removed(self) -> None:
        """A vector record with a flipped byte is not indexed (a paraphrase misses instead of hitting through
        it) and is deleted from the store, so later rescans do not fetch it again."""
        from support.embedders import SameVector

        from agentcache.decorators.semantic import semantic_cached
        from agentcache.semantic.partitions import forget_partitions

        cache = Cache("memory://")
        calls: list[str] = []

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False)
        def reply(question: str) -> str:
            calls.append(question)
            return question

        reply("original")
        assert reply("paraphrase") == "original"  # a semantic hit through the record
        store = cache.store
        (record_key,) = [e.key for e in getattr(store, "inner", store).scan("") if ":semvec:" in e.key]
        raw = store.get(record_key)
        assert raw is not None
        damaged = bytearray(raw)
        damaged[-1] ^= 0x40
        store.set_many([Item(record_key, bytes(damaged))])
        forget_partitions()  # the next lookup rebuilds the index from the store
        assert reply("another paraphrase") == "another paraphrase"
        assert calls == ["original", "another paraphrase"]
        assert store.get(record_key) is None
