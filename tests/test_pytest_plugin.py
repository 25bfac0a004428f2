"""The pytest plugin (`--agentcache=record|replay|off`) and its cassettes, run the way a user runs them: pytest in a
subprocess on a test file that calls the real OpenAI SDK through `agentcache.http_client()`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentcache.integrations import transport  # noqa: F401  (imported once, not per inner run)
from agentcache.integrations.cassette import Cassette
from agentcache.testing import simulator  # noqa: F401

openai = pytest.importorskip("openai")

pytest_plugins = ["pytester"]

AGENT_TEST = """
import os

import openai

import agentcache
from agentcache.testing.simulator import SimulatedLLM

PROMPT = os.environ.get("PROMPT", "What is the capital of France?")


def ask(sim):
    client = openai.OpenAI(
        base_url=sim.openai_base_url,
        api_key=os.environ.get("OPENAI_API_KEY", "sk-no-key"),
        max_retries=0,
        http_client=agentcache.http_client(),
    )
    with client:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
        streamed = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT + " (stream)"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    return answer.choices[0].message.content, text


def test_agent():
    with SimulatedLLM() as sim:
        answer, text = ask(sim)
        assert answer and text
        assert sim.calls["chat.completions"] == int(os.environ["EXPECT_UPSTREAM"])


def test_agent_swallowing_errors():
    with SimulatedLLM() as sim:
        try:
            ask(sim)
        except Exception:
            pass  # code under test that hides failures


def test_namespace(agentcache_namespace):
    assert agentcache.current_namespace() == agentcache_namespace
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with one agent test file; pytest's own cache plugin off."""
    pytester.makepyfile(test_flow=AGENT_TEST)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PROMPT", raising=False)
    return pytester


