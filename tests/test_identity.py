"""A function's identity in its keys: the project it belongs to, the code it runs, its importable module name.

The end-to-end cases run real scripts in fresh interpreters against one SQLite file, as a user's projects share
the per-user default store.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import agentcache
from agentcache.decorators.semantic import semantic_cached
from agentcache.engine.cache import Cache
from agentcache.keys.identity import code_digest, module_name, project_of

BOT = """
import json
import sys
from pathlib import Path

import agentcache

HERE = Path(__file__).resolve().parent
PROMPT = {prompt!r}


@agentcache.response_cached({options})
def ask(question):
    with open(HERE / "calls.log", "a") as log:  # one line per real computation
        log.write(question + "\\n")
    persona = (HERE / "persona.txt").read_text() if (HERE / "persona.txt").exists() else ""
    return " ".join(part for part in (PROMPT, persona, question) if part)


if __name__ == "__main__":
    print(json.dumps({{"answer": ask(sys.argv[1]), "key": ask.cache_key(sys.argv[1])}}))
"""


def write_bot(project: Path, prompt: str = "You are terse.", options: str = "") -> Path:
    project.mkdir(parents=True, exist_ok=True)
    bot = project / "bot.py"
    bot.write_text(BOT.format(prompt=prompt, options=options))
    return bot


def python(cwd: Path, url: str, *args: str, **extra_env: str) -> dict[str, Any]:
    """Run ``python ARGS`` in `cwd` on the store `url`; the JSON its last output line prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_") and k != "PYTHONPATH"}
    env.update(AGENTCACHE_URL=url, AGENTCACHE_DIR=str(cwd / ".agentcache-home"), **extra_env)
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def calls(project: Path) -> int:
    log = project / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


class TestProjects:
    def test_same_code_in_two_projects_never_shares_answers(self, tmp_path: Path, url: str) -> None:
        """Two checkouts with the same bot.py whose answer depends on a file of their own: B computes its own
        answer instead of getting A's (failed before: both keyed as `__main__.ask` in one scope)."""
        a, b = tmp_path / "a", tmp_path / "b"
        for project, persona in ((a, "pirate"), (b, "butler")):
            write_bot(project)
            (project / "persona.txt").write_text(persona)
            (project / "pyproject.toml").write_text("[project]\nname = 'bot'\n")
        assert python(a, url, "bot.py", "hi")["answer"] == "You are terse. pirate hi"
        assert python(b, url, "bot.py", "hi")["answer"] == "You are terse. butler hi"
        assert python(a, url, "bot.py", "hi")["answer"] == "You are terse. pirate hi"
        assert (calls(a), calls(b)) == (1, 1)  # each project's second run is a hit

    def test_same_signature_other_prompt(self, tmp_path: Path, url: str) -> None:
        """Project B's bot.py differs from A's only by its prompt (no project markers anywhere): B gets its own."""
        a = write_bot(tmp_path / "a", prompt="Answer in French.").parent
        b = write_bot(tmp_path / "b", prompt="Answer in German.").parent
        assert python(a, url, "bot.py", "hi")["answer"] == "Answer in French. hi"
        assert python(b, url, "bot.py", "hi")["answer"] == "Answer in German. hi"
        assert (calls(a), calls(b)) == (1, 1)

    def test_a_project_setting_shares_entries_across_paths(self, tmp_path: Path, url: str) -> None:
        """Two deployments of one project at different paths share entries once both set AGENTCACHE_PROJECT."""
        a, b = tmp_path / "deploy-1", tmp_path / "deploy-2"
        for project in (a, b):
            write_bot(project)
        first = python(a, url, "bot.py", "hi", AGENTCACHE_PROJECT="shop")
        second = python(b, url, "bot.py", "hi", AGENTCACHE_PROJECT="shop")
        assert first["key"] == second["key"]
        assert (calls(a), calls(b)) == (1, 0)
        python(b, url, "bot.py", "hi")  # without the setting, the path identifies the project again
        assert calls(b) == 1


