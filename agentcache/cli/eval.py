"""`agentcache eval PAIRS.jsonl`: score the semantic cache on your own labelled pairs; gate CI on wrong answers."""

from __future__ import annotations

import argparse

from agentcache.cli.store import EXIT_OK, CliError, Session, echo, echo_json

__all__ = ["EXIT_OVER_BUDGET", "add_eval_arguments", "cmd_eval"]

EXIT_OVER_BUDGET = 4  # the configuration serves more look-alikes than --max-wrong allows


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `agentcache eval`."""
    parser.add_argument(
        "pairs", metavar="PAIRS.jsonl", help="labelled pairs: cached, query, same_answer (one per line)"
    )
    parser.add_argument(
        "--max-wrong",
        type=float,
        default=None,
        metavar="RATE",
        help="wrong-answer budget (semantic_cached's max_wrong; default 0.05); exit 4 when exceeded",
    )
    parser.add_argument("--threshold", type=float, default=None, help="cosine a candidate needs (default 0.80)")
    parser.add_argument("--no-judge", action="store_true", help="cosine and guards only (judge=False)")


def cmd_eval(s: Session, args: argparse.Namespace) -> int:
    """Print served / wrong rates per category and the best judge score for the budget; exit 4 over budget."""
    from pathlib import Path

    from agentcache.semantic.evaluate import evaluate, load_pairs

    del s  # eval reads no store
    path = Path(args.pairs)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    report = evaluate(load_pairs(path), max_wrong=args.max_wrong, threshold=args.threshold, judge=not args.no_judge)
    over = report.total.look_alikes > 0 and report.total.wrong_rate > report.max_wrong
    if getattr(args, "as_json", False):
        echo_json({**report.to_dict(), "over_budget": over})
    else:
        echo(str(report))
        if over:
            echo(f"FAIL: {report.total.wrong_rate:.1%} of look-alikes served, over the budget {report.max_wrong:g}")
    return EXIT_OVER_BUDGET if over else EXIT_OK
