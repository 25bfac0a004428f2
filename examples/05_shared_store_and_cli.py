"""05 · One store shared by processes, and the `agentcache` command line.

Two worker processes (think: two gunicorn workers, or today's run and tomorrow's) point at the same SQLite file.
The first pays for the call; the second finds the entry the first one wrote. Then the command line
(`python -m agentcache`, also installed as `agentcache`) lists the entries, sums the stats of both processes,
and invalidates by tag and by an event the workers registered.

Runs offline in a few seconds on a throwaway SQLite file: `python examples/05_shared_store_and_cli.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import agentcache


@agentcache.response_cached(tags=["reports"])
def summarize(doc: str, model: str = "gpt-4o-mini") -> dict[str, object]:
    """A simulated LLM summary (~500 ms), with usage so savings are priced."""
    time.sleep(0.5)
    return {
        "model": model,
        "summary": f"{doc[:24]}... in one line",
        "usage": {"prompt_tokens": 2_000, "completion_tokens": 60, "total_tokens": 2_060},
    }


@agentcache.tool_cached(ttl="1h", tags=["crm"])
def crm_lookup(account: str) -> dict[str, str]:
    """A simulated CRM API call (~200 ms)."""
    time.sleep(0.2)
    return {"account": account, "owner": "dana"}


def worker(name: str) -> None:
    """One process: the store comes from AGENTCACHE_URL, set by the parent for both workers."""
    agentcache.on("crm.synced", tags=["crm"])  # recorded in the store, so the CLI can emit it later
    for label, fn, arg in (
        ("summarize(report)", summarize, "Q3 report: revenue grew 12% while churn fell"),
        ("crm_lookup('acme')", crm_lookup, "acme"),
    ):
        hits = fn.cache_info().hits
        start = time.perf_counter()
        fn(arg)
        ms = (time.perf_counter() - start) * 1000
        verdict = "hit  (written by another process)" if fn.cache_info().hits > hits else "miss (paid for it)"
        print(f"  [{name} pid {os.getpid()}] {label:<20} {ms:6.1f} ms  {verdict}")
    agentcache.flush_stats()  # leave this process's counters in the store: `agentcache stats` sums them


def run(*args: str, env: dict[str, str]) -> None:
    """Run a subprocess and show its output, indented."""
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    out = (result.stdout + result.stderr).rstrip()
    print("\n".join(f"    {line}".rstrip() for line in out.splitlines()) if out else "    (no output)")
    if result.returncode not in (0, 1):  # 1 means "nothing found", e.g. `ls` on an empty store
        raise SystemExit(f"{args} failed with exit status {result.returncode}")


def cli(*args: str, env: dict[str, str]) -> None:
    """Show and run one `agentcache` command."""
    print(f"  $ agentcache {' '.join(args)}")
    run(sys.executable, "-m", "agentcache", *args, env=env)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AGENTCACHE_URL": f"sqlite://{tmp}/shared.db"}
        print(f"store shared by every process below: {env['AGENTCACHE_URL']}\n")

        print("1. two worker processes, one after the other, same SQLite file:")
        for name in ("worker-1", "worker-2"):
            run(sys.executable, __file__, "--worker", name, env=env)
        print("  (a process's first cached call also opens the store: tens of ms once, then hits take ~0.1 ms)\n")

        print("2. the command line, on the same store (AGENTCACHE_URL, or --url):")
        cli("ls", env=env)
        cli("stats", env=env)
        cli("invalidate", "--tag", "reports", env=env)
        cli("invalidate", "--event", "crm.synced", env=env)
        cli("ls", env=env)
        print()

        print("3. after the invalidations, the next worker pays again:")
        run(sys.executable, __file__, "--worker", "worker-3", env=env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main()
