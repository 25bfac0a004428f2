"""Process start: `import agentcache` + the first hit on an existing store, against diskcache, in one run.

Each sample is a fresh interpreter that imports the library, decorates one function and calls it once on a store
that already holds the entry (created by earlier runs): agentcache's `@tool_cached` on SQLite (and on
`memory://`, a miss, for reference) against diskcache's `Cache.memoize()` on its own directory. The child measures
from before the import to after the hit, as CPU time (user + system, the steadier figure on a shared machine)
and wall time; the interpreter's own start is the same for every case and left out. Runs are interleaved, from
bytecode (as an installed package runs). Also lists the modules each case loads that diskcache's does not.

    .venv/bin/python benchmarks/bench_start.py            # writes benchmarks/results/start.md
    .venv/bin/python benchmarks/bench_start.py --runs 5 --out /tmp/start.md
    .venv/bin/python benchmarks/bench_start.py --baseline /tmp/old-checkout   # adds that checkout's rows
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _harness import fmt, machine_info, markdown_table, write_report  # noqa: E402

_CLOCKS = """
import json, resource, sys, time
def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
_before = set(sys.modules)
_t, _c = time.perf_counter(), _cpu()
"""

_REPORT = """
_wall, _cpu_used = time.perf_counter() - _t, _cpu() - _c
print(json.dumps({"wall": _wall * 1e3, "cpu": _cpu_used * 1e3, "modules": sorted(set(sys.modules) - _before),
                  "value": search("hello")}))
"""

AGENTCACHE = """
import agentcache
@agentcache.tool_cached(backend=sys.argv[1])
def search(q: str) -> str:
    return q * 10
search("hello")
"""

DISKCACHE = """
import diskcache
cache = diskcache.Cache(sys.argv[1])
@cache.memoize()
def search(q: str) -> str:
    return q * 10
search("hello")
"""

DISKCACHE_ROW = "diskcache import + first hit (Cache.memoize)"


def _cases(workdir: Path, baseline: Path | None) -> dict[str, tuple[str, str, str | None]]:
    cases: dict[str, tuple[str, str, str | None]] = {
        DISKCACHE_ROW: (DISKCACHE, str(workdir / "dc"), None),
        "agentcache import + first hit (@tool_cached, sqlite://)": (AGENTCACHE, f"sqlite:///{workdir / 'ac.db'}", None),
        "agentcache import + first call (@tool_cached, memory://, a miss)": (AGENTCACHE, "memory://", None),
    }
    if baseline is not None:
        name = f"agentcache at {baseline.name} import + first hit (sqlite://)"
        cases[name] = (AGENTCACHE, f"sqlite:///{workdir / 'base.db'}", str(baseline))
    return cases


def run(
    workdir: Path, runs: int, baseline: Path | None = None
) -> tuple[dict[str, list[dict[str, float]]], dict[str, list[str]]]:
    """`runs` interleaved samples per case, and the modules each case loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    cwd = workdir / "run"  # no .env file up from here (python-dotenv would be loaded to read it)
    cwd.mkdir()
    cases = _cases(workdir, baseline)

    def once(code: str, arg: str, path: str | None) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", _CLOCKS + code + _REPORT, arg],
            capture_output=True,
            text=True,
            check=True,
            env=env if path is None else {**env, "PYTHONPATH": path},
            cwd=cwd,
        )
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    modules: dict[str, list[str]] = {}
    for name, (code, arg, path) in cases.items():  # create the stores and the bytecode
        once(code, arg, path)
        modules[name] = list(once(code, arg, path)["modules"])  # type: ignore[call-overload]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (code, arg, path) in cases.items():
            got = once(code, arg, path)
            samples[name].append({"cpu": float(got["cpu"]), "wall": float(got["wall"])})  # type: ignore[arg-type]
    return samples, modules


def main() -> None:
    """Run the cases and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=31, help="fresh interpreters per case")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "start.md")
    parser.add_argument("--baseline", type=Path, help="another agentcache checkout to measure in the same run")
    args = parser.parse_args()
    info = machine_info(["diskcache", "orjson"])
    with tempfile.TemporaryDirectory(prefix="agentcache-bench-start-") as tmp:
        samples, modules = run(Path(tmp), args.runs, args.baseline)
    base_cpu = statistics.median(s["cpu"] for s in samples[DISKCACHE_ROW])
    base_wall = statistics.median(s["wall"] for s in samples[DISKCACHE_ROW])
    rows = []
    for name, s in samples.items():
        cpu = statistics.median(x["cpu"] for x in s)
        wall = statistics.median(x["wall"] for x in s)
        rows.append(
            [
                name,
                fmt(cpu),
                fmt(min(x["cpu"] for x in s)),
                fmt(wall),
                f"{cpu / base_cpu:.2f}x",
                f"{wall / base_wall:.2f}x",
                str(len(modules[name])),
            ]
        )
    headers = ["case", "CPU median", "CPU min", "wall median", "CPU / diskcache", "wall / diskcache", "modules"]
    table = markdown_table(headers, rows, "lrrrrrr")
    dc = set(modules[DISKCACHE_ROW])
    extra = []
    for name, mods in modules.items():
        if name == DISKCACHE_ROW:
            continue
        own = [m for m in mods if m.startswith("agentcache")]
        std = [m for m in mods if m not in dc and not m.startswith("agentcache")]
        extra.append(f"- {name}: {len(own)} agentcache modules; not loaded by diskcache: {', '.join(std)}")
    sections = [
        f"## Import + first hit ({args.runs} fresh interpreters per case, interleaved; ms)\n\n" + table,
        "Target (issue 13): agentcache <= 1.2x diskcache.",
        "## Modules loaded\n\n" + "\n".join(extra),
    ]
    write_report(args.out, "Process start: agentcache vs diskcache", sections, info)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
