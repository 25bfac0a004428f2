"""Anthropic prompt caching placed for you, with honest accounting: `wrap(Anthropic(), prompt_cache=True)`.

A long system prompt gets a `cache_control` breakpoint; the first turn writes it (1.25x price), later turns
read it (0.1x). The ledger shows the net dollars saved. Runs offline against the built-in simulated endpoint;
set ANTHROPIC_API_KEY to use the real API.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from anthropic import Anthropic

from agentcache.decorators import prompt as prompt_cache
from agentcache.integrations import wrap
from agentcache.testing.simulator import SimulatedLLM

SYSTEM = "You are a support agent for ACME routers. Policy manual follows.\n" + (
    "Section: always check the firmware version before suggesting a factory reset. " * 300
)


def main() -> None:
    with ExitStack() as stack:
        if os.environ.get("ANTHROPIC_API_KEY"):
            raw = Anthropic()
        else:
            sim = stack.enter_context(SimulatedLLM())
            raw = Anthropic(base_url=sim.anthropic_base_url, api_key="sk-ant-simulated")
        claude = wrap(raw, prompt_cache=True, backend="memory://")
        for question in ("My router blinks red.", "It still blinks after a reboot.", "What firmware is current?"):
            m = claude.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=256,
                system=SYSTEM,
                messages=[{"role": "user", "content": question}],
            )
            u = m.usage
            print(
                f"{question:35} input={u.input_tokens:5} cache_write={u.cache_creation_input_tokens:5} "
                f"cache_read={u.cache_read_input_tokens:5}"
            )
        stats = prompt_cache.ledger.snapshot()
        print(
            f"provider cache: {stats.cache_read_tokens} tokens read, {stats.cache_write_tokens} written; "
            f"cost ${stats.cost_usd:.4f} vs ${stats.uncached_cost_usd:.4f} uncached "
            f"-> net saved ${stats.net_saved_usd:.4f}"
        )
        claude.close()


if __name__ == "__main__":
    main()
