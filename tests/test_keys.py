"""Canonical keys: order-insensitive where they must be, collision-free across types, namespaces validated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcache import ConfigurationError, KeyEncodingError
from agentcache.keys import canonical_bytes, make_key, namespace_prefixes, split_key, validate_namespace

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    ONE = 1


@dataclasses.dataclass
class Params:
    temperature: float
    stop: tuple[str, ...] = ()


class Msg(pydantic.BaseModel):
    role: str
    content: str


class TestCanonicalEncoding:
    @given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
    @settings(max_examples=200, deadline=None)
    def test_dict_order_does_not_matter(self, d: dict[str, Any]) -> None:
        """A dict and the same dict built in reverse order encode to the same bytes."""
        reversed_d = dict(reversed(list(d.items())))
        assert canonical_bytes(d) == canonical_bytes(reversed_d)

    @given(json_values, json_values)
    @settings(max_examples=300, deadline=None)
    def test_equal_bytes_only_for_equal_values(self, a: Any, b: Any) -> None:
        """Different JSON values (with types: 1 vs 1.0 vs True) never share bytes."""
        if canonical_bytes(a) == canonical_bytes(b):
            assert _typed(a) == _typed(b)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ((1, 2), [1, 2]),
            ({1: "a"}, {"1": "a"}),
            (b"hi", "hi"),
            (b"6869", "6869"),
            (1, 1.0),
            (1, True),
            (0, False),
            ("", None),
            (Level.ONE, 1),
            (Color.RED, 1),
            ({1, 2}, [1, 2]),
            (frozenset({1}), {1}),
            (dt.date(2026, 1, 1), "2026-01-01"),
            (decimal.Decimal("1.5"), 1.5),
            (uuid.UUID(int=1), str(uuid.UUID(int=1))),
            (np.array([1, 2], dtype=np.int64), np.array([1, 2], dtype=np.int32)),
            (np.array([[1, 2]]), np.array([1, 2])),
            ({"$t": "tuple", "v": [1]}, (1,)),
            (["a:b"], ["a", "b"]),
            (Params(0.5), {"temperature": 0.5, "stop": ()}),
            (PurePosixPath("/a"), "/a"),
            (-0.0, 0.0),
        ],
    )
    def test_types_never_collide(self, a: Any, b: Any) -> None:
        """Values that JSON would conflate encode differently."""
        assert canonical_bytes(a) != canonical_bytes(b)

    def test_supported_types_are_stable(self) -> None:
        """Every supported type encodes, and encodes the same way twice."""
        values = [
            dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
            dt.timedelta(seconds=5),
            Params(0.1, ("\n",)),
            Msg(role="user", content="hi"),
            np.arange(6, dtype=np.float32).reshape(2, 3),
            np.float64(1.5),
            {("tuple", "key"): 1},
            {1, "a", (2, 3)},
        ]
        for v in values:
            assert canonical_bytes(v) == canonical_bytes(v)

    def test_pydantic_models_and_dataclasses_compare_by_content(self) -> None:
        """Equal models give equal keys; a changed field changes the key."""
        assert canonical_bytes(Msg(role="u", content="a")) == canonical_bytes(Msg(role="u", content="a"))
        assert canonical_bytes(Msg(role="u", content="a")) != canonical_bytes(Msg(role="u", content="b"))

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1, {"x": float("-inf")}], decimal.Decimal("NaN")])
    def test_nan_raises(self, bad: Any) -> None:
        """NaN and infinities have no stable key."""
        with pytest.raises(KeyEncodingError):
            canonical_bytes(bad)

    def test_unknown_types_raise_with_the_path(self) -> None:
        """An unencodable object raises and names where it was found, never falls back to str()."""
        with pytest.raises(KeyEncodingError, match=r"messages\[0\]\.client"):
            canonical_bytes([{"client": object()}], "messages")

    def test_cache_key_hook(self) -> None:
        """Objects may define __cache_key__ to return plain data."""

        class Client:
            def __init__(self, model: str) -> None:
                self.model = model

            def __cache_key__(self) -> str:
                return self.model

        assert canonical_bytes(Client("a")) == canonical_bytes(Client("a"))
        assert canonical_bytes(Client("a")) != canonical_bytes(Client("b"))
        assert canonical_bytes(Client("a")) != canonical_bytes("a")


def _typed(v: Any) -> Any:
    if isinstance(v, dict):
        return ("dict", sorted((k, _typed(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("list", [_typed(x) for x in v])
    return (type(v).__name__, v)


class TestNamespaces:
    @pytest.mark.parametrize("good", ["default", "tenant-42", "acme/search", "a.b_c-d@e+f=g", "X"])
    def test_valid(self, good: str) -> None:
        """Letters, digits and a few separators are accepted."""
        assert validate_namespace(good) == good

    @given(st.text(min_size=1, max_size=12))
    @settings(max_examples=300, deadline=None)
    def test_no_namespace_can_reach_another(self, ns: str) -> None:
        """A valid namespace's prefixes never match keys of a different namespace."""
        try:
            own, nested = namespace_prefixes(ns)
        except ConfigurationError:
            return
        assert ":" not in ns and "*" not in ns and "?" not in ns and "[" not in ns
        other = make_key(ns + "x", "tool", "f", "d")
        assert not other.startswith(own) and not other.startswith(nested)
        mine = make_key(ns, "tool", "f", "d")
        assert mine.startswith(own)

    def test_key_round_trips_through_split(self) -> None:
        """The readable prefix parses back into its parts."""
        key = make_key("tenant-42/search", "response", "app.ask", "abc")
        parts = split_key(key)
        assert parts is not None and parts.namespace == "tenant-42/search" and parts.layer == "response"
        assert split_key("foreign:key") is None
