"""Configuration: configure(), environment, .env, the kill switch, and no I/O at import or decoration."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentcache
from agentcache.durations import parse_ttl


class TestTTL:
    @pytest.mark.parametrize(
        ("given", "seconds"),
        [
            (None, None),
            (5, 5.0),
            (0.5, 0.5),
            (dt.timedelta(minutes=2), 120.0),
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("1h30m", 5400.0),
            ("2d", 172800.0),
            ("250ms", 0.25),
            ("never", None),
            ("0", 0.0),
        ],
    )
    def test_forms(self, given: object, seconds: float | None) -> None:
        """Seconds, timedelta and unit strings all parse."""
        assert parse_ttl(given) == seconds  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", ["5 minutes", "m5", "1x", True, [1]])
    def test_bad_forms_say_what_is_accepted(self, bad: object) -> None:
        """Anything else is a ConfigurationError naming the accepted forms."""
        with pytest.raises(agentcache.ConfigurationError, match="'5m'"):
            parse_ttl(bad)  # type: ignore[arg-type]


class TestSettings:
    def test_defaults_and_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Environment variables are read lazily; configure() overrides them."""
        monkeypatch.setenv("AGENTCACHE_DIR", str(tmp_path))
        monkeypatch.setenv("AGENTCACHE_NAMESPACE", "prod")
        monkeypatch.setenv("AGENTCACHE_TTL", "1h")
        agentcache.reset()
        s = agentcache.get_settings()
        assert s.backend_url == f"sqlite://{tmp_path / 'cache.db'}"
        assert (s.namespace, s.ttl, s.disabled) == ("prod", 3600.0, False)
        agentcache.configure(url="memory://", namespace="staging")
        s = agentcache.get_settings()
        assert (s.backend_url, s.namespace, s.ttl) == ("memory://", "staging", 3600.0)

    def test_dotenv_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Settings are also read from a .env file; real environment variables win."""
        (tmp_path / ".env").write_text("AGENTCACHE_URL=memory://\nAGENTCACHE_NAMESPACE=fromfile\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("AGENTCACHE_NAMESPACE", "fromenv")
        agentcache.reset()
        s = agentcache.get_settings()
        assert (s.url, s.namespace) == ("memory://", "fromenv")

    def test_invalid_values_are_clear(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad flag or namespace is reported with what to use instead."""
        monkeypatch.setenv("AGENTCACHE_DISABLED", "maybe")
        agentcache.reset()
        with pytest.raises(agentcache.ConfigurationError, match="1/0"):
            agentcache.get_settings()
        with pytest.raises(agentcache.ConfigurationError, match="namespace"):
            agentcache.configure(namespace="a:b")

    def test_default_store_is_sqlite_under_the_dir_and_persists(self, tmp_path: Path) -> None:
        """With no URL the default store is a SQLite file under AGENTCACHE_DIR, shared across restarts."""
        script = textwrap.dedent(
            """
            import agentcache
            calls = []
            @agentcache.tool_cached
            def f(x): calls.append(x); return x * 2
            print(f(21), len(calls))
            """
        )
        env = {**os.environ, "AGENTCACHE_DIR": str(tmp_path)}
        first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert first.stdout.split() == ["42", "1"]
        assert second.stdout.split() == ["42", "0"]
        assert (tmp_path / "cache.db").exists()

    def test_configure_after_decoration_applies(self, tmp_path: Path) -> None:
        """Decorators resolve their store on first call, so configure() in main() still applies."""

        @agentcache.tool_cached
        def f(x: int) -> int:
            return x

        db = tmp_path / "late.db"
        agentcache.configure(url=f"sqlite://{db}")
        f(1)
        assert db.exists()


class TestNoIOAtImportOrDecoration:
    def test_import_and_decorate_touch_nothing(self, tmp_path: Path) -> None:
        """Importing and decorating create no file, even with a store configured in the environment."""
        cache_dir = tmp_path / "never-created"
        script = textwrap.dedent(
            """
            import agentcache
            @agentcache.tool_cached(ttl="1h")
            def f(x): return x
            @agentcache.response_cached(backend="sqlite:///{db}")
            async def g(messages): return {{}}
            agentcache.on("evt", tags=["t"])
            """
        ).format(db=tmp_path / "nope" / "x.db")
        env = {**os.environ, "AGENTCACHE_DIR": str(cache_dir)}
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
        assert not cache_dir.exists() and not (tmp_path / "nope").exists()
