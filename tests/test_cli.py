"""The `agentcache` command line against a real SQLite store filled through the real decorators."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import agentcache
from agentcache.cli.main import main
from agentcache.cli.render import Progress, human_bytes, human_duration, truncate

TENANTS = ("tenant-4", "tenant-42", "tenant-4/sub")


@dataclass
class Filled:
    """A store filled by this process, and handles on what is in it."""

    url: str
    path: Path
    search: Any
    ask: Any
    calls: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """A stored dataclass value (registered in the filling process only)."""

    title: str
    score: int


def run(url: str, *args: str, cwd: Path, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """Run `python -m agentcache ARGS` in a fresh process on `url` (through AGENTCACHE_URL)."""
    env = {**os.environ, "AGENTCACHE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "agentcache", *args],
        env=env,
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Call `main(args)` here; return the exit status, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def filled(tmp_path: Path) -> Filled:
    """Six tool entries across three namespaces, an LLM response with usage, a stream; stats flushed."""
    path = tmp_path / "cache.db"
    url = f"sqlite://{path}"
    calls: list[str] = []
    agentcache.on("docs.reindexed", tags=["search"])

    @agentcache.tool_cached(backend=url, tags=["search"], ttl="1h", name="search")
    def search(q: str) -> str:
        calls.append(q)
        return f"results for {q}"

    @agentcache.response_cached(backend=url, name="ask")
    def ask(messages: list[dict[str, str]], model: str = "gpt-4o") -> dict[str, Any]:
        return {
            "model": model,
            "choices": [{"message": {"role": "assistant", "content": "hello " * 1000}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
        }

    @agentcache.tool_cached(backend=url, name="chunks")
    def chunks(n: int) -> Iterator[str]:
        for i in range(n):
            yield f"chunk-{i}"

    @agentcache.tool_cached(backend=url, name="report")
    def report(title: str) -> Report:
        return Report(title, 7)

    f = Filled(url, path, search, ask, calls)
    for ns in TENANTS:
        with agentcache.namespace(ns):
            for q in ("a", "b"):
                search(q)
                search(q)
            f.keys[ns] = search.cache_key("a")
    messages = [{"role": "user", "content": "hi"}]
    ask(messages)
    ask(messages)
    f.keys["ask"] = ask.cache_key(messages)
    assert list(chunks(3)) == list(chunks(3))
    f.keys["chunks"] = chunks.cache_key(3)
    report("q3")
    f.keys["report"] = report.cache_key("q3")
    agentcache.flush_stats()
    return f


def digest_of(key: str) -> str:
    """The digest part of a key."""
    return key.rsplit(":", 1)[1]


class TestStats:
    def test_table_sums_snapshots_and_summarizes_store(self, filled: Filled, tmp_path: Path) -> None:
        """`stats` prints per-function hits/misses/tokens from the stored snapshot and entries per namespace."""
        proc = run(filled.url, "stats", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "summed over 1 process snapshot" in out
        search_row = next(line for line in out.splitlines() if line.startswith("│ search "))
        cells = [c.strip() for c in search_row.strip("│").split("│")]
        assert cells[:5] == ["search", "tool", "6", "6", "50%"]
        ask_row = next(line for line in out.splitlines() if line.startswith("│ ask "))
        assert "1,200" in ask_row  # tokens saved by the one hit
        assert any(line.startswith("│ tenant-42 ") and "│       2 │" in line for line in out.splitlines())
        assert "plus 1 stats snapshot(s) and 1 event rule(s)" in out

    def test_json(self, filled: Filled, tmp_path: Path) -> None:
        """`stats --json` carries the same numbers for scripts."""
        proc = run(filled.url, "stats", "--json", cwd=tmp_path)
        data = json.loads(proc.stdout)
        assert data["snapshots"] == 1
        assert data["stats"]["by_function"]["search"]["hits"] == 6
        assert data["stats"]["by_function"]["ask"]["tokens_saved"] == 1200
        assert data["stats"]["by_layer"]["response"]["usd_saved"] == pytest.approx(0.0045)
        groups = {(g["namespace"], g["layer"]): g["entries"] for g in data["store"]["groups"]}
        assert groups[("tenant-4", "tool")] == 2
        assert groups[("default", "response")] == 1
        assert data["store"]["entries"] == 9

    def test_no_snapshots_says_how_they_appear(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A store without snapshots explains when processes write them."""
        code, out, _ = in_process(capsys, "--url", f"sqlite://{tmp_path / 'empty.db'}", "stats")
        assert code == 0
        assert "No statistics recorded" in out and "flush_stats" in out


