"""Cassettes: the recorded HTTP answers a test replays, as deterministic, reviewable, scrubbed JSON.

A cassette holds the interactions that went through an agentcache HTTP client (`agentcache.http_client()`)
while it was active. Each interaction is the cache's view of the request (method, path, query, API-version
headers, JSON body without transport-only fields) and the answer (status, a few headers, the JSON body or the
SSE events), with secrets scrubbed from both. The file is sorted and indented the same way every time, so
re-recording an unchanged test rewrites it byte for byte, and a diff shows what changed in a prompt.

In replay, a request with no recorded answer gets a 404 answer (which SDKs raise at once, without retrying)
whose message names the request and shows a diff against the nearest recorded request; the miss is also kept
on the cassette so the pytest plugin fails the test even if the code under test swallowed the error.

Used by `agentcache.integrations.pytest_plugin`; `use_cassette(path, mode)` activates one elsewhere.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from agentcache.integrations import _http

__all__ = ["Cassette", "current", "use_cassette"]

Mode = Literal["record", "replay"]
FORMAT = 1

_current: ContextVar[Cassette | None] = ContextVar("agentcache_cassette", default=None)
_global: list[Cassette] = []  # the plugin's cassette, also seen from threads the test starts


def current() -> Cassette | None:
    """The active cassette (this context's, else the one the pytest plugin set for the running test)."""
    found = _current.get()
    if found is None and _global:
        return _global[-1]
    return found


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).splitlines()


class Cassette:
    """The recorded interactions of one test (or block), loaded from and saved to one JSON file."""

    def __init__(self, path: str | Path, mode: Mode) -> None:
        self.path = Path(path)
        self.mode: Mode = mode
        self.interactions: dict[str, dict[str, Any]] = {}
        self.misses: list[str] = []
        self._lock = threading.Lock()
        self._secrets = _http.env_secrets()
        if mode == "replay" and self.path.exists():
            self.load()

    @property
    def replaying(self) -> bool:
        """Whether answers come only from this cassette."""
        return self.mode == "replay"

    # -- file format ------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the interactions from the file."""
        data = json.loads(self.path.read_text(encoding="utf-8"))
        for item in data.get("interactions", []):
            self.interactions[self._match(item["request"])] = item

    def save(self) -> bool:
        """Write the recorded interactions (sorted, indented, newline-terminated); `False` when there are none."""
        if not self.interactions:
            return False
        items = [self.interactions[k] for k in sorted(self.interactions, key=self._order)]
        text = json.dumps(
            {"agentcache_cassette": FORMAT, "interactions": items}, indent=2, sort_keys=True, ensure_ascii=False
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text + "\n", encoding="utf-8")
        return True

    def _order(self, match: str) -> tuple[str, str]:
        return (self.interactions[match]["request"].get("path", ""), match)

    @staticmethod
    def _match(request: dict[str, Any]) -> str:
        return hashlib.sha256(_dumps(request).encode()).hexdigest()

    def _request(self, view: dict[str, Any]) -> dict[str, Any]:
        scrubbed: dict[str, Any] = json.loads(_dumps(_http.scrub(view, secrets=self._secrets)))
        return scrubbed  # key order and number forms as they will read back from the file

    def _response(self, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"status": value["status"]}
        headers = {k.lower(): v for k, v in value.get("headers", [])}
        headers.pop("x-request-id", None)  # per-run noise: the ids inside the body are kept
        headers.pop("request-id", None)
        if headers:
            out["headers"] = headers
        if "sse" in value:
            from agentcache.integrations._streams import parse_sse

            events = []
            for event, data in parse_sse(value["sse"].encode()):
                item: dict[str, Any] = {"data": _json_or_text(data)}
                if event is not None:
                    item["event"] = event
                events.append(item)
            out["events"] = events
        else:
            body = value.get("body", "")
            out["body"] = _json_or_text(body) if isinstance(body, str) else {"$base64": _b64(body)}
        scrubbed: dict[str, Any] = _http.scrub(out, names=False, secrets=self._secrets)
        return scrubbed

    @staticmethod
    def _value(response: dict[str, Any]) -> dict[str, Any]:
        """The transport's stored form of a recorded answer."""
        value: dict[str, Any] = {"status": response["status"], "headers": list(response.get("headers", {}).items())}
        if "events" in response:
            frames = []
            for item in response["events"]:
                data = item["data"]
                text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
                head = f"event: {item['event']}\n" if item.get("event") else ""
                frames.append(f"{head}data: {text}\n\n")
            value["sse"] = "".join(frames)
        else:
            body = response.get("body", "")
            if isinstance(body, dict) and set(body) == {"$base64"}:
                import base64

                value["body"] = base64.b64decode(body["$base64"])
            else:
                value["body"] = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return value

    # -- recording and replay -----------------------------------------------------------------------------

    def record(self, view: dict[str, Any], value: dict[str, Any]) -> None:
        """Keep the answer `value` (the transport's stored form) for the request `view`."""
        request = self._request(view)
        item = {"request": request, "response": self._response(value)}
        with self._lock:
            self.interactions[self._match(request)] = item

    def find(self, view: dict[str, Any]) -> dict[str, Any] | None:
        """The transport's stored form of the answer recorded for `view`, or `None`."""
        item = self.interactions.get(self._match(self._request(view)))
        return None if item is None else self._value(item["response"])

    def replay(self, view: dict[str, Any], request: Any, core: Any) -> Any:
        """The recorded answer to `request` as a response, or a 404 that explains the miss."""
        value = self.find(view)
        if value is not None:
            return core.response_of(value, request)
        message = self.explain_miss(view)
        with self._lock:
            self.misses.append(message)
        body = {"error": {"message": message, "type": "agentcache_replay_miss", "code": "agentcache_replay_miss"}}
        return core.http.Response(
            404, headers={"content-type": "application/json", "x-should-retry": "false"}, json=body, request=request
        )

    def explain_miss(self, view: dict[str, Any]) -> str:
        """What a replay miss tells: the request, the cassette, and a diff against the nearest recorded request."""
        request = self._request(view)
        head = (
            f"agentcache replay: no recorded answer for {request.get('method')} {request.get('path')} "
            f"in {self.path} ({len(self.interactions)} recorded). Re-record with --agentcache=record."
        )
        mine = _pretty(request)
        nearest: list[str] | None = None
        best = -1.0
        for item in self.interactions.values():
            theirs = _pretty(item["request"])
            ratio = difflib.SequenceMatcher(None, theirs, mine, autojunk=False).ratio()
            if ratio > best:
                best, nearest = ratio, theirs
        if nearest is None:
            return head + "\n\nThis request:\n" + "\n".join(mine)
        diff = difflib.unified_diff(nearest, mine, "nearest recorded request", "this request", lineterm="", n=3)
        return head + "\n\n" + "\n".join(diff)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@contextlib.contextmanager
def use_cassette(path: str | Path, mode: Mode = "replay", *, save: bool = True) -> Iterator[Cassette]:
    """Activate a cassette for the block: ``replay`` answers only from the file, ``record`` records into it.

    In ``record`` mode the file is (re)written at the end of the block when anything was recorded.
    """
    cassette = Cassette(path, mode)
    token = _current.set(cassette)
    try:
        yield cassette
    finally:
        _current.reset(token)
        if save and mode == "record":
            cassette.save()


def push_global(cassette: Cassette) -> None:
    """Make `cassette` active for every context and thread (the pytest plugin, per test)."""
    _global.append(cassette)


def pop_global(cassette: Cassette) -> None:
    """Undo `push_global`."""
    if cassette in _global:
        _global.remove(cassette)
