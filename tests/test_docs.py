"""The docs say what is measured: no promise that a table in benchmarks/results/ contradicts."""

from __future__ import annotations

import ast
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


def _default_budget_row(table: int = 0) -> dict[str, str]:
    """The judge row at the default budget of the `table`-th table of per-category rates (0: the own training
    pairs, cross-validated; 1: the own held-out pairs), as {column: cell}."""
    header: list[str] = []
    found = 0
    for line in QUALITY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:3] == ["setting", "paraphrases served", "all traps wrong"]:
            header = cells
        elif header and cells[0] == "judge, max_wrong=0.05":
            if found == table:
                return dict(zip(header, cells, strict=True))
            found, header = found + 1, []
    raise AssertionError(f"no default-budget row in table {table} of {QUALITY}")


def test_readme_quotes_the_measured_trap_and_paraphrase_rates() -> None:
    """The README's semantic figures are the ones in benchmarks/results/semantic_quality.md."""
    text = _text(ROOT / "README.md")
    for table in (0, 1):
        row = _default_budget_row(table)
        wrong = row["all traps wrong"].split()[0]
        served = row["paraphrases served"].split()[0]
        assert f"{wrong} of the one-word traps" in text
        assert f"{served} of paraphrases were served" in text


TEST_REF = re.compile(r"tests/[\w/]+\.py(?:::\w+)*")
MATRIX = ROOT / "docs" / "frameworks.md"
MATRIX_COLUMNS = ["framework", "LLM cache", "tool cache", "streaming", "async"]
FRAMEWORKS = [
    "LangChain",
    "LangGraph",
    "OpenAI Agents SDK",
    "Pydantic AI",
    "Agno",
    "LlamaIndex",
    "smolagents",
    "CrewAI",
    "MCP client",
    "MCP server",
]


def _defined(path: Path) -> set[str]:
    """The test functions and classes of a test file, as `name` and `Class::name` (parsed, not imported: some need
    the other environment)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_named_tests_exist(path: Path) -> None:
    """Every `tests/...py::Class::test` a doc names as its evidence exists."""
    missing = []
    for ref in sorted(set(TEST_REF.findall(path.read_text(encoding="utf-8")))):
        file, _, node = ref.partition("::")
        if not (ROOT / file).is_file() or (node and node not in _defined(ROOT / file)):
            missing.append(ref)
    assert missing == []


def _matrix() -> list[dict[str, str]]:
    """The rows of docs/frameworks.md's framework x mode table, as {column: cell}."""
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for line in MATRIX.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells == MATRIX_COLUMNS:
            header = cells
        elif header and line.startswith("|") and not set(line) <= set("|- "):
            rows.append(dict(zip(header, cells, strict=True)))
        elif header and not line.startswith("|"):
            break
    return rows


def test_framework_matrix_names_a_test_for_every_mark() -> None:
    """Each framework has a row; each cell is ✔, ✗ or n/a, and each ✔ / ✗ names the test (not just a file) that
    measures it."""
    rows = _matrix()
    assert [f for f in FRAMEWORKS if not any(r["framework"].startswith(f) for r in rows)] == []
    unproven = []
    for row in rows:
        for column in MATRIX_COLUMNS[1:]:
            cell = row[column]
            assert cell.startswith(("✔", "✗", "n/a")), (row["framework"], column, cell)
            if cell[0] in "✔✗" and not any("::" in ref for ref in TEST_REF.findall(cell)):
                unproven.append((row["framework"], column))
    assert unproven == []
