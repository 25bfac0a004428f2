"""Count the commands clients send to a redis-server the tests started (MONITOR), not timing anything.

`CommandLog` subscribes with MONITOR in a thread and records every command a client sent, leaving out the
commands Lua scripts ran (they are part of one EVALSHA) and its own. `stop()` sends a marker and waits until
the log has it, so the log is complete when `stop` returns. `INFO commandstats` cannot tell the two apart: a
script's inner calls are counted there too.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CommandLog", "Sent"]


@dataclass(frozen=True)
class Sent:
    """One command a client sent: its name (upper case), its arguments and the client's `host:port`."""

    name: str
    args: tuple[str, ...]
    client: str


@dataclass
class CommandLog:
    """The commands clients send to the server at `url` between `start()` and `stop()`."""

    url: str
    sent: list[Sent] = field(default_factory=list)
    _marker: str = field(default_factory=lambda: f"commandlog-{uuid.uuid4().hex}")
    _ready: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _client: Any = None

    def start(self) -> CommandLog:
        """Begin recording; returns once MONITOR is on."""
        import redis

        self._client = redis.Redis.from_url(self.url, protocol=2)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        return self

    def _listen(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                command = str(event.get("command", ""))
                if self._marker in command:
                    self._done.set()
                    return
                if event.get("client_type") == "lua" or not command:
                    continue
                name, *args = command.split(" ")
                client = f"{event.get('client_address')}:{event.get('client_port')}"
                self.sent.append(Sent(name.upper(), tuple(args), client))

    def stop(self) -> list[Sent]:
        """Stop recording (after every command sent before this call is in the log); return the log."""
        assert self._client is not None and self._thread is not None
        self._client.echo(self._marker)
        if not self._done.wait(10):
            raise RuntimeError("MONITOR lost the marker")
        self._thread.join(5)
        self._client.close()
        return self.sent

    def names(self) -> Counter[str]:
        """How many times each command was sent."""
        return Counter(s.name for s in self.sent)

    def __enter__(self) -> CommandLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self._done.is_set():
            self.stop()
