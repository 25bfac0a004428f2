"""Exact-cache hit latency: agentcache `@response_cached` against floors and peer libraries, in one run.

Every row answers the same question: "this ~2 KB chat request was seen before; give me the ~1 KB
OpenAI-shaped chat completion". Every cache is filled once, then each row times hits only (median and p99 in
µs, GC off, interleaved rounds; see `_harness.py`). Writes `benchmarks/results/exact.md` and prints it.

    .venv/bin/python benchmarks/bench_exact.py          # ~1 minute
    .venv/bin/python benchmarks/bench_exact.py --quick  # a smoke run, a few seconds

How each row is keyed (the peers cannot all take the dict/list request as it is):
- agentcache: `chat(**request)` on a decorated `chat(messages, model, **params)`; key = typed canonical JSON
  (`agentcache.keys`) + SHA-256 digest (128 bits); the value is stored as bytes, and every hit reads them from
  the store and returns a copy the caller may mutate (new dicts and lists, shared strings: the entry is parsed
  once and kept decoded while the store returns the same bytes), and records hits, time, tokens and dollars saved.
- `functools.lru_cache` and `cachetools.cached`: key = `json.dumps(request, sort_keys=True)` (a frozen
  JSON form; lru_cache hashes the string, cachetools wraps it in `hashkey`). They return the stored object itself.
- LangChain: what `BaseChatModel` does on every cached call: `prompt = dumps(messages)` (langchain_core.load)
  and `llm_string = <model repr> + "---" + str(sorted(params.items()))` (the model's JSON repr is precomputed
  here, which favours LangChain); the value is `[ChatGeneration(AIMessage(...))]` built from the same completion.
- cashews `mem://`: its `@cache(ttl=...)` decorator with its default key template (it formats argument values
  into the key; values are kept as objects, not serialized).
- diskcache: `Cache(tmpdir).memoize()`, its default key (a pickled tuple of the arguments) and value (pickle).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, Result, fmt, machine_info, markdown_table, measure, ratio, write_report  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "exact.md"
PACKAGES = (
    "agentcache-py",
    "cachetools",
    "cashews",
    "diskcache",
    "langchain-core",
    "langchain-community",
    "SQLAlchemy",
)

SYSTEM = (
    "You are Ada, the support assistant of Northwind Cloud. Answer questions about billing, quotas, regions and "
    "the public API. Be concise: at most five sentences unless the user asks for detail. Never invent prices; "
    "when you are not sure, say so and offer to open a ticket. Use the `lookup_invoice` tool for anything about "
    "a specific invoice, and always quote invoice numbers exactly. Refuse requests for other customers' data. "
    "Format code with fenced blocks and name the language. Dates are ISO 8601, amounts carry their currency. "
    "If the user writes in another language, answer in that language. Current plan tiers: Starter, Team, "
    "Business, Enterprise. Support hours are 24/7 for Business and above, office hours otherwise. "
    "Reserved capacity is sold in 12- and 36-month terms; quote list prices only from the price sheet."
)

REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi! Our March invoice looks higher than usual. Can you tell me why?"},
        {
            "role": "assistant",
            "content": "Of course. Could you give me the invoice number (it starts with INV-) so I can look it up?",
        },
        {"role": "user", "content": "Sure, it's INV-2024-03-1187. We're on the Team plan in eu-west-2."},
        {
            "role": "assistant",
            "content": "Thanks. Invoice INV-2024-03-1187 shows 1,240 GPU-hours against 800 in February; the extra "
            "440 hours were billed at the on-demand rate of EUR 0.92, which explains the EUR 404.80 increase.",
        },
        {"role": "user", "content": "Would a reserved commitment have been cheaper for that usage? Short answer."},
    ],
    "temperature": 0.2,
    "max_tokens": 400,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup_invoice",
                "description": "Fetch one invoice of the current customer by its number.",
                "parameters": {
                    "type": "object",
                    "properties": {"invoice_id": {"type": "string", "description": "e.g. INV-2024-03-1187"}},
                    "required": ["invoice_id"],
                },
            },
        }
    ],
}

RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-9x7Qm2LrT4aVbN8cKd1EfGh3Ij5K",
    "object": "chat.completion",
    "created": 1718000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_0f03d4f0ee",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Yes. A 12-month reserved commitment for 1,200 GPU-hours a month on the Team plan costs "
                "EUR 0.61 per hour in eu-west-2, so March's 1,240 hours would have cost about EUR 756.40 instead "
                "of EUR 1,140.80, roughly 34% less. The catch: you pay for the reserved hours even in months you "
                "use fewer, so it only pays off if you expect to stay above about 800 hours a month. I can ask "
                "the billing team for a quote if you'd like.",
                "refusal": None,
                "tool_calls": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 412,
        "completion_tokens": 96,
        "total_tokens": 508,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0},
    },
    "service_tier": "default",
}


CALLS: dict[str, int] = {}  # calls that reached the "LLM", per implementation: each must stay at 1 (hits only)


def _reply(who: str) -> dict[str, Any]:
    CALLS[who] = CALLS.get(who, 0) + 1
    return copy.deepcopy(RESPONSE)


def _minimal_copy(r: dict[str, Any]) -> dict[str, Any]:
    """The least work that returns a response the caller may mutate: every dict and list new, strings shared."""
    choice = r["choices"][0]
    usage = r["usage"]
    return {
        **r,
        "choices": [{**choice, "message": {**choice["message"]}}],
        "usage": {
            **usage,
            "prompt_tokens_details": {**usage["prompt_tokens_details"]},
            "completion_tokens_details": {**usage["completion_tokens_details"]},
        },
    }


def _frozen(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True)


# Row names that other rows refer to.
FLOOR = "hashing floor: agentcache.keys canonical bytes + digest"
COPY_FLOOR = "copy floor: hashing floor + a hand-written copy of the response (new dicts and lists)"
MEM = "agentcache @response_cached memory:// (sync)"
SQL = "agentcache @response_cached sqlite:// (sync)"
AMEM = "agentcache @response_cached memory:// (async)"
ASQL = "agentcache @response_cached sqlite:// (async)"


def agentcache_rows(tmp: Path) -> tuple[list[Case], list[Case]]:
    """The floors, agentcache's four faces, and the steps of one memory hit."""
    import agentcache
    from agentcache.codec.entries import decode_parts
    from agentcache.keys.encoding import canonical_bytes, digest

    key = _frozen(REQUEST)
    precomputed = {key: RESPONSE}
    stored = orjson.dumps(RESPONSE)
    sqlite_url = f"sqlite://{tmp / 'agentcache.db'}"

    def hashing_floor() -> str:
        return digest(canonical_bytes(REQUEST))

    def copy_floor() -> Any:
        digest(canonical_bytes(REQUEST))
        return _minimal_copy(RESPONSE)

    def parse_floor() -> Any:
        digest(canonical_bytes(REQUEST))
        return orjson.loads(stored)

    @agentcache.response_cached(backend="memory://")
    def chat_mem(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(MEM)

    @agentcache.response_cached(backend=sqlite_url)
    def chat_sqlite(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(SQL)

    @agentcache.response_cached(backend="memory://")
    async def achat_mem(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(AMEM)

    @agentcache.response_cached(backend=sqlite_url)
    async def achat_sqlite(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(ASQL)

    async def amem_hit() -> Any:
        return await achat_mem(**REQUEST)

    async def asql_hit() -> Any:
        return await achat_sqlite(**REQUEST)

    for fn in (chat_mem, chat_sqlite):
        fn(**REQUEST)
    for afn in (achat_mem, achat_sqlite):
        _LOOP.run_until_complete(afn(**REQUEST))
    main = [
        Case("floor: dict lookup of a precomputed key", lambda: precomputed[key], ref=MEM),
        Case(FLOOR, hashing_floor, ref=MEM),
        Case(COPY_FLOOR, copy_floor, ref=MEM),
        Case("parse floor: hashing floor + orjson.loads of the stored response", parse_floor, ref=MEM),
        Case(MEM, lambda: chat_mem(**REQUEST)),
        Case(SQL, lambda: chat_sqlite(**REQUEST), ref=MEM),
        Case(AMEM, amem_hit, ref=MEM),
        Case(ASQL, asql_hit, ref=SQL),
    ]

    core = chat_mem.__agentcache_layer__  # type: ignore[attr-defined]
    where = core.coordinates((), dict(REQUEST))
    assert where is not None
    hit_key, _, _, store = where
    raw = store.get(hit_key)
    assert raw is not None
    breakdown = [
        Case("whole hit: chat(**request)", lambda: chat_mem(**REQUEST)),
        Case("key: Core.coordinates (settings, bind, namespace, digest, store)", lambda: core.coordinates((), REQUEST)),
        Case("· of which hashing floor (canonical bytes + digest)", hashing_floor),
        Case("store: MemoryBackend.get (lock-free read)", lambda: store.get(hit_key)),
        Case("hit: Core.hit (fresh copy of the decoded entry + stats)", lambda: core.hit(hit_key, raw)),
        Case(
            "a changed or first-read entry: serialization.decode_parts (verify + parse)",
            lambda: decode_parts(raw, hit_key),
        ),
    ]
    return main, breakdown


def peer_rows(tmp: Path) -> tuple[list[Case], list[Any]]:
    """The peer libraries doing the same job; returns the rows and things to close."""
    with warnings.catch_warnings():  # langchain-community's import-time sunset notice
        warnings.simplefilter("ignore")
        from langchain_community.cache import SQLiteCache
    import cachetools
    import cachetools.keys
    import diskcache  # type: ignore[import-untyped]
    from cashews import Cache as CashewsCache
    from langchain_core.caches import InMemoryCache
    from langchain_core.load import dumps
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.outputs import ChatGeneration

    closers: list[Any] = []
    names = {
        "lru": "functools.lru_cache (JSON key)",
        "ct": "cachetools.cached LRUCache (JSON key)",
        "lcm": "LangChain InMemoryCache.lookup",
        "cw": "cashews mem:// @cache (async)",
        "lcs": "LangChain SQLiteCache.lookup",
        "dc": "diskcache Cache.memoize",
    }

    @functools.lru_cache(maxsize=1024)
    def lru_chat(frozen: str) -> dict[str, Any]:
        return _reply(names["lru"])

    def lru_hit() -> Any:
        return lru_chat(_frozen(REQUEST))

    @cachetools.cached(cachetools.LRUCache(maxsize=1024), key=lambda **req: cachetools.keys.hashkey(_frozen(req)))
    def ct_chat(**req: Any) -> dict[str, Any]:
        return _reply(names["ct"])

    # LangChain: the lookup BaseChatModel makes on every cached call.
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    lc_messages = [kinds[m["role"]](content=m["content"]) for m in REQUEST["messages"]]
    params = {k: v for k, v in REQUEST.items() if k != "messages"}
    model_repr = json.dumps(
        {"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": {"model_name": REQUEST["model"]}},
        sort_keys=True,
    )
    choice = RESPONSE["choices"][0]
    generation = ChatGeneration(
        message=AIMessage(
            content=choice["message"]["content"],
            id=RESPONSE["id"],
            response_metadata={k: v for k, v in RESPONSE.items() if k not in ("choices", "usage")}
            | {"token_usage": RESPONSE["usage"], "finish_reason": choice["finish_reason"]},
            usage_metadata={
                "input_tokens": RESPONSE["usage"]["prompt_tokens"],
                "output_tokens": RESPONSE["usage"]["completion_tokens"],
                "total_tokens": RESPONSE["usage"]["total_tokens"],
            },
        ),
        generation_info={"finish_reason": choice["finish_reason"], "logprobs": None},
    )

    def lc_key() -> tuple[str, str]:
        prompt = dumps(lc_messages)
        llm_string = model_repr + "---" + str(sorted({**params, "stop": None}.items()))
        return prompt, llm_string

    lc_mem = InMemoryCache()
    lc_sql = SQLiteCache(database_path=str(tmp / "langchain.db"))
    for lc in (lc_mem, lc_sql):
        lc.update(*lc_key(), [generation])

    def lc_mem_hit() -> Any:
        return lc_mem.lookup(*lc_key())

    def lc_sql_hit() -> Any:
        with warnings.catch_warnings():  # "allowed_objects will change" notice on every loads()
            warnings.simplefilter("ignore")
            return lc_sql.lookup(*lc_key())

    assert lc_mem_hit()
    assert lc_sql_hit()

    cashews = CashewsCache()
    cashews.setup("mem://")

    @cashews(ttl="1h")
    async def cw_chat(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(names["cw"])

    async def cw_hit() -> Any:
        return await cw_chat(**REQUEST)

    dc = diskcache.Cache(str(tmp / "diskcache"))
    closers.append(dc.close)

    @dc.memoize()  # type: ignore[untyped-decorator]
    def dc_chat(messages: list[dict[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        return _reply(names["dc"])

    lru_hit()
    ct_chat(**REQUEST)
    _LOOP.run_until_complete(cw_hit())
    dc_chat(**REQUEST)
    rows = [
        Case(names["lru"], lru_hit, ref=MEM),
        Case(names["ct"], lambda: ct_chat(**REQUEST), ref=MEM),
        Case(names["lcm"], lc_mem_hit, ref=MEM),
        Case(names["cw"], cw_hit, ref=AMEM),
        Case(names["lcs"], lc_sql_hit, ref=SQL),
        Case(names["dc"], lambda: dc_chat(**REQUEST), ref=SQL),
    ]
    return rows, closers


_LOOP = asyncio.new_event_loop()


# -- report -----------------------------------------------------------------------------------------------------


def main_table(results: list[Result]) -> str:
    """Rows with their median, p99 and the two ratio columns."""
    by = {r.name: r for r in results}
    floor = by[FLOOR].median
    rows = []
    for r in results:
        ref = r.case.ref
        vs = f"{ratio(r.median, by[ref].median)} ({_short(ref)})" if ref in by else "-"
        rows.append([r.name, fmt(r.median), fmt(r.p99), ratio(r.median, floor), vs])
    headers = ["implementation", "median µs", "p99 µs", "vs hashing floor", "vs agentcache"]
    return markdown_table(headers, rows, "lrrrl")


def _short(name: str | None) -> str:
    return (name or "").replace("agentcache @response_cached ", "agentcache ")


def targets(results: list[Result]) -> list[tuple[str, bool, str]]:
    """Each target, whether it is met, and the numbers behind the verdict."""
    by = {r.name: r.median for r in results}
    f, m, s = by[FLOOR], by[MEM], by[SQL]
    out = [
        ("memory hit overhead ≤ 5 µs above the hashing floor", m - f <= 5.0, f"{m:.1f} - {f:.1f} = {m - f:.1f} µs"),
        ("SQLite hit ≤ 50 µs median", s <= 50.0, f"{s:.1f} µs"),
    ]
    for r in results:
        if r.case.ref is not None and "agentcache" not in r.name and "floor" not in r.name:
            mine = by[r.case.ref]
            out.append(
                (
                    f"faster than {r.name}",
                    mine < r.median,
                    f"{_short(r.case.ref)} {mine:.1f} µs vs {r.median:.1f} µs",
                )
            )
    return out


def main() -> None:
    """Run the benchmark, print the tables and write the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (numbers are noisy)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"report path (default {RESULTS})")
    args = parser.parse_args()
    rounds, seconds = (2, 0.02) if args.quick else (args.rounds, 0.3)
    info = machine_info(PACKAGES)
    with tempfile.TemporaryDirectory(prefix="agentcache-bench-") as tmpdir:
        tmp = Path(tmpdir)
        main_rows, breakdown = agentcache_rows(tmp)
        peers, closers = peer_rows(tmp)
        results = measure([*main_rows, *peers], rounds=rounds, round_seconds=seconds, loop=_LOOP, progress=_progress)
        parts = measure(breakdown, rounds=max(2, rounds // 2), round_seconds=seconds / 2, loop=_LOOP)
        for close in closers:
            close()
    _LOOP.close()
    recomputed = {who: n for who, n in CALLS.items() if n != 1}
    assert not recomputed, f"these rows measured misses, not hits: {recomputed}"

    table = main_table(results)
    verdicts = targets(results)
    target_lines = "\n".join(f"- {'MET' if ok else 'MISSED'}: {what} ({why})" for what, ok, why in verdicts)
    parts_table = markdown_table(
        ["step of one memory:// hit", "median µs", "p99 µs"],
        [[p.name, fmt(p.median), fmt(p.p99)] for p in parts],
        "lrr",
    )
    req_bytes = len(json.dumps(REQUEST).encode())
    resp_bytes = len(json.dumps(RESPONSE).encode())
    n = min(len(r.samples) for r in results)
    intro = (
        f"Per-hit latency of a {req_bytes} B chat request (system prompt, five turns, one tool, model, temperature, "
        f"max_tokens) returning a {resp_bytes} B OpenAI-shaped chat completion with usage. {rounds} interleaved "
        f"rounds, at least {n} timed hits per row, GC off while timing, clock overhead subtracted; every row is "
        f"checked to have called the underlying function exactly once (hits only). `vs agentcache` compares a row "
        f"with the agentcache row doing the same job. Generated by `benchmarks/bench_exact.py`."
    )
    doc = (__doc__ or "").split("How each row is keyed")[1].split("\n", 1)[1].strip()
    sections = [
        intro,
        table,
        "## Targets\n\n" + target_lines,
        "## Where one memory:// hit goes\n\n" + parts_table,
        "## How each row is keyed\n\n" + doc,
    ]
    write_report(args.out, "Exact-cache hit latency", sections, info)
    print(table, "", target_lines, "", parts_table, "", f"wrote {args.out}", sep="\n")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
