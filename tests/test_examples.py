"""`make demo` and `make examples` never write into the user's cache dir (its store or its stats).

Each script runs in a subprocess whose HOME and XDG_CACHE_HOME point at an empty sandbox; afterwards the sandbox
must still be empty. Nothing here measures time: the demo's simulated latency is turned off with DEMO_LATENCY=0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
TIMEOUT = 300  # seconds per script: a generous bound for a loaded 2-core machine, not a measurement


def _sandbox_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTCACHE_", "OPENAI_", "ANTHROPIC_"))}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        TMPDIR=str(tmp_path / "tmp"),
        DEMO_LATENCY="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env, home


def _written(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def _run(script: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_demo_keeps_its_store_in_the_checkout(tmp_path: Path) -> None:
    """Run twice from a copy of the checkout: the second run hits from `.agentcache/`, HOME stays empty.

    Before: the demo used the default store, `~/.cache/agentcache/cache.db`.
    """
    checkout = tmp_path / "checkout"
    (checkout / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "demo.py", checkout / "examples" / "demo.py")
    env, home = _sandbox_env(tmp_path)

    first = _run(checkout / "examples" / "demo.py", env, cwd=tmp_path)
    second = _run(checkout / "examples" / "demo.py", env, cwd=tmp_path)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "miss (paid the model)" in first.stdout
    assert "hit (from disk" in second.stdout
    assert (checkout / ".agentcache" / "cache.db").is_file()
    assert _written(home) == []


@pytest.mark.slow
def test_examples_keep_out_of_the_user_cache_dir(tmp_path: Path) -> None:
    """Every other example runs offline (no API key) and leaves HOME untouched; they run side by side."""
    env, home = _sandbox_env(tmp_path)
    scripts = [ROOT / "examples" / name for name in EXAMPLES if name != "demo.py"]
    procs = {
        s.name: subprocess.Popen(
            [sys.executable, str(s)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for s in scripts
    }
    failed = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            if proc.returncode != 0:
                failed[name] = (out + err)[-2000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert failed == {}
    assert _written(home) == []