class TestCode:
    def test_an_edited_prompt_misses(self, tmp_path: Path, url: str) -> None:
        """The same file, its prompt constant edited between two runs: the second run computes (failed before:
        the old answer came back forever)."""
        project = tmp_path / "p"
        write_bot(project, prompt="Answer in French.")
        assert python(project, url, "bot.py", "hi")["answer"] == "Answer in French. hi"
        assert python(project, url, "bot.py", "hi")["answer"] == "Answer in French. hi"
        assert calls(project) == 1
        write_bot(project, prompt="Answer in German.")
        assert python(project, url, "bot.py", "hi")["answer"] == "Answer in German. hi"
        assert calls(project) == 2

    def test_an_edited_body_misses(self, tmp_path: Path, url: str) -> None:
        """An edit inside the function's body (not a constant) changes its key too."""
        project = tmp_path / "p"
        bot = write_bot(project)
        first = python(project, url, "bot.py", "hi")
        bot.write_text(bot.read_text().replace("if part)\n", "if part).upper()\n"))
        second = python(project, url, "bot.py", "hi")
        assert second["answer"] == "YOU ARE TERSE. HI"
        assert first["key"] != second["key"]

    def test_comments_and_decorator_options_keep_the_key(self, tmp_path: Path, url: str) -> None:
        """What the function runs decides its key: a comment, a moved line or a new TTL does not."""
        project = tmp_path / "p"
        bot = write_bot(project)
        first = python(project, url, "bot.py", "hi")
        source = bot.read_text().replace(
            "@agentcache.response_cached()", '\n\n# tuned\n@agentcache.response_cached(ttl="1d")'
        )
        bot.write_text(source)
        second = python(project, url, "bot.py", "hi")
        assert first["key"] == second["key"]
        assert calls(project) == 1

    def test_version_opts_out_of_the_code_hash(self, tmp_path: Path, url: str) -> None:
        """With an explicit version=, an edit keeps the key (and the old answer): the version is the contract."""
        project = tmp_path / "p"
        write_bot(project, prompt="Answer in French.", options="version=3")
        first = python(project, url, "bot.py", "hi")
        write_bot(project, prompt="Answer in German.", options="version=3")
        second = python(project, url, "bot.py", "hi")
        assert first["key"] == second["key"]
        assert second["answer"] == "Answer in French. hi"
        assert calls(project) == 1
        write_bot(project, prompt="Answer in German.", options="version=4")
        assert python(project, url, "bot.py", "hi")["answer"] == "Answer in German. hi"

    def test_keys_do_not_depend_on_the_hash_seed(self, tmp_path: Path, url: str) -> None:
        """A set literal compiles to a frozenset constant whose order follows the hash seed: the key must not."""
        project = tmp_path / "p"
        bot = write_bot(project)
        bot.write_text(
            bot.read_text().replace(
                "    persona = ", "    if question in {'x', 'y', 'z', 'w'}:\n        pass\n    persona = "
            )
        )
        keys = {python(project, url, "bot.py", "hi", PYTHONHASHSEED=str(seed))["key"] for seed in (1, 2, 3)}
        assert len(keys) == 1


