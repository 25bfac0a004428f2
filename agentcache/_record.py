"""`Record` and `Frozen`: the base of agentcache's small value classes, in place of `dataclasses`.

A dataclass costs ~0.6 ms of code generation when its module is imported (and `dataclasses` imports `inspect`):
~9 ms for the classes a first cached call needed. A record lists its fields in `__match_args__`, in order (its
`__slots__` too), and writes its own `__init__` (ending with `_fill`, or one assignment per field in classes
built on every call); it gets a dataclass's repr and field-wise equality (and, frozen, its hash and refusal of
assignment).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    R = TypeVar("R", bound="Record")

__all__ = ["Frozen", "Record", "field_names", "replace"]


class Record:
    """Fields are the names in `__match_args__`; equal when of the same class with equal fields (so not hashable)."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _fill(self, *values: object) -> None:
        """Set the fields, in `__match_args__` order (what an `__init__` ends with; frozen records too)."""
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()


class Frozen(Record):
    """A `Record` whose fields are set once, by `__init__` (`_fill`); hashable by field."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())


def field_names(cls: type[Record]) -> tuple[str, ...]:
    """The fields of a record class, in order (as `dataclasses.fields`)."""
    return cls.__match_args__


def replace(record: R, **changes: Any) -> R:
    """A copy of `record` with some fields changed, built by its `__init__` (as `dataclasses.replace`)."""
    build: Any = type(record)
    new: R = build(**{name: changes.pop(name, getattr(record, name)) for name in record.__match_args__}, **changes)
    return new
