"""A small tool-using agent: the model asks for a search, the tool answers, the model writes the reply.

Its model calls go through `agentcache.http_client()`, so `pytest --agentcache=record|replay` can record them
into cassettes and replay them in CI without an API key (see test_agent.py and README.md).
"""

from __future__ import annotations

import json
import os
from typing import Any

import agentcache

MODEL = "gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the knowledge base.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
]


@agentcache.tool_cached(ttl="1h")
def search(query: str) -> str:
    """The agent's tool (a stand-in for a real search)."""
    return f"Top result for {query!r}: Paris is the capital of France."


def make_client() -> Any:
    """An OpenAI client whose model calls go through agentcache's HTTP transport.

    In replay no request leaves the process, so any key works: the placeholder stands in when none is set.
    """
    from openai import OpenAI

    return OpenAI(
        api_key=os.environ.get("OPENAI_API_KEY", "sk-replay-no-key"),
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        max_retries=0,
        http_client=agentcache.http_client(),
    )


def run_agent(client: Any, question: str) -> str:
    """Answer `question`: one tool round, then the final answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        arguments = json.loads(call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": search(**arguments)})
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, tool_choice="none")
    return str(final.choices[0].message.content)
