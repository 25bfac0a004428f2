"""Backend factories for the behaviour suites: one entry per backend kind.

Every behaviour test that takes the `backend_kind` / `backend_url` fixtures runs once per kind listed in
`BACKEND_KINDS`. A new backend joins the suites by adding its kind here and a branch in `backend_url_for`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

BACKEND_KINDS: list[str] = ["memory", "sqlite", "redis", "tiered"]

# Kinds that need the session `redis_server` fixture (they are marked `redis` and skip without the binary).
REDIS_KINDS: set[str] = {"redis", "tiered"}

# Kinds that enforce `max_entries` / `max_bytes` themselves (Redis leaves eviction to the server's maxmemory).
BOUNDED_KINDS: set[str] = {"memory", "sqlite"}


def backend_url_for(kind: str, tmp_path: Path, servers: dict[str, str]) -> str:
    """Return a backend URL of `kind` private to one test (`servers` holds URLs of servers tests started)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'cache.db'}"
    if kind in REDIS_KINDS:
        # A fresh key prefix per test isolates tests sharing the session's redis-server.
        params: dict[str, object] = {"prefix": f"t{tmp_path.name[-24:]}{id(tmp_path):x}:"}
        if kind == "tiered":
            params["l1"] = 1000
        return with_query(servers["redis"], **params)
    raise ValueError(f"unknown backend kind {kind!r}")


def with_query(url: str, **params: object) -> str:
    """Return `url` with `params` added to its query string."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urlencode(params)}"
