"""`import agentcache` stays fast and pulls in no optional dependency."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "redis",
    "openai",
    "anthropic",
    "langchain_core",
    "numpy",
    "onnxruntime",
    "tokenizers",
    "usearch",
    "msgpack",
    "pydantic",
    "httpx",
    "tenacity",
    "dotenv",
    "platformdirs",
    "sqlite3",
]


def test_import_pulls_no_optional_dependency() -> None:
    """None of the optional packages (nor the lazily used core ones) is imported by `import agentcache`."""
    code = f"import sys, json, agentcache; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


MODULE_BUDGET = 3  # other modules `import agentcache` adds to a bare interpreter (1 on Python 3.11: __future__)
OWN_BUDGET = 4  # agentcache's own modules it imports (3: the package, its errors, the stats folder); the rest is lazy


def test_import_stays_small() -> None:
    """`import agentcache` adds at most MODULE_BUDGET standard-library modules to a bare interpreter, and imports
    at most OWN_BUDGET of its own (no optional layer: semantic, integrations, CLI).

    A count, not a timing: what it costs in milliseconds is measured in benchmarks/ (a unit test timing an import
    fails on a busy machine). A new eager import of a large module tree shows up here as a jump in the count.
    """
    code = (
        "import sys, json; before = set(sys.modules); import agentcache; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = json.loads(out.stdout)
    own = [m for m in added if m == "agentcache" or m.startswith("agentcache.")]
    assert len(added) - len(own) <= MODULE_BUDGET
    assert len(own) <= OWN_BUDGET, own
    assert not [m for m in own if m.startswith(("agentcache.semantic", "agentcache.integrations", "agentcache.cli"))]


def test_names_moved_off_the_hit_path_are_still_importable_where_they_were() -> None:
    """The protocols, `CacheInfo`, `CacheOptions` and the type aliases left the modules a first hit loads (they
    need `typing`); importing them from their old homes gives the same objects as before."""
    import typing

    from agentcache.backends import Backend as B1
    from agentcache.backends import SupportsScan as S1
    from agentcache.backends.base import Backend as B2
    from agentcache.backends.base import SupportsGenerations, SupportsLocking
    from agentcache.backends.base import SupportsScan as S2
    from agentcache.backends.protocols import Backend, SupportsScan
    from agentcache.codec.entries import Kind
    from agentcache.decorators import CacheDecorator, CacheOptions, tool_cached
    from agentcache.decorators._options import CacheDecorator as D2
    from agentcache.decorators._options import CacheOptions as O2
    from agentcache.engine.flow import Flow, Op
    from agentcache.keys.namespaces import ALL, NamespaceTarget
    from agentcache.stats.counters import CacheInfo
    from agentcache.stats.info import CacheInfo as C2

    assert B1 is B2 is Backend and S1 is S2 is SupportsScan
    assert isinstance(SupportsLocking, type) and isinstance(SupportsGenerations, type)
    assert CacheInfo is C2 and CacheOptions is O2 and CacheDecorator is D2 and callable(tool_cached)
    assert typing.get_args(Kind) == ("value", "stream")
    assert typing.get_args(NamespaceTarget) == (str, typing.Literal[ALL], type(None))
    assert typing.get_args(Flow)[:2] == (Op, typing.Any)
    import agentcache.backends.base as base

    with pytest.raises(AttributeError):
        _ = base.Nothing  # type: ignore[attr-defined]
