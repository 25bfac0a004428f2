"""The environment that keeps the frameworks under test on this machine (tests/support/network.py checks it).

Measured without it: Agno sends telemetry to its API on every run, CrewAI to its OpenTelemetry collector, and
importing LlamaIndex core 0.10 downloads NLTK's `punkt_tab` (its `GlobalsHelper` checks `tokenizers/punkt` and
`corpora/stopwords` at import, and ships only the stopwords). Frameworks' data dirs go under a private
XDG_DATA_HOME (CrewAI's credentials dir ignores it: tests/test_crewai.py gives those tests a private HOME).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["offline_environment"]

TELEMETRY_OFF = {
    "AGNO_TELEMETRY": "false",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "OTEL_SDK_DISABLED": "true",  # CrewAI's telemetry opt-out
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TRACING_ENABLED": "false",
}


def _nltk_data(root: Path) -> Path:
    """An NLTK data dir where LlamaIndex's import-time checks succeed: its own shipped stopwords, and an empty
    `tokenizers/punkt` (no test splits sentences; one that did would fail loudly instead of downloading)."""
    data = root / "nltk_data"
    (data / "tokenizers" / "punkt").mkdir(parents=True, exist_ok=True)
    (data / "corpora").mkdir(exist_ok=True)
    spec = importlib.util.find_spec("llama_index.core") if importlib.util.find_spec("llama_index") else None
    packages = list(spec.submodule_search_locations or []) if spec is not None else []
    shipped = [Path(p) / "_static" / "nltk_cache" / "corpora" / "stopwords" for p in packages]
    stopwords = data / "corpora" / "stopwords"
    if shipped and shipped[0].is_dir():
        stopwords.symlink_to(shipped[0], target_is_directory=True)
    else:
        stopwords.mkdir()
    return data


def offline_environment(root: Path) -> dict[str, str]:
    """Environment variables for a test run (and the processes it starts) that keep it offline, with every
    framework's own data under `root`."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    return {**TELEMETRY_OFF, "NLTK_DATA": str(_nltk_data(root)), "XDG_DATA_HOME": str(root / "data")}
