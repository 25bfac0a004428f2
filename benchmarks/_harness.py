"""Shared timing and reporting helpers for the benchmark scripts.

Every call is timed on its own with `time.perf_counter_ns` (so p99 is real), with the garbage collector off
during timed loops, after a warm-up, in several rounds that interleave every case so that a noisy moment on a
shared machine spreads over all of them instead of ruining one. The cost of reading the clock itself (measured
once) is subtracted from every sample.

Usage::

    cases = [Case("dict lookup", lambda: d[k]), Case("mine", mine, ref="dict lookup")]
    results = measure(cases)
    print(markdown_table(["case", "median µs"], [[r.name, fmt(r.median)] for r in results]))
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import inspect
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "Result",
    "fmt",
    "machine_info",
    "markdown_table",
    "measure",
    "percentile",
    "ratio",
    "write_report",
]

_clock = time.perf_counter_ns


@dataclass
class Case:
    """One thing to time: `fn` is a no-argument callable or coroutine function; `ref` names the row it is
    compared with (its ratio column)."""

    name: str
    fn: Callable[[], Any]
    ref: str | None = None


@dataclass
class Result:
    """The samples of one case, in microseconds, with the clock overhead removed."""

    case: Case
    samples: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The case's name."""
        return self.case.name

    @property
    def median(self) -> float:
        """Median latency in µs."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile latency in µs."""
        return percentile(self.samples, 99)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile of `samples` (nearest rank on the sorted samples)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def _clock_overhead_ns() -> float:
    """Median ns between two back-to-back clock reads (subtracted from every sample)."""
    reads = []
    for _ in range(20_000):
        t = _clock()
        reads.append(_clock() - t)
    return statistics.median(reads)


def _sync_batch(fn: Callable[[], Any], n: int, overhead: float) -> list[float]:
    out = [0.0] * n
    clock = _clock
    for i in range(n):
        t = clock()
        fn()
        out[i] = (clock() - t - overhead) / 1000
    return out


async def _async_batch(fn: Callable[[], Any], n: int, overhead: float) -> list[float]:
    out = [0.0] * n
    clock = _clock
    for i in range(n):
        t = clock()
        await fn()
        out[i] = (clock() - t - overhead) / 1000
    return out


def _run(loop: asyncio.AbstractEventLoop, case: Case, n: int, overhead: float) -> list[float]:
    if inspect.iscoroutinefunction(case.fn):
        return loop.run_until_complete(_async_batch(case.fn, n, overhead))
    return _sync_batch(case.fn, n, overhead)


def measure(
    cases: Sequence[Case],
    *,
    rounds: int = 7,
    round_seconds: float = 0.12,
    max_iters: int = 20_000,
    min_iters: int = 50,
    warmup_seconds: float = 0.05,
    loop: asyncio.AbstractEventLoop | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Time every case for about `rounds * round_seconds` seconds, interleaving them round by round.

    Each case's iteration count per round is calibrated once (from its warm-up) to fill `round_seconds`,
    clamped to [`min_iters`, `max_iters`]. Coroutine functions run on `loop` (a new one if not given).
    """
    own_loop = loop is None
    loop = loop or asyncio.new_event_loop()
    overhead = _clock_overhead_ns()
    iters: dict[str, int] = {}
    for case in cases:
        spent, n = 0.0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < warmup_seconds or n < 20:
            spent += sum(_run(loop, case, 10, overhead))
            n += 10
        per_call = max(spent / n, 0.01) / 1e6
        iters[case.name] = max(min_iters, min(max_iters, int(round_seconds / per_call)))
    results = {case.name: Result(case) for case in cases}
    for r in range(rounds):
        for case in cases if r % 2 == 0 else reversed(cases):
            gc.collect()
            gc.disable()
            try:
                results[case.name].samples.extend(_run(loop, case, iters[case.name], overhead))
            finally:
                gc.enable()
        if progress is not None:
            progress(f"round {r + 1}/{rounds} done")
    if own_loop:
        loop.close()
    return [results[case.name] for case in cases]


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table cell (`-` for none)."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def ratio(value: float, reference: float | None) -> str:
    """``value / reference`` as ``1.23x`` (`-` without a reference)."""
    if reference is None or reference <= 0:
        return "-"
    return f"{value / reference:.2f}x"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A GitHub markdown table; `align` is one letter per column (`l`/`r`), left by default."""
    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(headers), "l")]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(packages: Iterable[str] = ()) -> dict[str, str]:
    """CPU, core count, OS, Python, date and the installed versions of `packages`."""
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_name()} ({os.cpu_count()} logical cores)",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }
    if hasattr(os, "getloadavg"):
        info["load average (1 min) at start"] = f"{os.getloadavg()[0]:.2f}"
    for name in packages:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def write_report(path: Path, title: str, sections: Sequence[str], info: dict[str, str]) -> None:
    """Write a markdown report: title, the sections in order, then the machine info as a list."""
    body = [f"# {title}", *sections, "## Machine", "\n".join(f"- {k}: {v}" for k, v in info.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(body) + "\n", encoding="utf-8")