class TestLs:
    def test_table_lists_entries_with_user_tags(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """`ls` shows namespace, layer, function, short digest, size, age, expiry and only user tags."""
        code, out, _ = in_process(capsys, "--url", filled.url, "ls")
        assert code == 0
        key = filled.keys["tenant-42"]
        row = next(line for line in out.splitlines() if digest_of(key)[:12] in line)
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[:4] == ["tenant-42", "tool", "search", digest_of(key)[:12]]
        assert cells[4].endswith(" B")
        assert cells[6] in ("59 min", "1.0 h")
        assert cells[7] == "search"
        assert "@fn:" not in out
        assert "_stats" not in out and "_events" not in out
        assert out.rstrip().endswith("9 entries")

    def test_namespace_includes_nested_but_not_siblings(self, filled: Filled, tmp_path: Path) -> None:
        """`ls --namespace tenant-4` lists tenant-4 and tenant-4/sub, never tenant-42."""
        proc = run(filled.url, "ls", "--namespace", "tenant-4", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        entries = json.loads(proc.stdout)["entries"]
        assert sorted({e["namespace"] for e in entries}) == ["tenant-4", "tenant-4/sub"]
        assert len(entries) == 4
        table = run(filled.url, "ls", "-n", "tenant-4", cwd=tmp_path).stdout
        assert "tenant-42" not in table

    def test_filters_by_tag_layer_function(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """--tag, --layer and --function narrow the listing."""

        def listed(*args: str) -> list[dict[str, Any]]:
            code, out, _ = in_process(capsys, "--url", filled.url, "ls", "--json", *args)
            assert code == 0
            return list(json.loads(out)["entries"])

        assert {e["function"] for e in listed("--tag", "search")} == {"search"}
        assert len(listed("--tag", "search")) == 6
        assert [e["function"] for e in listed("--layer", "response")] == ["ask"]
        assert {e["function"] for e in listed("--function", "CHUNK")} == {"chunks"}
        assert listed("--tag", "nope") == []

    def test_limit_says_how_many_more(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """--limit caps the rows and says how many matched."""
        code, out, _ = in_process(capsys, "--url", filled.url, "ls", "--limit", "2")
        assert code == 0
        assert "showing 2 of 9 entries" in out

    def test_all_shows_internal_records(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """--all adds the stats snapshots and event rules."""
        _, out, _ = in_process(capsys, "--url", filled.url, "ls", "--all", "--json")
        namespaces = {e["namespace"] for e in json.loads(out)["entries"]}
        assert {"_stats", "_events"} <= namespaces

    def test_missing_file_is_empty_and_not_created(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Listing a store that does not exist yet prints nothing found and creates no file."""
        path = tmp_path / "nothing" / "here.db"
        code, out, _ = in_process(capsys, "--url", f"sqlite://{path}", "ls")
        assert (code, out.strip()) == (0, f"No entries in sqlite://{path}.")
        assert not path.exists()


class TestShow:
    def test_digest_prefix_shows_metadata_usage_and_value(self, filled: Filled, tmp_path: Path) -> None:
        """`show PREFIX` prints created, call duration, tokens and $, and the value as truncated JSON."""
        proc = run(filled.url, "show", digest_of(filled.keys["ask"])[:8], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert f"key        {filled.keys['ask']}" in out
        assert "kind       value" in out
        assert "call took" in out and "created" in out
        assert "1,000 input + 200 output = 1,200 tokens (gpt-4o), $0.004500" in out
        assert '"model": "gpt-4o"' in out
        assert "more characters (--full shows everything)" in out
        full = run(filled.url, "show", filled.keys["ask"], "--full", cwd=tmp_path).stdout
        assert "--full shows everything" not in full
        assert full.count("hello") == 1000

    def test_json_has_value_and_expiry(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """`show --json` returns the full value, tags and expiry."""
        code, out, _ = in_process(capsys, "--url", filled.url, "show", filled.keys["tenant-4"], "--json")
        assert code == 0
        data = json.loads(out)
        assert data["value"] == "results for a"
        assert (data["namespace"], data["tags"], data["kind"]) == ("tenant-4", ["search"], "value")
        assert data["expires_at"] > data["created_at"]

    def test_stream_entry(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """A streamed result shows as its chunks, in order."""
        _, out, _ = in_process(capsys, "--url", filled.url, "show", filled.keys["chunks"])
        assert "stream (3 chunks, replayed in order)" in out
        assert out.index("chunk-0") < out.index("chunk-1") < out.index("chunk-2")

    def test_unregistered_type_shows_stored_form(self, filled: Filled, tmp_path: Path) -> None:
        """A value whose class only the writing process knows is shown in its stored form, never rebuilt."""
        proc = run(filled.url, "show", filled.keys["report"], "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["value"]["v"] == {"title": "q3", "score": 7}
        assert "stored (type-tagged) form" in data["note"]

    def test_unknown_key_exits_1(self, filled: Filled, tmp_path: Path) -> None:
        """An unknown key or digest prefix exits 1 and says so."""
        proc = run(filled.url, "show", "ac:v1:default:tool:search:" + "0" * 32, cwd=tmp_path)
        assert proc.returncode == 1
        assert "no entry" in proc.stderr
        missing = next(
            c for c in "0123456789abcdef" if not any(digest_of(k).startswith(c) for k in filled.keys.values())
        )
        assert run(filled.url, "show", missing * 6, cwd=tmp_path).returncode == 1

    def test_ambiguous_or_malformed_is_a_usage_error(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """A prefix matching several entries, or text that is no key, exits 2 with what to do."""
        from agentcache.backends import Item, open_backend

        store = open_backend(filled.url)  # two entries whose digests share a prefix, whatever the keys' scope
        store.set_many(
            [
                Item("ac:v1:default:tool:twin:" + "ab" * 16, b"x"),
                Item("ac:v1:default:tool:twin:" + "ab" * 15 + "cd", b"x"),
            ]
        )
        store.close()
        code, _, err = in_process(capsys, "--url", filled.url, "show", "abab")
        assert code == 2 and "give more characters" in err
        code, _, err = in_process(capsys, "--url", filled.url, "show", "not-a-key")
        assert code == 2 and "digest prefix" in err

    def test_corrupt_entry_is_reported_not_raised(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Foreign bytes under an agentcache key show as unreadable instead of crashing the command."""
        from agentcache.backends import Item, open_backend

        url = f"sqlite://{tmp_path / 'c.db'}"
        store = open_backend(url)
        store.set_many([Item("ac:v1:default:tool:junk:" + "cd" * 16, b"garbage")])
        store.close()
        code, out, _ = in_process(capsys, "--url", url, "show", "cdcd")
        assert code == 0
        assert "kind       unreadable" in out and "cannot decode" in out


class TestClear:
    def test_namespace_with_yes(self, filled: Filled, tmp_path: Path) -> None:
        """`clear --namespace tenant-4 --yes` deletes tenant-4 and tenant-4/sub only; the app then recomputes."""
        proc = run(filled.url, "clear", "--namespace", "tenant-4", "--yes", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Deleted 4 entries" in proc.stdout
        left = json.loads(run(filled.url, "ls", "--json", cwd=tmp_path).stdout)["entries"]
        assert "tenant-42" in {e["namespace"] for e in left}
        assert not {"tenant-4", "tenant-4/sub"} & {e["namespace"] for e in left}
        before = len(filled.calls)
        with agentcache.namespace("tenant-4"):
            filled.search("a")
        with agentcache.namespace("tenant-42"):
            filled.search("a")
        assert len(filled.calls) == before + 1

    def test_everything_with_yes(self, filled: Filled, tmp_path: Path) -> None:
        """`clear --yes` deletes every agentcache record, internal ones included, and prints the count."""
        proc = run(filled.url, "clear", "--yes", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"deleted": 11}
        assert json.loads(run(filled.url, "ls", "--all", "--json", cwd=tmp_path).stdout)["matched"] == 0

    def test_refuses_without_yes_when_not_interactive(self, filled: Filled, tmp_path: Path) -> None:
        """Without a terminal to ask on, `clear` needs --yes and deletes nothing."""
        proc = run(filled.url, "clear", cwd=tmp_path)
        assert proc.returncode == 2 and "--yes" in proc.stderr
        assert json.loads(run(filled.url, "ls", "--json", cwd=tmp_path).stdout)["matched"] == 9

    @pytest.mark.parametrize(("answer", "remaining"), [(b"n\n", 2), (b"y\n", 0)])
    def test_asks_on_a_terminal(self, filled: Filled, tmp_path: Path, answer: bytes, remaining: int) -> None:
        """On a terminal, `clear` asks first: "n" keeps the entries, "y" deletes them."""
        master, slave = pty.openpty()
        try:
            os.write(master, answer)
            proc = run(filled.url, "clear", "-n", "tenant-42", cwd=tmp_path, stdin=slave)
        finally:
            os.close(slave)
            os.close(master)
        assert proc.returncode == 0, proc.stderr
        assert "Delete 2 entries of namespace 'tenant-42'" in proc.stderr
        left = json.loads(run(filled.url, "ls", "-n", "tenant-42", "--json", cwd=tmp_path).stdout)
        assert left["matched"] == remaining


class TestInvalidate:
    def test_by_tag_within_namespace(self, filled: Filled, tmp_path: Path) -> None:
        """`invalidate --tag search --namespace tenant-42` deletes just those; the app recomputes them."""
        proc = run(filled.url, "invalidate", "--tag", "search", "--namespace", "tenant-42", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "deleted 2 entries" in proc.stdout
        before = len(filled.calls)
        for ns in TENANTS:
            with agentcache.namespace(ns):
                filled.search("a")
        assert len(filled.calls) == before + 1

    def test_by_several_tags_json(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """Repeated --tag options are all applied."""
        code, out, _ = in_process(
            capsys, "--url", filled.url, "invalidate", "--tag", "nope", "--tag", "search", "--json"
        )
        assert code == 0
        assert json.loads(out) == {"deleted": 6, "tags": ["nope", "search"], "namespace": None}

    def test_by_event_uses_the_rule_the_app_stored(self, filled: Filled, tmp_path: Path) -> None:
        """`invalidate --event` applies the rule recorded by the process that called `agentcache.on`."""
        proc = run(filled.url, "invalidate", "--event", "docs.reindexed", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "event 'docs.reindexed' (tags: search" in proc.stdout
        assert "deleted 6 entries" in proc.stdout
        layers = {e["layer"] for e in json.loads(run(filled.url, "ls", "--json", cwd=tmp_path).stdout)["entries"]}
        assert layers == {"response", "tool"}  # ask, chunks and report stay

    def test_unknown_event_says_nobody_registered_it(self, filled: Filled, tmp_path: Path) -> None:
        """An event no process registered exits 1 and says how to register it."""
        proc = run(filled.url, "invalidate", "--event", "never.registered", cwd=tmp_path)
        assert proc.returncode == 1
        assert "no process ever registered the event 'never.registered'" in proc.stderr
        assert "agentcache.on(" in proc.stderr

    def test_by_key(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """`invalidate --key` deletes one entry; a second time finds nothing and exits 1."""
        key = filled.keys["tenant-4/sub"]
        assert in_process(capsys, "--url", filled.url, "invalidate", "--key", digest_of(key)[:10])[0] == 0
        code, _, err = in_process(capsys, "--url", filled.url, "invalidate", "--key", key)
        assert code == 1 and "no entry" in err

    def test_namespace_without_tag_points_to_clear(self, filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
        """--namespace alone is refused with the command that does it."""
        code, _, err = in_process(capsys, "--url", filled.url, "invalidate", "--event", "x", "--namespace", "tenant-4")
        assert code == 2 and "agentcache clear --namespace tenant-4" in err


class TestInfoAndErrors:
    def test_info_reports_settings_and_backend(self, filled: Filled, tmp_path: Path) -> None:
        """`info` shows the resolved url, dir, namespace, kill switch and backend kind."""
        env_run = run(filled.url, "info", "--json", cwd=tmp_path)
        data = json.loads(env_run.stdout)
        assert data["url"] == filled.url
        assert data["url_source"].startswith("AGENTCACHE_URL")
        assert (data["backend"], data["can_list"], data["disabled"]) == ("SQLiteBackend", True, False)
        assert data["file"] == str(filled.path) and data["file_bytes"] > 0
        text = run(filled.url, "info", cwd=tmp_path).stdout
        assert "namespace   default" in text and "disabled    no" in text

    def test_missing_redis_extra_says_what_to_install(self, tmp_path: Path) -> None:
        """A redis URL without redis-py installed exits 2 and names the extra to install."""
        code = "import sys; sys.modules['redis'] = None; from agentcache.cli.main import main; raise SystemExit(main())"
        proc = subprocess.run(
            [sys.executable, "-c", code, "--url", "redis://127.0.0.1:6379/0", "ls"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2
        assert "pip install 'agentcache-py[redis]'" in proc.stderr

    def test_unreachable_store_exits_3(self, tmp_path: Path) -> None:
        """A store that refuses connections exits 3 and says to check the URL."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = run(f"redis://127.0.0.1:{port}/0", "ls", cwd=tmp_path)
        assert proc.returncode == 3
        assert "check that it is reachable" in proc.stderr

    def test_usage_errors_exit_2(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """No command, an unknown command, a bad namespace or URL are usage errors."""
        url = f"sqlite://{tmp_path / 'c.db'}"
        assert main([]) == 2
        assert main(["frobnicate"]) == 2
        assert main(["--url", url, "ls", "--namespace", "a:b"]) == 2
        assert main(["--url", "bogus://x", "ls"]) == 2
        err = capsys.readouterr().err
        assert "invalid namespace" in err and "valid schemes" in err

    def test_module_and_version(self, tmp_path: Path) -> None:
        """`python -m agentcache --version` runs the CLI."""
        proc = run("memory://", "--version", cwd=tmp_path)
        assert (proc.returncode, proc.stdout.strip()) == (0, f"agentcache {agentcache.__version__}")


class TestProgress:
    def test_long_scan_draws_progress_on_a_terminal_only(self, tmp_path: Path) -> None:
        """Listing more than 2,000 entries draws a progress line when stderr is a terminal, none otherwise."""
        url = f"sqlite://{tmp_path / 'big.db'}"

        @agentcache.tool_cached(backend=url, name="many")
        def many(i: int) -> int:
            return i

        for i in range(2100):
            many(i)
        assert "listing entries" not in run(url, "ls", "--limit", "1", cwd=tmp_path).stderr
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "agentcache", "--url", url, "ls", "--limit", "1"],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=slave,
                timeout=60,
                check=False,
            )
            os.close(slave)
            drawn = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other end is closed and drained
                    break
                if not chunk:
                    break
                drawn += chunk
        finally:
            os.close(master)
        assert proc.returncode == 0
        assert b"listing entries: 2," in drawn
        assert b"showing 1 of 2,100 entries" in proc.stdout

    def test_status_line_is_drawn_then_erased(self) -> None:
        """`show` draws a status line on a terminal and `close` erases it; nothing is written to a pipe."""

        class Stream:
            def __init__(self, tty: bool) -> None:
                self.tty = tty
                self.text = ""

            def isatty(self) -> bool:
                return self.tty

            def write(self, s: str) -> None:
                self.text += s

            def flush(self) -> None:
                pass

        term, pipe = Stream(tty=True), Stream(tty=False)
        for stream in (term, pipe):
            progress = Progress("clearing", stream=stream)  # type: ignore[arg-type]
            progress.show("clearing everything…")
            progress.close()
        assert term.text == "\rclearing everything…\x1b[K\r\x1b[K"
        assert pipe.text == ""


class TestFormatting:
    def test_human_sizes_and_durations(self) -> None:
        """Sizes use B/KB/MB and durations s/min/h/d."""
        assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**2)] == ["0 B", "1023 B", "1.5 KB", "5.0 MB"]
        assert [human_duration(s) for s in (-1, 59, 61, 5400, 3 * 86400)] == ["0 s", "59 s", "1 min", "1.5 h", "3.0 d"]

    def test_truncate_reports_what_was_cut(self) -> None:
        """Long text is cut by lines and characters, and the cut size is reported."""
        text = "\n".join(str(i) for i in range(100))
        cut, more = truncate(text, max_lines=10)
        assert cut.splitlines() == [str(i) for i in range(10)]
        assert more == len(text) - len(cut)


@pytest.mark.redis
class TestRedis:
    def test_ls_invalidate_clear_on_redis(self, redis_server: str, tmp_path: Path) -> None:
        """The same commands work on a Redis store: namespace isolation, events, clear counts."""
        from support.backends import with_query

        url = with_query(redis_server, prefix=f"cli{os.getpid()}{tmp_path.name[-12:]}:")
        agentcache.on("kb.changed", tags=["kb"])

        @agentcache.tool_cached(backend=url, tags=["kb"], name="lookup")
        def lookup(q: str) -> str:
            return q.upper()

        for ns in TENANTS:
            with agentcache.namespace(ns):
                lookup("x")
        agentcache.flush_stats()
        listed = json.loads(run(url, "ls", "-n", "tenant-4", "--json", cwd=tmp_path).stdout)
        assert sorted(e["namespace"] for e in listed["entries"]) == ["tenant-4", "tenant-4/sub"]
        stats = json.loads(run(url, "stats", "--json", cwd=tmp_path).stdout)
        assert stats["stats"]["by_function"]["lookup"]["misses"] == 3
        proc = run(url, "invalidate", "--event", "kb.changed", cwd=tmp_path)
        assert "deleted 3 entries" in proc.stdout, proc.stderr
        assert json.loads(run(url, "clear", "--yes", "--json", cwd=tmp_path).stdout) == {"deleted": 2}


def test_a_process_with_only_hits_leaves_its_stats(tmp_path: Path) -> None:
    """The exit snapshot is written even when a process never misses."""
    import textwrap

    url = f"sqlite://{tmp_path / 'hits.db'}"
    script = textwrap.dedent(
        """
        import agentcache
        @agentcache.tool_cached(name="only_hits")
        def f(x): return x
        f(1)
        """
    )
    env = {**os.environ, "AGENTCACHE_URL": url}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-m", "agentcache", "--json", "stats"], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["snapshots"] == 2
    assert report["stats"]["by_function"]["only_hits"]["hits"] == 1
    assert report["stats"]["by_function"]["only_hits"]["misses"] == 1
