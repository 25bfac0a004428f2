"""Configuration: configure(), environment, .env, the kill switch, and no I/O at import or decoration."""

from __future__ import annotations

import datetime as dt
import logging
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

    @pytest.mark.parametrize("bad", [-1, -0.5, "-5s", "-5", dt.timedelta(seconds=-3), float("nan"), "inf"])
    def test_negative_or_endless_ttl_is_refused(self, bad: object) -> None:
        """A negative TTL is an error (it used to cache nothing, silently); 0 still means "do not store"."""
        with pytest.raises(agentcache.ConfigurationError, match=r">= 0 \(0: do not store; None: never expires\)"):
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

    def test_invalid_values_are_clear(self) -> None:
        """A bad namespace is reported with what to use instead."""
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
        ).format(db=tmp_path / "x.db")
        env = {**os.environ, "AGENTCACHE_DIR": str(cache_dir)}
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
        assert not cache_dir.exists() and not (tmp_path / "x.db").exists()


def _calls_survive(n: int = 3) -> tuple[list[int], list[int]]:
    """Call a fresh cached function `n` times with the same argument: (results, how often it ran)."""
    ran: list[int] = []

    @agentcache.tool_cached
    def f(x: int) -> int:
        ran.append(x)
        return x * 2

    return [f(21) for _ in range(n)], ran


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agentcache" and r.levelno == logging.WARNING]