class TestModuleName:
    def test_script_and_import_share_the_key(self, tmp_path: Path, url: str) -> None:
        """`python bot.py` and `import bot` are one function, `bot.ask` (failed before: `__main__.ask` vs `bot.ask`)."""
        project = tmp_path / "p"
        write_bot(project)
        as_script = python(project, url, "bot.py", "hi")
        imported = python(
            project,
            url,
            "-c",
            "import bot, json; print(json.dumps({'answer': bot.ask('hi'), 'key': bot.ask.cache_key('hi')}))",
        )
        assert as_script == imported
        assert ":bot.ask:" in as_script["key"]
        assert calls(project) == 1

    def test_package_module_run_as_script_or_with_dash_m(self, tmp_path: Path, url: str) -> None:
        """A module inside a package keys by its dotted name however it is started."""
        pkg = tmp_path / "p" / "app"
        write_bot(pkg)
        (pkg / "__init__.py").write_text("")
        by_path = python(pkg.parent, url, "app/bot.py", "hi")
        by_name = python(pkg.parent, url, "-m", "app.bot", "hi")
        assert by_path["key"] == by_name["key"]
        assert ":app.bot.ask:" in by_path["key"]

    def test_spawned_worker_entries_are_invalidated_by_the_parent(self, tmp_path: Path, url: str) -> None:
        """A multiprocessing spawn worker runs the main file as `__mp_main__`: its entries carry the parent's key,
        so the parent's `cache_invalidate` removes them (failed before: `__mp_main__.f` vs `__main__.f`)."""
        script = tmp_path / "p" / "spawner.py"
        script.parent.mkdir()
        script.write_text(
            textwrap.dedent(
                """
                import json
                import multiprocessing
                from pathlib import Path

                import agentcache

                LOG = Path(__file__).with_name("calls.log")


                @agentcache.tool_cached()
                def f(x):
                    with open(LOG, "a") as log:
                        log.write(f"{x}\\n")
                    return x * 2


                def work(x):
                    return f(x), f.cache_key(x)


                if __name__ == "__main__":
                    with multiprocessing.get_context("spawn").Pool(1) as pool:
                        value, worker_key = pool.apply(work, (21,))
                    removed = f.cache_invalidate(21)
                    print(json.dumps({"value": value, "worker_key": worker_key, "key": f.cache_key(21),
                                      "removed": removed, "again": f(21)}))
                """
            )
        )
        out = python(script.parent, url, "spawner.py")
        assert out["worker_key"] == out["key"]
        assert out["removed"] is True
        assert (out["value"], out["again"]) == (42, 42)
        assert calls(script.parent) == 2  # the worker's computation, then the parent's after invalidating it


