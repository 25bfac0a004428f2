"""Redis-specific behaviour: key layout, SCAN-only clearing, clusters, LRU bounding, locks and pooling."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.redis_server import REDIS_CLI, REDIS_SERVER, RedisCluster3, RedisServer

from agentcache.backends.base import Item, SupportsLocking, SupportsScan
from agentcache.backends.redis import RedisBackend, open_redis
from agentcache.errors import BackendError, BackendUnavailable, ConfigurationError

pytestmark = pytest.mark.redis

redis = pytest.importorskip("redis")
pytest.importorskip("redis.cluster")


@pytest.fixture
def prefix() -> str:
    """A key prefix private to this test."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def raw(redis_server: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the session server, to look at what the backend stored."""
    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()


@pytest.fixture
def backend(redis_server: str, prefix: str) -> Iterator[RedisBackend]:
    """A RedisBackend on the session server with a private prefix."""
    b = RedisBackend(redis_server, prefix=prefix)
    yield b
    b.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The URL of a three-master cluster this module started (skips without the binaries)."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server / redis-cli are not on PATH")
    c = RedisCluster3().start()
    try:
        yield c.url
    finally:
        c.cleanup()


def _ns_key(ns: str, i: int = 0) -> str:
    return f"ac:v1:{ns}:tool:fn:{i:04d}"


def test_implements_optional_powers(backend: RedisBackend) -> None:
    """RedisBackend offers scanning and cross-process locking."""
    assert isinstance(backend, SupportsScan)
    assert isinstance(backend, SupportsLocking)


def test_constructing_does_not_connect() -> None:
    """Building a backend for a dead address succeeds; only the first call fails, as BackendUnavailable."""
    b = RedisBackend("redis://127.0.0.1:1/0")
    with pytest.raises(BackendUnavailable):
        b.get("k")
    b.close()


