"""Rendering helpers for the `agentcache` command line: sizes, durations, values as JSON, a progress line."""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

__all__ = [
    "Progress",
    "human_bytes",
    "human_duration",
    "jsonable",
    "render_json",
    "timestamp",
    "truncate",
    "with_progress",
]

_T = TypeVar("_T")

PROGRESS_THRESHOLD = 2000
"""Scans longer than this many entries draw a progress line (only when stderr is a terminal)."""


def human_bytes(n: float) -> str:
    """`512 B`, `1.5 KB`, `3.2 MB` (powers of 1024)."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """A coarse duration for ages and expiries: `45 s`, `12 min`, `3.5 h`, `2.0 d`."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def timestamp(t: float) -> str:
    """Unix seconds as local `YYYY-MM-DD HH:MM:SS`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a decoded cache value, for display (tuples become lists, bytes a short summary...)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else repr(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray)):
        head = base64.b64encode(bytes(value[:48])).decode("ascii")
        return f"<{len(value)} bytes, base64 {head}{'…' if len(value) > 48 else ''}>"
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json"))
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time
    if callable(isoformat):
        return str(isoformat())
    return str(value)  # Decimal, UUID, timedelta: display only, never part of a key


def render_json(value: Any) -> str:
    """Pretty-printed JSON (2-space indent, non-ASCII kept)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def truncate(text: str, *, max_lines: int = 40, max_chars: int = 4000) -> tuple[str, int]:
    """Cut `text` to at most `max_lines` lines and `max_chars` characters; return it and how much was cut."""
    cut = text[:max_chars]
    lines = cut.split("\n")
    if len(lines) > max_lines:
        cut = "\n".join(lines[:max_lines])
    return cut, len(text) - len(cut)


class Progress:
    """A one-line progress indicator on a terminal; silent when the stream is not a TTY.

    `advance` keeps a running count that only appears once `threshold` items have gone by, so short scans print
    nothing; `show` draws a status line at once (for one long call that cannot report progress itself).
    """

    def __init__(
        self,
        label: str,
        *,
        unit: str = "entries",
        threshold: int = PROGRESS_THRESHOLD,
        stream: IO[str] | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.threshold = threshold
        self.stream = sys.stderr if stream is None else stream
        self.count = 0
        self._live = _isatty(self.stream)
        self._drawn = False
        self._next_draw = 0.0

    def advance(self, n: int = 1) -> None:
        """Count `n` more items and redraw (at most ten times a second)."""
        self.count += n
        if not self._live or self.count < self.threshold:
            return
        now = time.monotonic()
        if now >= self._next_draw:
            self._next_draw = now + 0.1
            self.show(f"{self.label}: {self.count:,} {self.unit}…")

    def show(self, text: str) -> None:
        """Replace the line with `text` (on a terminal only)."""
        if self._live:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def with_progress(items: Iterable[_T], label: str, *, stream: IO[str] | None = None) -> Iterator[_T]:
    """Yield `items`, showing a running count on the terminal once the scan grows long."""
    progress = Progress(label, stream=stream)
    try:
        for item in items:
            progress.advance()
            yield item
    finally:
        progress.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or unusual streams
        return False
