"""`agentcache eval`: scores labelled pairs with the real model and gates on the wrong-answer budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentcache.cli.main import main
from agentcache.errors import ConfigurationError
from agentcache.semantic.evaluate import evaluate, load_pairs

PAIRS: list[dict[str, Any]] = [
    {"cached": "How do I reset my password?", "query": "How can I reset my password?", "same_answer": True},
    {"cached": "What is the capital of France?", "query": "Can you tell me the capital of France?", "should_hit": True},
    {
        "cached": "How do I delete my account?",
        "query": "How do I deactivate my account?",
        "same_answer": False,
        "category": "scope",
    },
    {
        "cached_messages": [
            {"role": "user", "content": "I'm on the Pro plan."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "How do I upgrade my plan?"},
        ],
        "query_messages": [
            {"role": "user", "content": "I'm on the Free plan."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "How do I upgrade my plan?"},
        ],
        "same_answer": False,
        "category": "conversation",
    },
]


def write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_the_function_reports_served_and_wrong_per_category(tmp_path: Path) -> None:
    report = evaluate(load_pairs(write(tmp_path, PAIRS)), max_wrong=0.02)
    assert report.pairs == 4
    assert (report.total.should_hit, report.total.served) == (2, 2)
    assert (report.total.look_alikes, report.total.wrong) == (2, 0)
    assert report.by_category["conversation"].wrong == 0
    assert report.best["wrong_rate"] == 0.0
    assert "TOTAL" in str(report)


def test_cli_exits_4_over_budget_and_0_within(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cosine + guards alone serve the delete/deactivate trap: 50% wrong, over a 5% budget -> exit 4."""
    path = write(tmp_path, PAIRS)
    assert main(["eval", str(path), "--no-judge", "--max-wrong", "0.05"]) == 4
    assert "FAIL" in capsys.readouterr().out
    assert main(["eval", str(path), "--max-wrong", "0.02", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["over_budget"] is False
    assert out["total"]["served_rate"] == 1.0


def test_bad_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [{"cached": "a", "query": "b"}])
    with pytest.raises(ConfigurationError, match="same_answer"):
        load_pairs(path)
    assert main(["eval", str(path)]) == 2
    assert main(["eval", str(tmp_path / "missing.jsonl")]) != 0
