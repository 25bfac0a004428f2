"""Packaging: the distribution name, its metadata, its extras and the install lines the docs print."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys
from pathlib import Path

import pytest

import agentcache
from agentcache.errors import DISTRIBUTION, MissingDependencyError

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


IMPORT_NAMES = {"opentelemetry-api": "opentelemetry"}
"""Distributions whose import name is not their name with `_` for `-`."""


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip()


def _import_name(requirement: str) -> str:
    name = _requirement_name(requirement)
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def _install_targets() -> list[tuple[str, str]]:
    """(file, target) for every argument of a `pip install` the docs tell a user to run."""
    found = []
    for path in DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"pip install ([^`#\n]+)", line):
                words = shlex.split(match.group(1).strip().rstrip("`"))
                found += [(path.name, w) for w in words if not w.startswith("-")]
    return found


def test_distribution_is_not_the_name_taken_on_the_index() -> None:
    """`agentcache` on the public index is someone else's project: this one is installed as DISTRIBUTION."""
    assert PYPROJECT["project"]["name"] == DISTRIBUTION != "agentcache"
    assert importlib.metadata.version(DISTRIBUTION) == agentcache.__version__


def test_import_name_and_command_stay_agentcache() -> None:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"agentcache": "agentcache.cli:main"}
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["agentcache"]


def test_license_file_matches_the_metadata() -> None:
    """The metadata says MIT and names LICENSE; the file exists, is MIT, and goes into the sdist and wheel."""
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "LICENSE" in PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert importlib.metadata.distribution(DISTRIBUTION).metadata.get_all("License-File") == ["LICENSE"]


def test_every_extra_installs_only_what_agentcache_imports() -> None:
    """An extra's packages are imported somewhere in agentcache/ (no extra that installs an unused package)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "agentcache").rglob("*.py"))
    unused = [
        (extra, requirement)
        for extra, requirements in EXTRAS.items()
        if extra != "all"
        for requirement in requirements
        if not re.search(rf"^\s*(import|from) {_import_name(requirement)}\b", source, re.MULTILINE)
    ]
    assert unused == []
    assert EXTRAS["all"] == [f"{DISTRIBUTION}[{','.join(e for e in EXTRAS if e != 'all')}]"]


def test_install_lines_in_the_docs_install_this_project() -> None:
    """Every `pip install` in README.md and docs/ names this checkout (`.`) or DISTRIBUTION, with real extras."""
    targets = _install_targets()
    assert len(targets) >= 5
    for file, target in targets:
        name, _, extras = target.partition("[")
        assert name in {".", DISTRIBUTION}, f"{file}: pip install {target}"
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in EXTRAS, f"{file}: pip install {target}: no extra {extra!r}"


def test_missing_dependency_error_names_the_distribution() -> None:
    message = str(MissingDependencyError("redis", "redis"))
    assert f"pip install '{DISTRIBUTION}[redis]'" in message
    assert "pip install '.[redis]'" in message
