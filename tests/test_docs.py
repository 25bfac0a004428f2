"""The docs say what is measured: no promise that a table in benchmarks/results/ contradicts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUALITY = ROOT / "benchmarks" / "results" / "semantic_quality.md"

# Promises that measurements or known issues contradict (semantic false hits; stale reads after invalidate()).
OVERCLAIMS = [
    "no wrong answers",
    "never wrong",
    "never gets its answer",
    "no caller in the process gets the old value",
    "one tenant can never read or clear",
    "a corrupt or foreign entry is a miss",
    "no text is ever embedded twice",
]


def _text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split()).lower()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_overclaim(path: Path) -> None:
    text = _text(path)
    assert [c for c in OVERCLAIMS if c in text] == []


def _false_hit_rate(source: str) -> float:
    """The cos+guards false-hit rate of one source row of the per-source table."""
    for line in QUALITY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == source:
            return float(cells[-1])
    raise AssertionError(f"no row {source!r} in {QUALITY}")


def test_readme_quotes_the_measured_look_alike_false_hits() -> None:
    """The README's figure for hard look-alikes is the one in benchmarks/results/semantic_quality.md."""
    expected = round(_false_hit_rate("qqp-nondup-hard") * 100)
    quoted = re.search(r"(\d+)% of the hard look-alike pairs", _text(ROOT / "README.md"))
    assert quoted is not None
    assert int(quoted.group(1)) == expected
