"""Per-call cache control: read and write, read only, write only (a forced refresh), or off; and a maximum age.

The engine reads the control in force once per call, so every entry point (decorators, `wrap()`, the low-level
`CacheLayer` API) obeys it the same way::

    with agentcache.refresh():            # call again and store the fresh result, whatever is cached
        ask(messages)
    with agentcache.mode("read"):         # serve hits, never store (e.g. a dry run that must not fill the cache)
        ask(messages)
    with agentcache.mode(max_age="10m"):  # an entry older than 10 minutes is a miss (it is not deleted)
        ask(messages)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from agentcache._record import Frozen
from agentcache.durations import TTL, parse_ttl
from agentcache.errors import ConfigurationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    Mode = Literal["readwrite", "read", "write", "off"]
    """``readwrite`` (the default): serve hits, store misses. ``read``: serve hits, never store. ``write``: always
    call, then store (a forced refresh). ``off``: bypass the cache entirely (counted as a bypass in stats)."""

__all__ = ["Control", "Mode", "current", "mode", "refresh", "resolve"]

_MODES: tuple[Mode, ...] = ("readwrite", "read", "write", "off")  # `Mode`'s values (no `typing` at run time)


class Control(Frozen):
    """The cache control of one call: its mode and the oldest entry it accepts (seconds, `None`: any)."""

    __match_args__ = ("mode", "max_age")
    __slots__ = __match_args__

    mode: Mode
    max_age: float | None

    def __init__(
        self,
        mode: Mode = "readwrite",
        max_age: float | None = None,
    ) -> None:
        _set = object.__setattr__  # frozen; one call per field is faster than `_fill` (built per call)
        _set(self, "mode", mode)
        _set(self, "max_age", max_age)

    @property
    def reads(self) -> bool:
        """Whether a call under this control may be served from the cache."""
        return self.mode in ("readwrite", "read")

    @property
    def stores(self) -> bool:
        """Whether a call under this control may store its result."""
        return self.mode in ("readwrite", "write")


_current: ContextVar[Control | None] = ContextVar("agentcache_control", default=None)
current = _current.get
"""The control in force (`None`: the default, read and write with no age limit)."""


def _check_mode(name: object) -> Mode:
    if name not in _MODES:
        raise ConfigurationError(f"cache mode must be one of {', '.join(_MODES)}; got {name!r}")
    return name


def resolve(mode: Mode | None = None, max_age: TTL = None) -> Control | None:
    """The control a call runs under: the block's (`mode()`), overridden by the arguments given to the call.

    Raises:
        ConfigurationError: an unknown mode or a negative `max_age`.
    """
    outer = _current.get()
    if mode is None and max_age is None:
        return outer
    checked: Mode = _check_mode(mode) if mode is not None else (outer.mode if outer is not None else "readwrite")
    age = parse_ttl(max_age) if max_age is not None else (outer.max_age if outer is not None else None)
    if checked == "readwrite" and age is None:
        return None
    return Control(checked, age)


@contextmanager
def mode(name: Mode | None = None, /, *, max_age: TTL = None) -> Iterator[Control | None]:
    """Run the calls in this block (thread or task) under cache mode `name` and/or a maximum entry age.

    Nested blocks override the modes and ages they set. See `Mode` for what each mode does.

    Raises:
        ConfigurationError: at once, for an unknown mode or a negative age.
    """
    control = resolve(name, max_age)
    token = _current.set(control)
    try:
        yield control
    finally:
        _current.reset(token)


def refresh() -> AbstractContextManager[Control | None]:
    """``mode("write")``: the calls in this block run again and their fresh results replace what is cached."""
    return mode("write")