class TestConfigureValidatesAtOnce:
    @pytest.mark.parametrize(
        ("options", "says"),
        [
            ({"url": "foo://"}, r"valid schemes: memory://, redis://.*sqlite://.*max_entries \(an integer"),
            ({"url": "memory"}, "valid schemes"),
            ({"url": "memory://?max_entries=abc"}, r"max_entries='abc'.*not an integer >= 0.*max_bytes"),
            ({"url": "memory://?max_entires=5"}, r"unknown option\(s\) \['max_entires'\].*takes max_entries"),
            ({"url": "sqlite:///tmp/x.db?timeout=soon"}, r"timeout='soon'.*seconds >= 0"),
            ({"url": "redis://localhost:1/0?socket_timeout=abc"}, r"socket_timeout='abc'.*seconds >= 0"),
            ({"url": "redis://localhost:1/0?bogus=1"}, r"unknown option\(s\) \['bogus'\].*prefix \(text\)"),
            ({"url": "redis://localhost:1/0?prefix={app}"}, r"must not contain '\{'"),
            ({"url": "redis://localhost:1/0?db=zero"}, "Invalid value for 'db'"),
            ({"url": "redis://localhost:1/0?l1=0"}, "l1=0.*integer >= 1"),
            ({"ttl": -1}, ">= 0"),
            ({"ttl": "-5s"}, ">= 0"),
            ({"retries": -1}, "retries=-1: expected an integer >= 0"),
            ({"failure_threshold": 0}, "failure_threshold=0: expected an integer >= 1"),
            ({"cooldown": -1.0}, "cooldown=-1.0: expected seconds >= 0"),
            ({"disabled": "yes"}, "disabled='yes': expected True or False"),
            ({"namespace": "a/.."}, "invalid namespace"),
            ({"decoded_bytes": -1}, "bytes >= 0"),
        ],
    )
    def test_a_bad_argument_raises_saying_what_is_valid(self, options: dict[str, object], says: str) -> None:
        """Each bad argument raises at configure() (it used to raise in every later cached call instead)."""
        with pytest.raises(agentcache.ConfigurationError, match=says):
            agentcache.configure(**options)  # type: ignore[arg-type]

    def test_every_problem_is_reported_and_nothing_is_applied(self) -> None:
        """All bad arguments in one message; the settings in force stay as they were, so calls keep working."""
        agentcache.configure(url="memory://", ttl=60)
        with pytest.raises(agentcache.ConfigurationError, match=r"3 invalid.*foo://.*ttl=-1.*retries=-2") as info:
            agentcache.configure(url="foo://", ttl=-1, retries=-2, namespace="ok")
        assert "valid schemes" in str(info.value)
        s = agentcache.get_settings()
        assert (s.url, s.ttl, s.retries, s.namespace) == ("memory://", 60.0, 2, "default")
        assert _calls_survive() == ([42, 42, 42], [21])

    def test_sqlite_url_in_a_missing_directory_is_refused_and_nothing_is_created(self, tmp_path: Path) -> None:
        """An explicit SQLite URL never creates directories (it used to create /nonexistent/dir as root)."""
        missing = tmp_path / "nonexistent" / "dir"
        with pytest.raises(agentcache.ConfigurationError, match=r"directory .*nonexistent/dir.* does not exist"):
            agentcache.configure(url=f"sqlite://{missing}/x.db")
        with pytest.raises(agentcache.ConfigurationError, match="does not exist"):
            agentcache.Cache(f"sqlite://{missing}/x.db")
        assert not (tmp_path / "nonexistent").exists()

    def test_dir_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        """`dir=` must name a directory (a missing one is created when the default store opens)."""
        (tmp_path / "file").write_text("x")
        with pytest.raises(agentcache.ConfigurationError, match="not a directory"):
            agentcache.configure(dir=tmp_path / "file")

    @pytest.mark.parametrize(
        "url",
        [
            "memory://?max_entries=5&max_bytes=none",
            "sqlite://",
            "sqlite://relative.db?timeout=2",
            "redis://localhost:1/0?prefix=app:&l1=100&l1_ttl=5&socket_timeout=0.2&client_name=app&health_check_interval=5",
            "rediss+cluster://localhost:1?max_connections=4",
            "unix:///tmp/nothing-listens-here.sock?db=2",
        ],
    )
    def test_valid_urls_are_accepted_without_connecting(self, url: str) -> None:
        """Validation only parses: nothing listens on these Redis addresses, and no file is created."""
        agentcache.configure(url=url)
        assert agentcache.get_settings().url == url

    def test_default_store_directory_is_created(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """The default store's directory (AGENTCACHE_DIR or the platform cache dir) is created on first use."""
        home = tmp_path / "a" / "b"
        monkeypatch.setenv("AGENTCACHE_DIR", str(home))
        agentcache.reset()
        assert _calls_survive() == ([42, 42, 42], [21])
        assert (home / "cache.db").exists()


class TestDecorationValidates:
    def test_bad_backend_url_raises_at_decoration(self) -> None:
        """`backend=` is checked when the function is decorated (it used to raise in every call)."""
        with pytest.raises(agentcache.ConfigurationError, match="valid schemes"):

            @agentcache.tool_cached(backend="foo://")
            def f(x: int) -> int:
                return x

        with pytest.raises(agentcache.ConfigurationError, match="max_entries"):
            agentcache.response_cached(backend="memory://?max_entries=-3")

    @pytest.mark.parametrize("ttl", [-1, "-5s", dt.timedelta(minutes=-1)])
    def test_negative_ttl_is_refused_everywhere(self, ttl: object) -> None:
        """Decorators and wrap() refuse a negative TTL (ttl=-1 used to cache nothing, silently)."""
        for make in (agentcache.tool_cached, agentcache.response_cached):
            with pytest.raises(agentcache.ConfigurationError, match=">= 0"):
                make(ttl=ttl)  # type: ignore[call-overload]
        with pytest.raises(agentcache.ConfigurationError, match=">= 0"):
            agentcache.wrap(object(), ttl=ttl)  # type: ignore[arg-type]

    def test_wrap_checks_its_backend(self) -> None:
        """wrap(backend=...) is checked before the client is."""
        with pytest.raises(agentcache.ConfigurationError, match="valid schemes"):
            agentcache.wrap(object(), backend="foo://")

    def test_ttl_zero_still_means_do_not_store(self) -> None:
        """0 stays valid: the function runs every time."""
        agentcache.configure(url="memory://", ttl=0)
        assert _calls_survive() == ([42, 42, 42], [21, 21, 21])


class TestBadEnvironmentIsReportedOnceAndIgnored:
    @pytest.mark.parametrize(
        ("variable", "value", "valid", "effect"),
        [
            ("AGENTCACHE_DISABLED", "garbage", "1/0, true/false", ("disabled", False)),
            ("AGENTCACHE_TTL", "abc", "'5m'", ("ttl", None)),
            ("AGENTCACHE_TTL", "-5", ">= 0", ("ttl", None)),
            ("AGENTCACHE_URL", "foo://", "valid schemes", ("url", None)),
            ("AGENTCACHE_URL", "memory://?max_entries=abc", "integer >= 0", ("url", None)),
            ("AGENTCACHE_NAMESPACE", "a:b", "letters, digits", ("namespace", "default")),
            ("AGENTCACHE_DECODED_BYTES", "lots", "bytes >= 0", ("decoded_bytes", 8 << 20)),
        ],
    )
    def test_calls_keep_running(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        variable: str,
        value: str,
        valid: str,
        effect: tuple[str, object],
    ) -> None:
        """One warning naming the variable, its value and what is valid; the default applies and every call
        works (each of these used to raise ConfigurationError in every cached call, never running the function)."""
        monkeypatch.setenv(variable, value)
        agentcache.reset()
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert _calls_survive() == ([42, 42, 42], [21])
            agentcache.configure(decoded_bytes=1 << 20)  # re-resolves the environment: no second report
            assert _calls_survive() == ([42, 42, 42], [])  # the same function again: cached
        (warning,) = _warnings(caplog)
        assert variable in warning and repr(value) in warning and valid in warning
        assert getattr(agentcache.get_settings(), effect[0]) == effect[1] or effect[0] == "decoded_bytes"

    def test_dotenv_values_too(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad value in `.env` is reported the same way; the good ones in the file still apply."""
        (tmp_path / ".env").write_text("AGENTCACHE_TTL=1 hour\nAGENTCACHE_NAMESPACE=fromfile\n")
        monkeypatch.chdir(tmp_path)
        agentcache.reset()
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert _calls_survive() == ([42, 42, 42], [21])
        (warning,) = _warnings(caplog)
        assert "AGENTCACHE_TTL='1 hour'" in warning
        assert (agentcache.get_settings().namespace, agentcache.get_settings().ttl) == ("fromfile", None)

    def test_configure_overrides_a_bad_variable_silently(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A variable that configure() overrides is not read, so it is not reported."""
        monkeypatch.setenv("AGENTCACHE_TTL", "abc")
        agentcache.reset()
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            agentcache.configure(ttl="1h")
        assert _warnings(caplog) == []


class TestStoreThatCannotOpen:
    def test_degrades_to_uncached_with_one_warning(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A store whose directory vanished after decoration: the function runs every call, one warning, and
        the directory is not re-created (before, SQLite silently created it wherever the URL pointed)."""
        home = tmp_path / "gone"
        home.mkdir()
        ran: list[int] = []

        @agentcache.tool_cached(backend=f"sqlite://{home}/x.db")
        def f(x: int) -> int:
            ran.append(x)
            return x

        home.rmdir()
        with caplog.at_level(logging.WARNING, logger="agentcache"):
            assert [f(1) for _ in range(3)] == [1, 1, 1]
        assert ran == [1, 1, 1]
        (warning,) = _warnings(caplog)
        assert "cannot open the store" in warning and "does not exist" in warning
        assert not home.exists()
