"""The public API: `__all__` is sorted, complete and importable."""

from __future__ import annotations

import types

import pytest

import agentcache


def test_all_is_sorted_and_importable() -> None:
    """Every name in __all__ exists, and the list is sorted without duplicates."""
    names = agentcache.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(agentcache, name), name


PUBLIC_API = [
    "ALL",
    "AgentCacheError",
    "AsyncCachedFunction",
    "Cache",
    "CacheLayer",
    "CachedFunction",
    "ConfigurationError",
    "InvalidationError",
    "KeyEncodingError",
    "SerializationError",
    "__version__",
    "aemit",
    "ainvalidate",
    "configure",
    "current_namespace",
    "embedding_cached",
    "emit",
    "explain_key",
    "flush_stats",
    "get_settings",
    "invalidate",
    "is_cache_hit",
    "last_semantic_hit",
    "mode",
    "namespace",
    "on",
    "prompt_cached",
    "refresh",
    "register_type",
    "reset",
    "response_cached",
    "semantic_cached",
    "set_prices",
    "stats",
    "tool_cached",
    "wrap",
]


def test_the_public_api_is_pinned() -> None:
    """`__all__` is exactly the list above (a change to it is a decision, made here on purpose); every name in it
    is listed by `dir(agentcache)`, the lazily loaded ones included, before anything loads them."""
    assert agentcache.__all__ == PUBLIC_API
    code = "import agentcache, json; print(json.dumps(dir(agentcache)))"
    import json
    import subprocess
    import sys

    listed = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert set(PUBLIC_API) <= set(listed)


def test_every_public_object_is_exported() -> None:
    """Public classes and functions defined in agentcache modules are all in __all__."""
    exported = set(agentcache.__all__)
    missing = [
        name
        for name, value in vars(agentcache).items()
        if not name.startswith("_")
        and isinstance(value, (type, types.FunctionType))
        and getattr(value, "__module__", "").startswith("agentcache")
        and name not in exported
    ]
    assert missing == []


def test_public_things_have_docstrings() -> None:
    """Every exported class and function says what it is."""
    undocumented = [
        name
        for name in agentcache.__all__
        if isinstance(getattr(agentcache, name), (type, types.FunctionType))
        and not (getattr(agentcache, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_lazy_attributes_fail_clearly() -> None:
    """An unknown attribute is an AttributeError, not an import crash."""
    with pytest.raises(AttributeError, match="does_not_exist"):
        agentcache.does_not_exist  # type: ignore[attr-defined]