def test_bad_urls_and_prefixes_are_configuration_errors() -> None:
    """Unknown schemes, braces in the prefix and bad option values raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        RedisBackend("http://x")
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://x", prefix="{a}")
    with pytest.raises(ConfigurationError):
        open_redis("redis://x?max_entries=lots")


def test_namespace_is_the_hash_tag(backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    """A core key is stored with its namespace as the cluster hash tag; other keys go to the `{_}` group."""
    backend.set_many([Item(_ns_key("alpha"), b"v"), Item("plain:key", b"w")])
    keys = {k.decode() for k in raw.scan_iter(match=prefix + "*")}
    assert keys == {f"{prefix}ac:v1:{{alpha}}:tool:fn:0000", f"{prefix}{{_}}:plain:key"}
    assert backend.get(_ns_key("alpha")) == b"v"
    assert backend.get("plain:key") == b"w"


def test_keys_with_braces_and_globs_round_trip(backend: RedisBackend) -> None:
    """Keys containing braces, glob characters or a fake layout are stored and cleared exactly."""
    odd = ["ac:v1:{x}:y", "a*b", "[c]?", "ac:v1:", "ac:v1:ns", "\\back"]
    backend.set_many([Item(k, k.encode()) for k in odd])
    assert backend.get_many(odd) == [k.encode() for k in odd]
    assert backend.clear("a*") == 1
    assert backend.get("ab") is None
    assert backend.clear("") == len(odd) - 1


def test_clear_works_with_keys_and_flush_disabled(tmp_path: Path) -> None:
    """clear() uses SCAN + UNLINK only: it works on a server where KEYS/FLUSHDB/FLUSHALL are renamed away."""
    disabled = ("--rename-command", "KEYS", "", "--rename-command", "FLUSHDB", "")
    server = RedisServer(None, *disabled, "--rename-command", "FLUSHALL", "").start()
    try:
        b = RedisBackend(server.url)
        b.set_many([Item(_ns_key("a", i), b"x") for i in range(50)] + [Item(_ns_key("b"), b"y")])
        assert b.clear("ac:v1:a:") == 50
        assert b.get(_ns_key("b")) == b"y"
        assert b.clear("") == 1
        b.close()
    finally:
        server.cleanup()


def test_clear_leaves_foreign_keys(backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    """clear("") deletes our entries and metadata (but the generations, which only grow), never foreign keys."""
    raw.set(prefix + "foreign", b"keep")
    backend.set_many([Item(_ns_key("n", i), b"x", tags=("t",)) for i in range(5)] + [Item("g", b"y", tags=("t",))])
    assert backend.clear("") == 6
    left = {k.decode() for k in raw.scan_iter(match=prefix + "*")}
    assert left == {prefix + "foreign", prefix + "ac:v1:{n}#gen", prefix + "{_}#gen"}


def test_partial_clear_keeps_tag_sets_consistent(backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    """Clearing part of a namespace removes the cleared keys from their tag sets."""
    backend.set_many([Item("ac:v1:n:a:f:1", b"1", tags=("t",)), Item("ac:v1:n:b:f:1", b"2", tags=("t",))])
    assert backend.clear("ac:v1:n:a:") == 1
    assert raw.smembers(prefix + "ac:v1:{n}#t:t") == {f"{prefix}ac:v1:{{n}}:b:f:1".encode()}
    assert backend.delete_tags(["t"]) == 1


def test_ttl_expires_and_zero_ttl_removes(backend: RedisBackend) -> None:
    """An entry expires after its TTL; writing with ttl <= 0 removes an existing entry."""
    backend.set_many([Item("short", b"x", ttl=0.05), Item("kept", b"y", ttl=60)])
    time.sleep(0.12)
    assert backend.get("short") is None
    backend.set_many([Item("kept", b"z", ttl=0)])
    assert backend.get("kept") is None


def test_overwrite_replaces_tags(backend: RedisBackend) -> None:
    """Re-setting a key with other tags drops it from its old tags."""
    backend.set_many([Item("k", b"1", tags=("old",))])
    backend.set_many([Item("k", b"2", tags=("new",))])
    assert backend.delete_tags(["old"]) == 0
    assert backend.delete_tags(["new"]) == 1


def test_delete_tags_across_namespaces_and_by_prefix(backend: RedisBackend) -> None:
    """delete_tags("") reaches every namespace; a namespace prefix limits it to that namespace."""
    items = [Item(_ns_key(ns, i), b"x", tags=("user:1",)) for ns in ("a", "b", "c") for i in range(3)]
    backend.set_many([*items, Item("other", b"y", tags=("user:1",))])
    assert backend.delete_tags(["user:1"], "ac:v1:b:") == 3
    assert backend.get(_ns_key("a")) == b"x"
    assert backend.delete_tags(["user:1"], "ac:v1:") == 6
    assert backend.delete_tags(["user:1"]) == 1


def test_lru_trims_least_recently_used(redis_server: str, prefix: str, raw: redis.Redis) -> None:
    """With max_entries, a write evicts the least recently read or written entries of that namespace only."""
    b = RedisBackend(redis_server, prefix=prefix, max_entries=3)
    b.set_many([Item(_ns_key("n", i), b"x", tags=("t",)) for i in range(3)])
    b.set_many([Item(_ns_key("other", i), b"x") for i in range(3)])
    time.sleep(0.002)
    assert b.get(_ns_key("n", 0)) == b"x"  # a read makes entry 0 recent
    time.sleep(0.002)
    b.set_many([Item(_ns_key("n", 3), b"x")])
    assert b.get_many([_ns_key("n", i) for i in range(4)]) == [b"x", None, b"x", b"x"]
    assert b.get_many([_ns_key("other", i) for i in range(3)]) == [b"x"] * 3
    assert raw.zcard(prefix + "ac:v1:{n}#lru") == 3
    assert raw.scard(prefix + "ac:v1:{n}#t:t") == 2
    b.close()


def test_lock_compare_and_delete_and_expiry(backend: RedisBackend) -> None:
    """A held lock blocks others, only its owner's token releases it, and it expires by itself."""
    token = backend.acquire_lock("ac:v1:n:tool:f:1", 0.2)
    assert token is not None
    assert backend.acquire_lock("ac:v1:n:tool:f:1", 0.2) is None
    assert backend.release_lock("ac:v1:n:tool:f:1", "not-the-owner") is False
    time.sleep(0.3)
    second = backend.acquire_lock("ac:v1:n:tool:f:1", 5)
    assert second is not None
    assert backend.release_lock("ac:v1:n:tool:f:1", token) is False
    assert backend.release_lock("ac:v1:n:tool:f:1", second) is True


