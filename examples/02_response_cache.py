"""02 · Response cache: `@agentcache.response_cached` in front of your own LLM call.

Shows: what goes into the key (`agentcache.explain_key`: transport fields such as `timeout` and `user` are left
out, sampling parameters such as `temperature` are in), usage on results turning into tokens and dollars saved,
and `agentcache.set_prices` for a model the built-in price table does not know.

Runs offline in a few seconds on a throwaway SQLite file: `python examples/02_response_cache.py`.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import agentcache

Message = dict[str, Any]


@agentcache.response_cached()
def chat(
    messages: list[Message],
    model: str = "gpt-4o",
    temperature: float = 0.0,
    timeout: float = 30.0,
    user: str | None = None,
) -> dict[str, Any]:
    """A simulated chat completion (~300 ms), OpenAI-shaped, with the `usage` block real APIs return."""
    time.sleep(0.3)
    prompt_tokens = 1_000 + sum(len(m["content"]) for m in messages) // 4
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"[{model} @ {temperature}] 42"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 200, "total_tokens": prompt_tokens + 200},
    }


def ask(label: str, messages: list[Message], **params: Any) -> None:
    """Call `chat` and print whether it was a hit, how long it took and the tokens it reported."""
    hits = chat.cache_info().hits
    start = time.perf_counter()
    reply = chat(messages, **params)
    ms = (time.perf_counter() - start) * 1000
    verdict = "hit " if chat.cache_info().hits > hits else "miss"
    print(f"  {label:<46} {ms:6.1f} ms  {verdict}  {reply['usage']['total_tokens']:,} tokens")


def savings(heading: str, note: str = "", end: str = "\n\n") -> None:
    """Print what the hits so far saved."""
    info = chat.cache_info()
    print(f"  {heading}: {info.hits} hits saved {info.tokens_saved:,} tokens = ${info.usd_saved:.4f}{note}", end=end)


def main() -> None:
    question = [{"role": "user", "content": "What is the answer to everything?"}]
    with tempfile.TemporaryDirectory() as tmp:
        agentcache.configure(url=f"sqlite://{tmp}/cache.db")  # a throwaway store, not your real cache

        print("1. what identifies a request: explain_key(chat, question, timeout=5, user='alice')\n")
        print(agentcache.explain_key(chat, question, timeout=5, user="alice"))
        print()

        print("2. timeout and user change how a request travels, never the answer, so they share one entry:")
        ask("chat(q, timeout=30, user='alice')", question, timeout=30, user="alice")
        ask("chat(q, timeout=5, user='bob')", question, timeout=5, user="bob")
        ask("chat(q, temperature=0.7)   <- in the key", question, temperature=0.7)
        ask("chat(q, temperature=0.7)", question, temperature=0.7)
        savings("at gpt-4o list prices")

        print("3. a model the price table does not know: tokens are counted, dollars are 0 until you price it:")
        ask("chat(q, model='acme-llm-70b')", question, model="acme-llm-70b")
        ask("chat(q, model='acme-llm-70b')", question, model="acme-llm-70b")
        savings("before set_prices", "  (the acme-llm-70b hit counts $0)", end="\n")
        agentcache.set_prices({"acme-llm-70b": (3.0, 12.0)})  # USD per million input / output tokens
        savings("after set_prices({'acme-llm-70b': (3.0, 12.0)})", "  (hits are priced when you read them)")

        print(agentcache.stats())
        agentcache.reset()  # close the store before the temporary directory goes away


if __name__ == "__main__":
    main()
