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
