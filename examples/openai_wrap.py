"""One line makes OpenAI SDK calls cached: `client = agentcache.wrap(OpenAI())`.

Runs offline against agentcache's built-in simulated endpoint; set OPENAI_API_KEY to use the real API.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

import agentcache
from agentcache.integrations import is_cache_hit, wrap
from agentcache.testing.simulator import SimulatedLLM


def main() -> None:
    with ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            raw = OpenAI()
        else:
            sim = stack.enter_context(SimulatedLLM(latency=0.3))  # pretend every call takes 300 ms
            raw = OpenAI(base_url=sim.openai_base_url, api_key="sk-simulated")
        client = wrap(raw, backend="memory://")
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three uses of a paperclip."}]

        for attempt in (1, 2):
            start = time.perf_counter()
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            took = (time.perf_counter() - start) * 1000
            print(f"call {attempt}: hit={is_cache_hit(reply)} {took:7.1f} ms  {type(reply).__name__}")
        print("answer:", reply.choices[0].message.content)

        print("streamed, replayed from the same entry:")
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        print("  hit =", is_cache_hit(stream), "|", "".join(c.choices[0].delta.content or "" for c in stream))

        info = agentcache.stats().by_function["openai.chat.completions.create"]
        print(f"hits={info.hits} misses={info.misses} tokens saved={info.tokens_saved} ${info.usd_saved:.6f}")
        client.close()


if __name__ == "__main__":
    main()