async def test_async_face_and_locks(backend: RedisBackend) -> None:
    """The async face stores, reads, invalidates and locks like the sync one."""
    await backend.aset_many([Item("a", b"1", tags=("t",)), Item("b", b"2")])
    assert await backend.aget_many(["a", "b", "c"]) == [b"1", b"2", None]
    assert await backend.adelete_tags(["t"]) == 1
    token = await backend.aacquire_lock("L", 5)
    assert token is not None and await backend.aacquire_lock("L", 5) is None
    assert await backend.arelease_lock("L", token) is True
    assert await backend.adelete_many(["b", "zz"]) == 1
    await backend.aclose()


def test_scripts_reload_after_script_flush(backend: RedisBackend, raw: redis.Redis) -> None:
    """Writes keep working after the server forgets the Lua scripts (NOSCRIPT is repaired)."""
    backend.set_many([Item("a", b"1")])
    raw.script_flush()
    backend.set_many([Item("a", b"2"), Item(_ns_key("n"), b"3")])
    assert backend.get_many(["a", _ns_key("n")]) == [b"2", b"3"]


def test_wrong_type_is_backend_error(backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    """A server-side error (not a connection problem) is a BackendError, not BackendUnavailable."""
    raw.set(prefix + "{_}:k", b"a string, not our hash")
    with pytest.raises(BackendError) as info:
        backend.get("k")
    assert not isinstance(info.value, BackendUnavailable)
    assert isinstance(info.value.__cause__, redis.ResponseError)


def test_pooled_connection_is_reused(backend: RedisBackend, raw: redis.Redis) -> None:
    """A hundred sequential calls use one pooled connection."""
    backend.get("warm")
    before = raw.info("clients")["connected_clients"]
    for i in range(100):
        backend.set_many([Item(f"k{i}", b"v")])
        backend.get(f"k{i}")
    assert raw.info("clients")["connected_clients"] == before


def test_existing_clients_are_used_and_not_closed(redis_server: str, prefix: str) -> None:
    """A backend built from user clients uses them and leaves them open on close."""
    client = redis.Redis.from_url(redis_server)
    b = RedisBackend(client=client, prefix=prefix)
    b.set_many([Item("k", b"v")])
    b.close()
    assert client.ping() is True
    assert RedisBackend(client=client, prefix=prefix).get("k") == b"v"
    client.close()


def test_unix_socket_url(tmp_path: Path) -> None:
    """unix:// URLs reach a server listening on a socket file."""
    sock = tmp_path / "r.sock"
    server = RedisServer(None, "--unixsocket", str(sock), "--unixsocketperm", "700").start()
    try:
        b = open_redis(f"unix://{sock}?db=0&prefix=u:")
        b.set_many([Item("k", b"v")])
        assert b.get("k") == b"v"
        b.close()
    finally:
        server.cleanup()


def test_scan_reports_entries(backend: RedisBackend) -> None:
    """scan() lists live entries under a prefix with size, expiry and tags, filtered by tag."""
    backend.set_many([Item(_ns_key("n", 1), b"abc", ttl=60, tags=("t",)), Item(_ns_key("n", 2), b"de")])
    entries = {e.key: e for e in backend.scan("ac:v1:n:")}
    assert set(entries) == {_ns_key("n", 1), _ns_key("n", 2)}
    first = entries[_ns_key("n", 1)]
    assert first.size == len(_ns_key("n", 1)) + 3 and first.tags == ("t",) and first.expires_at is not None
    assert [e.key for e in backend.scan("", tag="t")] == [_ns_key("n", 1)]


def test_many_keys_are_read_a_script_call_per_group_chunk(
    backend: RedisBackend, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large get_many (a semantic cold start's) reads each group's keys in script calls of a few keys, in key
    order, with None for missing entries, on the sync and async faces alike."""
    from agentcache.backends import _redis_plan

    monkeypatch.setattr(_redis_plan, "GET_MANY_CHUNK", 7)
    stored = [Item(_ns_key("n", i), f"n{i}".encode()) for i in range(40)]
    stored += [Item(_ns_key("m", i), f"m{i}".encode()) for i in range(30)] + [Item("generic", b""), Item("g2", b"x")]
    backend.set_many(stored)
    keys = [it.key for it in stored] + [_ns_key("n", 99), "missing"]
    keys = keys[1::2] + keys[::2]  # groups interleaved
    want = {it.key: it.value for it in stored}
    raw.config_resetstat()
    assert backend.get_many(keys) == [want.get(k) for k in keys]
    assert raw.info("commandstats")["cmdstat_eval"]["calls"] == 6 + 5 + 1  # 41, 30 and 3 keys per group
    assert asyncio.run(backend.aget_many(keys)) == [want.get(k) for k in keys]
    assert backend.get_many(keys[:3]) == [want.get(k) for k in keys[:3]]  # a few keys: plain HGETs


def test_keys_lists_the_keys_under_a_prefix(backend: RedisBackend) -> None:
    """keys() lists the logical keys under a prefix (what a semantic partition's reconcile needs), no others."""
    backend.set_many([Item(_ns_key("n", i), b"v") for i in range(3)] + [Item(_ns_key("m", 9), b"w")])
    assert sorted(backend.keys("ac:v1:n:")) == sorted(_ns_key("n", i) for i in range(3))
    assert backend.keys("ac:v1:none:") == []
    backend.delete_many([_ns_key("n", 1)])
    assert sorted(backend.keys("ac:v1:n:")) == [_ns_key("n", 0), _ns_key("n", 2)]
    backend.set_many([Item("ac:v1:n:other:1", b"x"), Item("ac:v1:n:tool:fn:x*", b"y")])
    assert sorted(backend.keys("ac:v1:n:tool:")) == [_ns_key("n", 0), _ns_key("n", 2), "ac:v1:n:tool:fn:x*"]
    assert backend.keys("ac:v1:n:tool:fn:x*") == ["ac:v1:n:tool:fn:x*"]  # a glob character, matched literally


@pytest.mark.slow
def test_cluster_operations_across_namespaces(cluster: str) -> None:
    """On a 3-master cluster, multi-namespace writes, reads, tag deletes and clears all work."""
    namespaces = [f"ns{i}" for i in range(12)]
    b = open_redis(cluster)
    assert isinstance(b, RedisBackend)
    client = redis.cluster.RedisCluster.from_url(cluster.replace("redis+cluster", "redis"))
    nodes = {client.get_node_from_key(f"ac:v1:{{{ns}}}").name for ns in namespaces}
    client.close()
    assert len(nodes) == 3, "the namespaces should spread over every master"
    items = [Item(_ns_key(ns, i), f"{ns}{i}".encode(), tags=("t",)) for ns in namespaces for i in range(3)]
    b.set_many([*items, Item("generic", b"g", tags=("t",))])
    assert b.get_many([it.key for it in items]) == [it.value for it in items]
    assert b.delete_many([_ns_key("ns0", 0), _ns_key("ns1", 0), "nope"]) == 2
    assert b.delete_tags(["t"], "ac:v1:ns2:") == 3
    assert b.clear("ac:v1:ns3:") == 3
    assert sum(1 for _ in b.scan("")) == len(items) - 2 - 3 - 3 + 1
    assert b.delete_tags(["t"]) == len(items) - 8 + 1
    b.set_many([Item(_ns_key(ns), b"x") for ns in namespaces])
    assert b.clear("") == len(namespaces)
    many = [Item(_ns_key(ns, i), f"{ns}:{i}".encode()) for ns in namespaces for i in range(8)]
    b.set_many(many)
    assert b.get_many([it.key for it in many] + ["nope"]) == [it.value for it in many] + [None]
    assert b.clear("") == len(many)
    token = b.acquire_lock(_ns_key("ns5"), 5)
    assert token is not None and b.release_lock(_ns_key("ns5"), token)
    b.close()


def test_cluster_fused_miss_steps(cluster: str) -> None:
    """On a cluster, the fused miss steps run in the key's slot: lock + fence, a wait woken by the release with
    the recheck pipelined behind it (XREAD then the script, one node), and the write + release."""
    b = open_redis(cluster)
    assert isinstance(b, RedisBackend)
    for ns in ("c1", "c2", "c3"):
        key, lock = _ns_key(ns), _ns_key(ns) + ":lock"
        token, raw, fence = b.lock_get(key, lock, 5, ("fused",))
        assert token is not None and raw is None and fence is not None
        assert b.lock_get(key, lock, 5, ("fused",), wait=0.01) == (None, None, None)  # held: the wait times out
        assert b.store_unlock([Item(key, b"v", tags=("fused",))], fence, lock, token)
        assert b.lock_get(key, lock, 5, ("fused",), wait=5) == (None, b"v", None)  # released: woken at once
        assert b.delete_many([key]) == 1
    b.close()


async def test_cluster_fused_miss_steps_async(cluster: str) -> None:
    """The same through the async cluster client."""
    b = open_redis(cluster)
    assert isinstance(b, RedisBackend)
    key, lock = _ns_key("ac1"), _ns_key("ac1") + ":lock"
    token, raw, fence = await b.alock_get(key, lock, 5, ())
    assert token is not None and raw is None
    assert await b.alock_get(key, lock, 5, (), wait=0.01) == (None, None, None)
    assert await b.astore_unlock([Item(key, b"v")], fence, lock, token)
    assert await b.alock_get(key, lock, 5, (), wait=5) == (None, b"v", None)
    assert await b.adelete_many([key]) == 1
    await b.aclose()


@pytest.mark.slow
async def test_cluster_async_face(cluster: str) -> None:
    """The async cluster client runs the same flows (pipelines, scripts, per-node scans)."""
    b = open_redis(cluster)
    items = [Item(_ns_key(f"a{i}"), b"x", tags=("t",)) for i in range(6)]
    await b.aset_many(items)
    assert await b.aget_many([it.key for it in items]) == [b"x"] * 6
    assert await b.adelete_tags(["t"]) == 6
    await b.aset_many(items)
    assert await b.aclear("") == 6
    await b.aclose()


# -- asyncio clients and event loops ----------------------------------------------------------------------


def _our_connections(raw: redis.Redis, name: str) -> int:
    return sum(1 for c in raw.client_list() if c.get("name") == name)


def _named(redis_server: str, prefix: str, name: str) -> RedisBackend:
    """A backend whose connections carry client name `name` (so the test can count them on the server)."""
    return RedisBackend(f"{redis_server}?client_name={name}", prefix=prefix)


def test_asyncio_run_twice_uses_a_client_per_loop(redis_server: str, prefix: str, raw: redis.Redis) -> None:
    """Two asyncio.run() calls each get a working client, and each closes its own when its loop ends."""
    name = f"loops-{uuid.uuid4().hex[:8]}"
    b = _named(redis_server, prefix, name)

    async def roundtrip(value: bytes) -> tuple[bytes | None, int]:
        await b.aset_many([Item("k", value)])
        return await b.aget("k"), _our_connections(raw, name)

    assert asyncio.run(roundtrip(b"1")) == (b"1", 1)
    assert len(b._aclients) == 0 and _our_connections(raw, name) == 0
    assert asyncio.run(roundtrip(b"2")) == (b"2", 1)
    assert _our_connections(raw, name) == 0
    gc.collect()  # an unclosed connection would warn here, inside this test
    b.close()


def test_close_after_the_loop_closed_without_shutdown(redis_server: str, prefix: str, raw: redis.Redis) -> None:
    """A loop closed without finalizing async generators: close() still shuts the sockets, without warnings."""
    name = f"bare-{uuid.uuid4().hex[:8]}"
    b = _named(redis_server, prefix, name)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(b.aget("missing")) is None
    loop.close()
    assert _our_connections(raw, name) == 1
    b.close()
    gc.collect()
    deadline = time.monotonic() + 2
    while _our_connections(raw, name) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _our_connections(raw, name) == 0


def test_sync_close_reaches_a_loop_running_in_another_thread(redis_server: str, prefix: str, raw: redis.Redis) -> None:
    """close() from the main thread closes the client of a loop that is still running in a worker thread."""
    name = f"thread-{uuid.uuid4().hex[:8]}"
    b = _named(redis_server, prefix, name)
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=loop.run_forever, daemon=True)
    worker.start()
    try:
        assert asyncio.run_coroutine_threadsafe(b.aget("missing"), loop).result(5) is None
        assert _our_connections(raw, name) == 1
        b.close()
        deadline = time.monotonic() + 2
        while _our_connections(raw, name) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _our_connections(raw, name) == 0
        assert asyncio.run_coroutine_threadsafe(b.aget("missing"), loop).result(5) is None  # reopens lazily
    finally:
        asyncio.run_coroutine_threadsafe(b.aclose(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        worker.join(5)
        loop.close()


async def test_sync_close_inside_the_running_loop(redis_server: str, prefix: str, raw: redis.Redis) -> None:
    """close() called from inside a coroutine (e.g. agentcache.reset()) closes the loop's client in a task."""
    name = f"inloop-{uuid.uuid4().hex[:8]}"
    b = _named(redis_server, prefix, name)
    assert await b.aget("missing") is None
    b.close()
    for _ in range(200):
        if not _our_connections(raw, name):
            break
        await asyncio.sleep(0.01)
    assert _our_connections(raw, name) == 0
    assert await b.aget("missing") is None  # a new client for the same loop
    await b.aclose()
