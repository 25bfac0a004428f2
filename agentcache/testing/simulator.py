"""A local, offline stand-in for the OpenAI and Anthropic HTTP APIs (examples, tests and benchmarks).

`SimulatedLLM` runs a real HTTP server in a daemon thread on a free `127.0.0.1` port; the official SDKs talk to
it through `base_url=`. It speaks enough of both APIs for the cached paths to be exercised end to end:

* OpenAI: `POST /v1/chat/completions` (JSON and SSE, tool-call deltas, the `stream_options.include_usage`
  chunk, `n>1`, `response_format` JSON schemas for `.parse`), `POST /v1/responses`, `POST /v1/embeddings`
  (float and base64), with automatic prefix caching reported as `prompt_tokens_details.cached_tokens`.
* Anthropic: `POST /v1/messages` (JSON and SSE events), with `cache_control` breakpoints simulated:
  `cache_creation_input_tokens` / `cache_read_input_tokens` and the 5m/1h split in `usage.cache_creation`.

Replies are deterministic functions of the request; each response `id` carries a serial number, so a cache hit
(same id as the first answer) is told apart from a fresh call. `calls[endpoint]` counts the requests that
reached the server, `requests` keeps their JSON bodies, `latency` delays every answer, `hold` (an event) holds
every answer until it is set, `chunk_delay` spaces SSE events, and `fail_next()` / `abort_streams_after` inject
errors.

    with SimulatedLLM() as sim:
        client = OpenAI(base_url=sim.openai_base_url, api_key="sk-sim")
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from agentcache.integrations import _streams
from agentcache.testing import replies as replies

__all__ = ["SimulatedLLM"]

ENDPOINTS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}


@dataclass
class _Failure:
    status: int
    remaining: int
    endpoint: str | None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client drops its connection (closed pools, abandoned streams)."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class SimulatedLLM:
    """A fake OpenAI + Anthropic HTTP endpoint in a background thread; use as a context manager."""

    def __init__(self, *, latency: float = 0.0, chunk_delay: float = 0.0) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.abort_streams_after: int | None = None
        self.hold: threading.Event | None = None
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._serial = 0
        self._prefixes = replies.PrefixCache()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> SimulatedLLM:
        """Start serving on a free port (idempotent); return `self`."""
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _make_handler(self))
            server.daemon_threads = True
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="agentcache-sim", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatedLLM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        if self._server is None:
            raise RuntimeError("SimulatedLLM is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `openai.OpenAI(...)`."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The `base_url` for `anthropic.Anthropic(...)`."""
        return self.url

    # -- controls ----------------------------------------------------------------------------------------

    def fail_next(self, status: int = 500, count: int = 1, endpoint: str | None = None) -> None:
        """Answer the next `count` requests (to `endpoint`, or any) with an HTTP `status` error."""
        with self._lock:
            self._failures.append(_Failure(status, count, endpoint))

    def reset(self) -> None:
        """Forget counters, recorded requests, injected failures and the simulated provider prompt cache."""
        with self._lock:
            self.calls.clear()
            self.requests.clear()
            self._failures.clear()
            self._prefixes = replies.PrefixCache()
            self.abort_streams_after = None
            self.hold = None

    # -- request handling (called from server threads) ------------------------------------------------------

    def _next_serial(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def _take_failure(self, endpoint: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.endpoint in (None, endpoint) and failure.remaining > 0:
                    failure.remaining -= 1
                    return failure.status
        return None

    def _record(self, endpoint: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.calls[endpoint] += 1
            self.requests.append((endpoint, body))

    def _answer(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        serial = self._next_serial()
        if endpoint == "chat.completions":
            cached = self._prefixes.openai_cached(body)
            return replies.chat_completion(body, serial, cached)
        if endpoint == "responses":
            return replies.response_object(body, serial, self._prefixes.openai_cached(body))
        if endpoint == "embeddings":
            return replies.embeddings(body)
        return replies.anthropic_message(body, serial, self._prefixes.anthropic_usage(body))

    def _events(self, endpoint: str, body: dict[str, Any], answer: dict[str, Any]) -> list[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        provider = {"chat.completions": "openai.chat", "messages": "anthropic.messages"}.get(
            endpoint, "openai.responses"
        )
        events = _streams.object_to_events(provider, answer, include_usage=include_usage) or []
        return [_streams.encode_sse([e]) for e in events]


def _make_handler(sim: SimulatedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

        def do_POST(self) -> None:
            """Route one API call."""
            endpoint = ENDPOINTS.get(self.path.split("?", 1)[0])
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if endpoint is None:
                self._json(404, {"error": {"message": f"unknown path {self.path}", "type": "not_found"}})
                return
            body: dict[str, Any] = json.loads(raw or b"{}")
            sim._record(endpoint, body)
            if sim.hold is not None:
                sim.hold.wait(120)  # a test's gate: bounded, so a broken test fails instead of hanging
            if sim.latency:
                time.sleep(sim.latency)
            status = sim._take_failure(endpoint)
            if status is not None:
                self._json(status, replies.error_body(endpoint, status), retry_ms="1")
                return
            answer = sim._answer(endpoint, body)
            if body.get("stream"):
                self._stream(sim._events(endpoint, body, answer))
            else:
                self._json(200, answer)

        def _json(self, status: int, payload: dict[str, Any], retry_ms: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if retry_ms is not None:
                self.send_header("retry-after-ms", retry_ms)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i, event in enumerate(events):
                if sim.abort_streams_after is not None and i >= sim.abort_streams_after:
                    # Dropping the connection mid-body makes the client see an incomplete chunked read.
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                if sim.chunk_delay:
                    time.sleep(sim.chunk_delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
