"""The local fake OpenAI/Anthropic HTTP server the SDK tests talk to (the package's own simulator).

`agentcache.testing.simulator.SimulatedLLM` is the one implementation: the offline examples use it too.
Tests start one per test through `fake_llm_server()` and read `server.calls[...]` to prove hits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentcache.testing.simulator import SimulatedLLM

__all__ = ["SimulatedLLM", "anthropic_client", "fake_llm_server", "openai_client"]


@contextmanager
def fake_llm_server(*, latency: float = 0.0, chunk_delay: float = 0.0) -> Iterator[SimulatedLLM]:
    """A started fake server on a free 127.0.0.1 port, stopped on exit."""
    with SimulatedLLM(latency=latency, chunk_delay=chunk_delay) as server:
        yield server


def openai_client(server: SimulatedLLM, *, is_async: bool = False, max_retries: int = 0) -> Any:
    """A real `openai.OpenAI` (or `AsyncOpenAI`) pointed at `server`."""
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=server.openai_base_url, api_key="sk-test", max_retries=max_retries)


def anthropic_client(server: SimulatedLLM, *, is_async: bool = False, max_retries: int = 0) -> Any:
    """A real `anthropic.Anthropic` (or `AsyncAnthropic`) pointed at `server`."""
    import anthropic

    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=max_retries)