class TestInProcess:
    def test_same_name_other_code_never_shares(self, tmp_path: Path) -> None:
        """Two functions given one name= but different bodies do not share entries (failed before)."""
        cache = Cache(f"sqlite://{tmp_path / 'c.db'}")

        @agentcache.tool_cached(backend=cache, name="lookup")
        def v1(q: str) -> str:
            return "one"

        @agentcache.tool_cached(backend=cache, name="lookup")
        def v2(q: str) -> str:
            return "two"

        assert (v1("q"), v2("q")) == ("one", "two")
        assert v1.cache_key("q") != v2.cache_key("q")
        cache.close()

    def test_semantic_partitions_follow_the_code(self, tmp_path: Path) -> None:
        """A semantic function's vectors are partitioned by its code too: an edited function never gets the old
        one's answers by similarity (failed before: the partition was the name only)."""

        from support.embedders import SameVector

        cache = Cache(f"sqlite://{tmp_path / 's.db'}")

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, name="answer")
        def v1(question: str) -> str:
            return "one"

        @semantic_cached(backend=cache, embedder=SameVector(), guards=(), judge=False, name="answer")
        def v2(question: str) -> str:
            return "two"

        assert v1("a question") == "one"
        assert v2("another question") == "two"
        assert v1("yet another") == "one"  # same code, same partition: a semantic hit
        cache.close()

    def test_project_setting_separates_and_shares(self, tmp_path: Path) -> None:
        """configure(project=...) replaces the path: the same function under another project name misses."""
        agentcache.configure(url=f"sqlite://{tmp_path / 'c.db'}", project="one")
        computed: list[str] = []

        @agentcache.tool_cached()
        def f(q: str) -> str:
            computed.append(q)
            return q

        f("x")
        f("x")
        agentcache.configure(project="two")
        f("x")
        agentcache.configure(project="one")
        f("x")
        assert computed == ["x", "x"]

    def test_values_bound_by_partial_are_keyed(self) -> None:
        """`functools.partial(f, "A")` and `partial(f, "B")` bind different prompts the signature no longer shows:
        they never share entries (failed before: both were `functools.partial` with the same arguments)."""

        def base(system: str, q: str) -> str:
            return f"{system}:{q}"

        a = agentcache.tool_cached(backend="memory://")(functools.partial(base, "A"))
        b = agentcache.tool_cached(backend="memory://")(functools.partial(base, "B"))
        assert (a("q"), b("q")) == ("A:q", "B:q")
        assert a.cache_key("q").split(":")[4].endswith(".base")
        opaque = agentcache.tool_cached(backend="memory://")(functools.partial(base, object()))
        with pytest.raises(agentcache.KeyEncodingError, match=r"functools\.partial"):
            opaque("q")

    def test_explain_shows_the_code_version(self) -> None:
        @agentcache.tool_cached(backend="memory://")
        def f(q: str) -> str:
            return q

        @agentcache.tool_cached(backend="memory://", version=2)
        def g(q: str) -> str:
            return q

        assert (agentcache.explain_key(f, "q").version or "").startswith("code:")
        assert agentcache.explain_key(g, "q").version == "version:2"

    def test_project_names_are_validated(self) -> None:
        with pytest.raises(agentcache.ConfigurationError, match="project"):
            agentcache.configure(project=" ")

    def test_wrap_keys_stay_stable(self, tmp_path: Path) -> None:
        """SDK-wrapper entries come from agentcache's own stand-ins: keyed by endpoint name only, byte-identical to
        the keys written before function identity was added."""
        from types import SimpleNamespace

        from openai import OpenAI

        from agentcache.integrations._wrap import core_of

        client = agentcache.wrap(OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1"), backend="memory://")
        core = core_of(client)
        assert core is not None
        request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        key = core.key(SimpleNamespace(path="chat.completions.create"), request)  # type: ignore[arg-type]
        assert key == "ac:v1:default:response:openai.chat.completions.create:8b8bf84869d24278d73c7483db56293a"
        assert core.layers["chat.completions.create"].entry_tag == "@fn:openai.chat.completions.create"


def f_module_level(x: int) -> int:
    return x + len(PROMPT)


PROMPT = "abc"


class TestDigests:
    def test_module_name_of_ordinary_functions(self) -> None:
        assert module_name(f_module_level) == __name__

    def test_code_digest_covers_constants_the_function_reads(self) -> None:
        global PROMPT
        before = code_digest(f_module_level)
        PROMPT = "abcd"
        try:
            assert code_digest(f_module_level) != before
        finally:
            PROMPT = "abc"
        assert code_digest(f_module_level) == before

    def test_closure_values_count_objects_do_not(self) -> None:
        def make(prompt: str, client: object) -> Any:
            def ask(q: str) -> str:
                return f"{prompt} {client} {q}"

            return ask

        assert code_digest(make("a", object())) == code_digest(make("a", object()))
        assert code_digest(make("a", object())) != code_digest(make("b", object()))

    def test_project_root_is_the_nearest_marker(self, tmp_path: Path) -> None:
        (tmp_path / "repo" / "src" / "pkg").mkdir(parents=True)
        (tmp_path / "repo" / ".git").mkdir()
        mod = tmp_path / "repo" / "src" / "pkg" / "m.py"
        mod.write_text("def f():\n    return 1\n")
        namespace: dict[str, Any] = {"__name__": "not_imported"}
        exec(compile(mod.read_text(), str(mod), "exec"), namespace)
        assert project_of(namespace["f"]) == f"path:{os.path.realpath(tmp_path / 'repo')}"

    def test_callable_objects_are_keyed_by_their_call_method(self) -> None:
        class Shout:
            def __call__(self, q: str) -> str:
                return q.upper()

        class Whisper:
            def __call__(self, q: str) -> str:
                return q.lower()

        assert code_digest(Shout()) not in ("", code_digest(Whisper()))
        assert code_digest(len) == ""

    def test_a_module_without_file_belongs_to_the_current_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A notebook's cells compile from a temporary file named per kernel: the project must not follow it."""
        import types

        cell = tmp_path / "ipykernel_123" / "4567.py"
        cell.parent.mkdir()
        cell.write_text("def f():\n    return 1\n")
        notebook = types.ModuleType("notebook_main")
        monkeypatch.setitem(sys.modules, "notebook_main", notebook)
        exec(compile(cell.read_text(), str(cell), "exec"), notebook.__dict__)
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        assert project_of(notebook.f) == f"path:{os.path.realpath(work)}"
