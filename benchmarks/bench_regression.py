"""Hit-path regression check: this tree's agentcache against an earlier commit's, in one run.

Both versions time the same hits as `bench_exact.py` (the ~2 KB chat request through `@response_cached`, memory
and SQLite, sync and async) plus the hashing floor, in worker processes that alternate (baseline, current,
baseline, ...) so a busy moment on the machine spreads over both. Each worker imports one version only. Reports the
median of the workers' medians per row and the ratio current / baseline; writes `benchmarks/results/regression.md`.

Wall-clock medians move by 10-40% on a shared 2-core machine, so where valgrind is installed the same rows are also
counted in instructions per hit (callgrind: a worker making N hits minus one making none, per row and version);
that count does not depend on what else the machine runs, and the 5% target of issue #13 is judged on it.

    .venv/bin/python benchmarks/bench_regression.py                 # against 53ba813 (the table issue #13 quotes)
    .venv/bin/python benchmarks/bench_regression.py --baseline REV  # any commit
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "benchmarks" / "results" / "regression.md"
BASELINE = "53ba813"  # the exact-hit table of the day issue #13 was filed
TARGET = 1.05  # issue #13: the exact-hit table stays within 5%
COUNTED_HITS = 20_000


def _cases(root: str, tmp: str) -> tuple[list[Any], Any]:
    """The hit rows (as harness cases, warmed) with the agentcache found under `root`, and their event loop."""
    sys.path.insert(0, str(HERE))
    import bench_exact as be  # the request, the response, the harness (it imports no agentcache)
    from _harness import Case

    sys.path[:] = [p for p in sys.path if Path(p).resolve() != ROOT]
    sys.path.insert(0, root)
    import agentcache

    assert Path(agentcache.__file__).resolve().is_relative_to(Path(root).resolve()), agentcache.__file__
    try:
        from agentcache.keys.encoding import canonical_bytes, digest
    except ImportError:  # before the engine: one keys module
        from agentcache.keys import canonical_bytes, digest  # type: ignore[attr-defined,no-redef]

    url = f"sqlite://{Path(tmp) / 'regression.db'}"

    @agentcache.response_cached(backend="memory://")
    def chat_mem(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return dict(be.RESPONSE)

    @agentcache.response_cached(backend=url)
    def chat_sqlite(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return dict(be.RESPONSE)

    @agentcache.response_cached(backend="memory://")
    async def achat_mem(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return dict(be.RESPONSE)

    @agentcache.response_cached(backend=url)
    async def achat_sqlite(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return dict(be.RESPONSE)

    import asyncio

    loop = asyncio.new_event_loop()
    request = be.REQUEST
    chat_mem(**request)
    chat_sqlite(**request)
    loop.run_until_complete(achat_mem(**request))
    loop.run_until_complete(achat_sqlite(**request))

    async def amem() -> Any:
        return await achat_mem(**request)

    async def asql() -> Any:
        return await achat_sqlite(**request)

    cases = [
        Case(ROWS[0], lambda: digest(canonical_bytes(request))),
        Case(ROWS[1], lambda: chat_mem(**request)),
        Case(ROWS[2], lambda: chat_sqlite(**request)),
        Case(ROWS[3], amem),
        Case(ROWS[4], asql),
    ]
    return cases, loop


def worker(root: str, tmp: str, rounds: int) -> None:
    """Time the hit rows with the agentcache found under `root`; print their medians as JSON."""
    from _harness import measure

    cases, loop = _cases(root, tmp)
    results = measure(cases, rounds=rounds, loop=loop)
    print(json.dumps({r.name: r.median for r in results}))


def count_worker(root: str, tmp: str, row: int, hits: int) -> None:
    """Make `hits` calls of one row (run under callgrind; the caller subtracts a run with none)."""
    import inspect as _inspect

    cases, loop = _cases(root, tmp)
    fn = cases[row].fn
    if _inspect.iscoroutinefunction(fn):

        async def many() -> None:
            for _ in range(hits):
                await fn()

        loop.run_until_complete(many())
    else:
        for _ in range(hits):
            fn()


def _instructions(root: Path, tmp: Path, row: int, hits: int) -> int:
    """Instructions callgrind counts for a count worker of `row` making `hits` calls."""
    work = Path(tempfile.mkdtemp(dir=tmp))
    command = [sys.executable, __file__, "--count", str(root), str(work), str(row), str(hits)]
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}", *command],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1))


def instruction_table(base_root: Path, tmp: Path, hits: int) -> tuple[str, list[str]]:
    """Instructions per hit, baseline vs current, for every row (valgrind's callgrind)."""
    rows, verdicts = [], []
    for i, name in enumerate(ROWS):
        per_hit = {}
        for label, root in (("baseline", base_root), ("current", ROOT)):
            # the import and warm-up are the same in both runs; bytecode is compiled by a first run
            _instructions(root, tmp, i, 0)
            per_hit[label] = (_instructions(root, tmp, i, hits) - _instructions(root, tmp, i, 0)) / hits
            print(f"{name} {label}: {per_hit[label]:,.0f} instructions per hit", file=sys.stderr)
        r = per_hit["current"] / per_hit["baseline"]
        rows.append([name, f"{per_hit['baseline']:,.0f}", f"{per_hit['current']:,.0f}", f"{r:.3f}x"])
        if i:
            verdicts.append(f"- {'MET' if r <= TARGET else 'MISSED'}: {name} within 5% in instructions ({r:.3f}x)")
    from _harness import markdown_table

    table = markdown_table(["row", "baseline instructions / hit", "current instructions / hit", "ratio"], rows)
    return table, verdicts


ROWS = (
    "hashing floor (canonical bytes + digest)",
    "@response_cached memory:// (sync)",
    "@response_cached sqlite:// (sync)",
    "@response_cached memory:// (async)",
    "@response_cached sqlite:// (async)",
)


def _export(rev: str, into: Path) -> Path:
    """The `agentcache/` package of commit `rev`, extracted under `into`."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "agentcache"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline"


def main() -> None:
    """Alternate baseline and current workers, then report medians and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"the commit to compare with (default {BASELINE})")
    parser.add_argument("--pairs", type=int, default=5, help="baseline/current worker pairs (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per worker (default 5)")
    parser.add_argument("--hits", type=int, default=COUNTED_HITS, help="hits per counted (callgrind) run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from _harness import fmt, machine_info, markdown_table, write_report

    with tempfile.TemporaryDirectory() as tmp:
        base_root = _export(args.baseline, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
        for i in range(args.pairs):
            for label, root in (
                (("baseline", base_root), ("current", ROOT))
                if i % 2 == 0
                else (
                    ("current", ROOT),
                    ("baseline", base_root),
                )
            ):
                work = Path(tmp) / f"{label}{i}"
                work.mkdir()
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", str(root), str(work), str(args.rounds)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"{label} {i + 1}/{args.pairs}: {runs[label][-1]}", file=sys.stderr)
        counted = instruction_table(base_root, Path(tmp), args.hits) if shutil.which("valgrind") else None
    rows = []
    verdicts = []
    for name in ROWS:
        base = statistics.median(r[name] for r in runs["baseline"])
        cur = statistics.median(r[name] for r in runs["current"])
        rows.append([name, fmt(base), fmt(cur), f"{cur / base:.2f}x"])
        if name != ROWS[0] and counted is None:
            verdicts.append(f"- {'MET' if cur <= base * TARGET else 'MISSED'}: {name} within 5% ({cur / base:.2f}x)")
    table = markdown_table(
        ["row", f"baseline {args.baseline} median µs", "current median µs", "current / baseline"], rows
    )
    intro = (
        f"Per-hit medians of the `bench_exact.py` request (a {len(json.dumps(_request()))} B chat request), "
        f"{args.pairs} alternating worker pairs x {args.rounds} interleaved rounds each; each cell is the median "
        "of the workers' medians. Generated by `benchmarks/bench_regression.py`."
    )
    sections = [intro, table]
    if counted is not None:
        sections += [
            "## Instructions per hit (callgrind; independent of the machine's load)",
            f"{args.hits:,} hits of each row under valgrind's callgrind minus a run with none, per version.",
            counted[0],
        ]
        verdicts = counted[1]
    else:
        sections.append("valgrind is not installed: the targets are judged on the wall-clock medians above.")
    report = "\n\n".join([*sections, "## Targets", "\n".join(verdicts)])
    print(report)
    write_report(args.out, f"Hit-path regression against {args.baseline}", [report], machine_info([]))


def _request() -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_exact as be

    return be.REQUEST


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--count":
        count_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
