"""Canonical keys: order-insensitive where they must be, collision-free across types, namespaces validated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import uuid
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcache import ConfigurationError, KeyEncodingError
from agentcache.keys.encoding import canonical_bytes, make_key, namespace_prefixes, split_key, validate_namespace

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


class RequestContext(pydantic.BaseModel):
    """A stand-in for MCP's `Context`: a pydantic model with no fields whose state lives in private attributes
    (the request being served and the server), set by its constructor like `mcp.server.fastmcp.Context`."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    _request_context: Any = None
    _fastmcp: Any = None

    def __init__(self, *, request_context: Any = None, fastmcp: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._request_context = request_context
        self._fastmcp = fastmcp

    @property
    def request_id(self) -> str:
        return str(self._request_context)


class Secretive(pydantic.BaseModel):
    name: str
    token: str = pydantic.Field(exclude=True)


@dataclasses.dataclass
class WithPostInit:
    model: str

    def __post_init__(self) -> None:
        self.client = object()  # state outside the fields


@dataclasses.dataclass(slots=True)
class Slotted:
    model: str


class SlottedPlus(Slotted):
    __slots__ = ("session",)

    def __init__(self, model: str, session: str) -> None:
        super().__init__(model)
        self.session = session


@dataclasses.dataclass
class Derived:
    text: str

    @functools.cached_property
    def words(self) -> int:
        return len(self.text.split())


class TaggedPrompt(str):
    """A str subclass carrying a model in its instance dict: its str value alone does not identify it."""

    model: str


class OnlySlots:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


class Point(NamedTuple):
    x: int
    y: int


class TestHiddenState:
    """Objects whose canonical encoding would drop state are refused, never keyed as a constant (#9.2)."""

    def test_model_with_private_state_is_refused(self) -> None:
        """Two MCP-like contexts serving different requests encoded to the same bytes before."""
        with pytest.raises(KeyEncodingError, match=r"'ctx'.*_request_context, _fastmcp.*ignore=\('ctx',\)"):
            canonical_bytes(RequestContext(request_context="r1", fastmcp="server"), "ctx")

    def test_context_argument_of_a_cached_tool(self) -> None:
        """End to end: the error names the argument and how to leave it out; ignore= makes the tool cacheable."""
        import agentcache

        @agentcache.tool_cached(backend="memory://")
        def search(query: str, ctx: RequestContext) -> str:
            return f"{query} for {ctx.request_id}"

        with pytest.raises(KeyEncodingError, match=r"ignore=\('ctx',\)"):
            search("q", RequestContext(request_context="r1"))

        @agentcache.tool_cached(backend="memory://", ignore=["ctx"])
        def search_ignoring(query: str, ctx: RequestContext) -> str:
            return query

        assert search_ignoring("q", RequestContext(request_context="r1")) == "q"

    def test_model_field_excluded_from_dump_is_refused(self) -> None:
        with pytest.raises(KeyEncodingError, match=r"\(token\)"):
            canonical_bytes(Secretive(name="a", token="t"), "creds")

    def test_dataclass_state_outside_its_fields_is_refused(self) -> None:
        with pytest.raises(KeyEncodingError, match=r"\(client\)"):
            canonical_bytes(WithPostInit("m"), "cfg")

    def test_slots_beyond_the_dataclass_fields_are_refused(self) -> None:
        assert canonical_bytes(Slotted("m")) == canonical_bytes(Slotted("m"))
        with pytest.raises(KeyEncodingError, match=r"\(session\)"):
            canonical_bytes(SlottedPlus("m", "s1"), "cfg")

    def test_plain_object_with_slots_is_refused(self) -> None:
        with pytest.raises(KeyEncodingError, match="cannot be part of a cache key"):
            canonical_bytes(OnlySlots(1), "value")

    def test_subclass_of_a_builtin_with_instance_state_is_refused(self) -> None:
        prompt = TaggedPrompt("hello")
        assert canonical_bytes(prompt) != canonical_bytes("hello")  # an empty subclass keeps its class
        prompt.model = "gpt-4o"
        with pytest.raises(KeyEncodingError, match=r"\(model\)"):
            canonical_bytes(prompt, "prompt")

    def test_masked_array_is_refused(self) -> None:
        masked = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
        with pytest.raises(KeyEncodingError, match="_mask"):
            canonical_bytes(masked, "x")

    def test_structured_arrays_differ_by_field_names(self) -> None:
        a = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
        b = np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8")])
        assert canonical_bytes(a) != canonical_bytes(b)

    def test_derived_state_and_hooks_are_accepted(self) -> None:
        """A cached_property derived from the fields is not hidden state; __cache_key__ stays authoritative."""
        d = Derived("a b")
        before = canonical_bytes(d)
        assert d.words == 2
        assert canonical_bytes(d) == before

        class KeyedContext(RequestContext):
            def __cache_key__(self) -> str:
                return "tenant-1"

        assert canonical_bytes(KeyedContext(request_context="r1")) == canonical_bytes(KeyedContext())

    def test_new_shapes_never_collide(self) -> None:
        """namedtuples are encodable (with their class), bytearray differs from bytes."""
        assert canonical_bytes(Point(1, 2)) != canonical_bytes((1, 2))
        assert canonical_bytes(Point(1, 2)) == canonical_bytes(Point(1, 2))
        assert canonical_bytes(bytearray(b"hi")) != canonical_bytes(b"hi")

    def test_private_state_nested_in_a_model_is_refused(self) -> None:
        """`model_dump` encodes nested models and dataclasses too: their hidden state is found there as well."""

        class Envelope(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
            name: str
            contexts: list[RequestContext]

        with pytest.raises(KeyEncodingError, match=r"contexts\[0\]\._request_context"):
            canonical_bytes(Envelope(name="a", contexts=[RequestContext(request_context="r1")]), "env")
        plain = Envelope(name="a", contexts=[])
        assert canonical_bytes(plain) == canonical_bytes(Envelope(name="a", contexts=[]))
