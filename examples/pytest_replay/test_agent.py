"""The agent's test. CI runs it in replay (pytest.ini): answers come from cassettes/, no key, no network.

Re-record after changing a prompt: ``OPENAI_API_KEY=... pytest examples/pytest_replay --agentcache=record``.
"""

from __future__ import annotations

from agent import make_client, run_agent


def test_agent_answers_with_the_tool_result() -> None:
    """The agent calls its tool and answers the question."""
    with make_client() as client:
        answer = run_agent(client, "What is the capital of France?")
    assert answer


def test_agent_streams() -> None:
    """A streamed answer replays chunk by chunk."""
    with make_client() as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
