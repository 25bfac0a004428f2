"""What every `agentcache` command shares: the store it works on, key parts, key lookup, decoding for display."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.cli.render import jsonable, render_json, with_progress
from agentcache.codec.entries import CorruptEntryError, decode_entry, decode_vector, stored_form
from agentcache.engine.cache import unchecked
from agentcache.engine.layer import ENTRY_TAG as FUNCTION_TAG
from agentcache.errors import SerializationError
from agentcache.keys.encoding import KEY_PREFIX, split_key

if TYPE_CHECKING:
    from agentcache.backends.base import Backend, EntryInfo, SupportsScan
    from agentcache.usage import Usage

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STORE",
    "EXIT_USAGE",
    "CliError",
    "Parts",
    "Session",
    "Shown",
    "decode",
    "echo",
    "echo_json",
    "entry_info",
    "parts",
    "resolve_key",
    "user_tags",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_STORE = 3

_HEX = re.compile(r"[0-9a-f]{1,32}")


class CliError(Exception):
    """A failure to report in one line, with the exit status to return."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Parts:
    """The readable parts of a key: namespace, layer, function and digest."""

    namespace: str
    layer: str
    function: str
    digest: str

    @property
    def internal(self) -> bool:
        """True for agentcache's own records (`_stats`, `_events`), hidden from `ls` unless `--all`."""
        return self.namespace.startswith("_")


def parts(key: str) -> Parts:
    """The readable parts of a key, including internal ones (`ac:v1:_events:event:{digest}`)."""
    split = split_key(key)
    if split is not None:
        return Parts(split.namespace, split.layer, split.function, split.digest)
    rest = key[len(KEY_PREFIX) :].split(":") if key.startswith(KEY_PREFIX) else [key]
    if len(rest) == 3:
        return Parts(rest[0], rest[1], "", rest[2])
    rest += [""] * (4 - len(rest))
    return Parts(rest[0], rest[1], ":".join(rest[2:-1]), rest[-1])


def user_tags(tags: Sequence[str]) -> list[str]:
    """The tags a user gave (without the internal per-function tag)."""
    return [t for t in tags if not t.startswith(FUNCTION_TAG)]


class Session:
    """The store one command works on, opened without the fail-open wrapper so that failures are reported."""

    def __init__(self, url: str | None) -> None:
        self.cache = unchecked(url, fail_open=False)  # a read of a store whose directory is missing finds nothing
        self.url = self.cache.url

    @property
    def store(self) -> Backend:
        """The backend, opened on first use (raises `ConfigurationError` / `MissingDependencyError`)."""
        return self.cache.store

    def absent(self) -> bool:
        """True when the store is a SQLite file that does not exist yet (reading must not create it)."""
        named = self.url.partition("?")[0].removeprefix("sqlite://")
        if named != self.url.partition("?")[0] and named.strip("/") and not Path(named).expanduser().exists():
            return True  # checked before opening, which refuses a missing directory
        path = getattr(self.store, "path", None)
        return isinstance(path, Path) and not path.exists()

    def scanner(self) -> SupportsScan:
        """The backend as a `SupportsScan`, or a `CliError` saying it cannot list entries."""
        from agentcache.backends.base import SupportsScan

        store = self.store
        if not isinstance(store, SupportsScan):
            raise CliError(f"the {type(store).__name__} of {self.url} cannot list its entries")
        return store

    def scan(self, prefix: str, *, tag: str | None = None, label: str = "scanning") -> Iterator[EntryInfo]:
        """Every live entry under `prefix` (with a progress line on a terminal for long scans)."""
        if self.absent():
            return iter(())
        return with_progress(self.scanner().scan(prefix, tag=tag), label)

    def get(self, key: str) -> bytes | None:
        """The stored bytes of `key`, or `None`."""
        return None if self.absent() else self.store.get(key)

    def close(self) -> None:
        """Close the backend."""
        self.cache.close()


def echo(text: str = "") -> None:
    """Print a line on stdout."""
    sys.stdout.write(text + "\n")


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    echo(render_json(value))


def resolve_key(s: Session, text: str) -> str:
    """A full key as given, or the one key whose digest starts with `text`."""
    if text.startswith(KEY_PREFIX):
        return text
    needle = text.lower()
    if _HEX.fullmatch(needle) is None:
        raise CliError(
            f"{text!r} is neither a full key (ac:v1:...) nor a digest prefix (hex, as `agentcache ls` shows it)"
        )
    found = [info.key for info in s.scan(KEY_PREFIX, label="searching") if parts(info.key).digest.startswith(needle)]
    if not found:
        raise CliError(f"no entry whose digest starts with {text!r} in {s.url}", EXIT_NOT_FOUND)
    if len(found) > 1:
        listed = "\n  ".join(found[:10]) + ("\n  ..." if len(found) > 10 else "")
        raise CliError(f"{len(found)} entries match {text!r}; give more characters:\n  {listed}")
    return found[0]


@dataclass
class Shown:
    """An entry decoded for display: its kind, a JSON-ready value, what the call cost, and a note if any."""

    kind: str
    value: Any
    created_at: float | None = None
    duration: float | None = None
    usage: Usage | None = None
    note: str = ""


def decode(raw: bytes, key: str, layer: str) -> Shown:
    """Decode the bytes stored under `key` for display; entries this process cannot rebuild are shown in their
    stored form, damaged ones (checksum, another key's) as unreadable."""
    if layer == "embedding":
        try:
            vector = decode_vector(raw, key)
            return Shown("vector", vector, note=f"{len(vector)} float32 dimensions")
        except SerializationError as exc:
            return _unreadable(exc)
    try:
        entry = decode_entry(raw, key)
        return Shown(entry.kind, jsonable(entry.value), entry.created_at, entry.duration, entry.usage)
    except CorruptEntryError as exc:
        return _unreadable(exc)
    except SerializationError as exc:
        problem = str(exc)
    try:
        stored = stored_form(raw, key)
        note = f"shown in its stored (type-tagged) form: {problem}"
        return Shown(stored.kind, stored.value, stored.created_at, stored.duration, stored.usage, note)
    except SerializationError as exc:
        return _unreadable(exc)


def _unreadable(exc: SerializationError) -> Shown:
    return Shown("unreadable", None, note=f"cannot decode: {exc} (the cache treats it as a miss)")


def entry_info(s: Session, key: str) -> EntryInfo | None:
    """What the store reports about `key` (size, times, tags), or `None`."""
    return next((info for info in s.scan(key) if info.key == key), None)
