"""The client options of `agentcache.http_client()` reach the transports that send misses, and every route a
client takes (a proxy, an environment proxy, a mounted transport) is cached: real httpx/httpx2 clients against
the local fake server, through a small local forward proxy that counts what it relays."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from agentcache.errors import ConfigurationError
from agentcache.integrations.transport import async_http_client, http_client
from agentcache.testing.simulator import SimulatedLLM

LIBRARIES = ["httpx2", "httpx"]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


class Proxy:
    """A forward HTTP proxy on a free local port: relays absolute-form requests, counts them by path."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def do_CONNECT(self) -> None:
                """An HTTPS tunnel: counted, refused (the tests have no TLS server behind it)."""
                proxy.seen[f"CONNECT {self.path}"] += 1
                self.send_error(502)

            def do_POST(self) -> None:
                target = urlsplit(self.path)  # absolute form: http://host:port/path
                proxy.seen[target.path] += 1
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection",)}
                    upstream.request("POST", target.path, body, headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                self.send_header("content-type", answer.getheader("content-type") or "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def sim(_server: SimulatedLLM, monkeypatch: pytest.MonkeyPatch) -> SimulatedLLM:
    """The fake server with fresh counters, and no proxy in the environment unless a test sets one."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    _server.reset()
    return _server


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy() as running:
        yield running


def _ask_twice(client: Any, url: str) -> list[str]:
    """The same chat request twice; the second answer's ``x-agentcache`` header values."""
    with client:
        first = client.post(url, json=BODY)
        second = client.post(url, json=BODY)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    return [first.headers.get("x-agentcache", ""), second.headers.get("x-agentcache", "")]


def _chat_url(sim: SimulatedLLM) -> str:
    return sim.openai_base_url + "/chat/completions"


@pytest.mark.parametrize("library", LIBRARIES)
class TestTransportOptions:
    def test_limits_reach_the_pool(self, sim: SimulatedLLM, library: str) -> None:
        """The connection pool that sends misses has the limits passed (defaults: 100 and 20)."""
        lib = pytest.importorskip(library)
        client = http_client(library=library, limits=lib.Limits(max_connections=7, max_keepalive_connections=3))
        pool = client._transport._inner._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
        assert _ask_twice(client, _chat_url(sim)) == ["", "hit"]
        assert sim.calls["chat.completions"] == 1

    def test_verify_false_reaches_the_transport(self, sim: SimulatedLLM, library: str) -> None:
        """``verify=False``: the pool's TLS context checks no certificate; the default one does."""
        off = http_client(library=library, verify=False)
        on = http_client(library=library)
        try:
            assert off._transport._inner._pool._ssl_context.verify_mode == ssl.CERT_NONE
            assert on._transport._inner._pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
        finally:
            off.close()
            on.close()

    def test_proxy_route_is_cached(self, sim: SimulatedLLM, proxy: Proxy, library: str) -> None:
        """``proxy=``: requests go through the proxy, and the second identical one reaches neither it nor upstream."""
        assert _ask_twice(http_client(library=library, proxy=proxy.url), _chat_url(sim)) == ["", "hit"]
        assert proxy.seen["/v1/chat/completions"] == 1
        assert sim.calls["chat.completions"] == 1

    def test_environment_proxy_honoured_and_cached(
        self, sim: SimulatedLLM, proxy: Proxy, library: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``HTTP_PROXY`` is used as httpx uses it (``trust_env``), cached; ``NO_PROXY`` and ``trust_env=False``
        go direct, cached too; ``HTTPS_PROXY`` tunnels https requests through the proxy."""
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert _ask_twice(http_client(library=library), _chat_url(sim)) == ["", "hit"]
        assert proxy.seen["/v1/chat/completions"] == 1
        direct = http_client(library=library, trust_env=False, namespace="direct")
        assert _ask_twice(direct, _chat_url(sim)) == ["", "hit"]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert _ask_twice(http_client(library=library, namespace="bypass"), _chat_url(sim)) == ["", "hit"]
        assert proxy.seen["/v1/chat/completions"] == 1
        assert sim.calls["chat.completions"] == 3
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        lib = pytest.importorskip(library)
        with http_client(library=library, namespace="tls") as client, pytest.raises(lib.ProxyError):
            client.post("https://api.example.test/v1/chat/completions", json=BODY)
        assert proxy.seen["CONNECT api.example.test:443"] == 1

    def test_mounted_transports_are_cached(self, sim: SimulatedLLM, proxy: Proxy, library: str) -> None:
        """A transport mounted for the server's address (here one through the proxy) answers from the cache too."""
        lib = pytest.importorskip(library)
        client = http_client(library=library, mounts={"http://127.0.0.1": lib.HTTPTransport(proxy=proxy.url)})
        assert _ask_twice(client, _chat_url(sim)) == ["", "hit"]
        assert proxy.seen["/v1/chat/completions"] == 1
        assert sim.calls["chat.completions"] == 1

    def test_async_proxy_limits_and_env(
        self, sim: SimulatedLLM, proxy: Proxy, library: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The async client: limits and verify reach the pool; proxy=, a mount and HTTP_PROXY are cached."""
        lib = pytest.importorskip(library)

        async def twice(client: Any) -> list[str]:
            async with client:
                first = await client.post(_chat_url(sim), json=BODY)
                second = await client.post(_chat_url(sim), json=BODY)
            return [first.headers.get("x-agentcache", ""), second.headers.get("x-agentcache", "")]

        limited = async_http_client(
            library=library, proxy=proxy.url, limits=lib.Limits(max_keepalive_connections=2), verify=False
        )
        pool = limited._transport._inner._pool
        assert (pool._max_keepalive_connections, pool._ssl_context.verify_mode) == (2, ssl.CERT_NONE)
        assert asyncio.run(twice(limited)) == ["", "hit"]
        mounted = {"http://127.0.0.1": lib.AsyncHTTPTransport(proxy=proxy.url)}
        assert asyncio.run(twice(async_http_client(library=library, namespace="mount", mounts=mounted))) == ["", "hit"]
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert asyncio.run(twice(async_http_client(library=library, namespace="env"))) == ["", "hit"]
        assert proxy.seen["/v1/chat/completions"] == 3
        assert sim.calls["chat.completions"] == 3

    def test_transport_only_options_refused(self, library: str) -> None:
        with pytest.raises(ConfigurationError, match="retries"):
            http_client(library=library, retries=2)
        with pytest.raises(ConfigurationError, match="AsyncHTTPTransport"):
            async_http_client(library=library, uds="x.sock")

    def test_own_transport_with_retries(self, sim: SimulatedLLM, library: str) -> None:
        lib = pytest.importorskip(library)
        client = http_client(library=library, transport=lib.HTTPTransport(retries=2))
        assert _ask_twice(client, _chat_url(sim)) == ["", "hit"]
        assert sim.calls["chat.completions"] == 1
