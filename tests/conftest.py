"""Shared fixtures: the backend matrix (memory, sqlite, and redis kinds when a redis-server exists)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.backends import BACKEND_KINDS, REDIS_KINDS, backend_url_for
from support.redis_server import REDIS_SERVER, RedisServer


def pytest_configure(config: pytest.Config) -> None:
    """Point the platform cache dir (and so the default store) of this run and of every process it starts at a
    private directory: no test, subprocess or example can write into the user's real cache. The frameworks'
    telemetry and data downloads are turned off (tests/support/offline.py)."""
    import tempfile

    from support.offline import offline_environment

    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="agentcache-xdg-")
    os.environ.update(offline_environment(Path(tempfile.mkdtemp(prefix="agentcache-offline-"))))


@pytest.fixture(autouse=True)
def _pristine_agentcache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts unconfigured, with its default store in a private dir (never the user's cache)."""
    import agentcache

    for name in (
        "AGENTCACHE_URL",
        "AGENTCACHE_DISABLED",
        "AGENTCACHE_NAMESPACE",
        "AGENTCACHE_TTL",
        "AGENTCACHE_DECODED_BYTES",
        "AGENTCACHE_PROJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTCACHE_DIR", str(tmp_path_factory.mktemp("agentcache-home")))
    agentcache.reset()
    yield
    agentcache.reset()


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    """The sync and the async face of the same function (see `test_decorators.make`)."""
    return str(request.param)


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Each backend kind in turn."""
    return str(request.param)


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> dict[str, str]:
    """URLs of servers the tests started (filled by server fixtures such as the redis one)."""
    urls: dict[str, str] = {}
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend_kind") in REDIS_KINDS:
        urls["redis"] = request.getfixturevalue("redis_server")
    return urls


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test parametrized with a Redis backend kind `redis`."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend_kind") in REDIS_KINDS:
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a redis-server this test session started on a free port (skips without the binary)."""
    from support.redis_server import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH (`make test` installs it)")
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def backend_url(backend_kind: str, tmp_path: Path, servers: dict[str, str]) -> str:
    """A fresh backend URL of the current kind, private to this test."""
    return backend_url_for(backend_kind, tmp_path, servers)


@pytest.fixture
def backend(backend_url: str) -> Iterator[object]:
    """An opened backend of the current kind, closed after the test."""
    from agentcache.backends import open_backend

    b = open_backend(backend_url)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def server() -> Iterator[Any]:
    """A local fake OpenAI/Anthropic HTTP server (the real SDKs talk to it), stopped after the test."""
    from support.fake_llm_server import fake_llm_server

    with fake_llm_server() as llm:
        yield llm


class MemoryClock:
    """The memory backend's monotonic clock, moved by the test: TTLs tested without racing a loaded machine."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def memory_clock(monkeypatch: pytest.MonkeyPatch) -> MemoryClock:
    """Freezes the clock of `agentcache.backends.memory` (and so of L1 tiers); `advance` moves it."""
    clock = MemoryClock()
    monkeypatch.setattr("agentcache.backends.memory._monotonic", clock)
    return clock


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store URL private to this test."""
    return f"sqlite://{tmp_path / 'cache.db'}"


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server private to this test, so it can be stopped (SIGSTOP) and killed."""
    pytest.importorskip("redis")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer().start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.cleanup()


@pytest.fixture(scope="module")
def _server() -> Iterator[Any]:
    """One local fake model server (`agentcache.testing.simulator.SimulatedLLM`) per test module; each module's
    `sim` fixture resets its counters per test."""
    from agentcache.testing.simulator import SimulatedLLM

    with SimulatedLLM() as sim:
        yield sim