def _run(p: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    mp = pytest.MonkeyPatch()
    try:
        for k, v in env.items():
            mp.setenv(k, v)
        return p.runpytest(
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:langsmith_plugin",
            "-p",
            "no:asyncio",
            *args,
        )
    finally:
        mp.undo()


def _cassette(p: pytest.Pytester, test: str = "test_agent") -> Path:
    return Path(p.path) / "cassettes" / "test_flow" / f"{test}.json"


class TestRecordReplay:
    """Record once with a key, replay with none."""

    def test_record_then_replay_without_key(self, project: pytest.Pytester) -> None:
        """Replay answers every call from the committed cassette: no upstream call, no API key."""
        secret = "sk-live-0123456789abcdefXYZ"
        recorded = _run(project, "--agentcache=record", "-k", "test_agent", EXPECT_UPSTREAM="2", OPENAI_API_KEY=secret)
        recorded.assert_outcomes(passed=2)
        path = _cassette(project)
        data = json.loads(path.read_text())
        requests = [i["request"] for i in data["interactions"]]
        assert [r["path"] for r in requests] == ["/v1/chat/completions"] * 2
        contents = {r["body"]["messages"][0]["content"] for r in requests}
        assert contents == {"What is the capital of France?", "What is the capital of France? (stream)"}
        assert any("events" in i["response"] for i in data["interactions"])  # the stream, as readable events
        assert secret not in path.read_text()
        replayed = _run(project, "--agentcache=replay", "-k", "test_agent and not swallowing", EXPECT_UPSTREAM="0")
        replayed.assert_outcomes(passed=1)

    def test_ini_option(self, project: pytest.Pytester) -> None:
        """`agentcache_mode = replay` in the ini file does what the command-line option does."""
        _run(project, "--agentcache=record", "-k", "test_agent and not swallowing", EXPECT_UPSTREAM="2")
        project.makeini("[pytest]\nagentcache_mode = replay\n")
        result = _run(project, "-k", "test_agent and not swallowing", EXPECT_UPSTREAM="0")
        result.assert_outcomes(passed=1)
        assert "agentcache: replay cassettes" in result.stdout.str()

    def test_miss_fails_with_a_diff(self, project: pytest.Pytester) -> None:
        """A changed prompt fails in replay, naming the request and showing what differs from the recording."""
        _run(project, "--agentcache=record", "-k", "test_agent", EXPECT_UPSTREAM="2")
        result = _run(
            project, "--agentcache=replay", "-k", "test_agent", EXPECT_UPSTREAM="0", PROMPT="Capital of Peru?"
        )
        result.assert_outcomes(failed=2)  # the swallowing test fails too
        out = result.stdout.str()
        assert "no recorded answer for POST /v1/chat/completions" in out
        assert re.search(r'^E?\s*-\s+"content": "What is the capital of France\?",$', out, re.M)
        assert re.search(r'^E?\s*\+\s+"content": "Capital of Peru\?",$', out, re.M)

    def test_off_by_default(self, project: pytest.Pytester) -> None:
        """Without the option nothing is recorded and calls go upstream."""
        _run(project, "-k", "test_agent and not swallowing", EXPECT_UPSTREAM="2").assert_outcomes(passed=1)
        assert not (Path(project.path) / "cassettes").exists()

    def test_each_test_has_its_own_namespace(self, project: pytest.Pytester) -> None:
        """The `agentcache_namespace` fixture puts a test in a namespace named after it."""
        _run(project, "-k", "test_namespace").assert_outcomes(passed=1)


def _view(content: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **(extra or {})}
    return {"method": "POST", "path": "/v1/chat/completions", "body": body}


def _value(text: str) -> dict[str, Any]:
    return {"status": 200, "headers": [["content-type", "application/json"], ["x-request-id", "req_1"]], "body": text}


class TestCassetteFile:
    """The file format."""

    def test_deterministic(self, tmp_path: Path) -> None:
        """The same interactions give the same bytes whatever the recording order and the body key order."""
        one, two = Cassette(tmp_path / "a.json", "record"), Cassette(tmp_path / "b.json", "record")
        one.record(_view("x", {"temperature": 0}), _value('{"id":"1","b":2,"a":1}'))
        one.record(_view("y"), _value('{"id":"2"}'))
        two.record(_view("y"), _value('{"id":"2"}'))
        two.record({**_view("x"), "body": {"temperature": 0, **_view("x")["body"]}}, _value('{"a":1,"id":"1","b":2}'))
        assert one.save() and two.save()
        assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
        assert "x-request-id" not in (tmp_path / "a.json").read_text()

    def test_secrets_scrubbed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Secret-named fields, token-shaped strings and API-key environment values never reach the file."""
        monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-value-without-shape")
        tape = Cassette(tmp_path / "c.json", "record")
        view = _view(
            "use sk-proj-abcdefghijklmnopqrstuvwx and plain-value-without-shape", {"api_key": "hunter2hunter2"}
        )
        tape.record(view, _value('{"note":"Bearer abcdefghijklmnop"}'))
        tape.save()
        text = (tmp_path / "c.json").read_text()
        for secret in ("sk-proj-abcdefghijklmnopqrstuvwx", "plain-value-without-shape", "hunter2", "abcdefghijklmnop"):
            assert secret not in text
        assert text.count("<scrubbed>") == 4

    def test_round_trip(self, tmp_path: Path) -> None:
        """What was recorded is found again after loading the file, for JSON bodies and SSE streams."""
        tape = Cassette(tmp_path / "d.json", "record")
        sse = 'data: {"x":1}\n\ndata: [DONE]\n\n'
        tape.record(_view("json"), _value('{"id":"1"}'))
        tape.record(_view("sse"), {"status": 200, "headers": [["content-type", "text/event-stream"]], "sse": sse})
        tape.save()
        again = Cassette(tmp_path / "d.json", "replay")
        found = again.find(_view("json"))
        assert found is not None and json.loads(found["body"]) == {"id": "1"}
        stream = again.find(_view("sse"))
        assert stream is not None and stream["sse"] == sse
        assert again.find(_view("other")) is None


def test_example_replays_without_a_key() -> None:
    """`examples/pytest_replay` passes in replay (its pytest.ini) with no API key: every answer is a cassette's."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/pytest_replay"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
