"""Reply builders of `agentcache.testing.simulator`: pure functions from a request body to wire JSON.

Streams are the `agentcache.integrations._streams` event form of these replies."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from typing import Any

from agentcache.decorators.prompt import approx_tokens, min_cacheable_tokens

OPENAI_CACHE_MIN = 1024
OPENAI_CACHE_STEP = 128


# -- shared helpers ---------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _reply_text(prompt: str, index: int = 0) -> str:
    suffix = f" (choice {index})" if index else ""
    return f"Simulated reply to: {prompt[:200]}{suffix}"


def example_from_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value that validates against a (simple) JSON schema: what a structured-output model would return."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example_from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for combo in ("anyOf", "oneOf", "allOf"):
        if combo in schema:
            return example_from_schema(schema[combo][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub, defs) for name, sub in props.items()}
    if kind == "array":
        return [example_from_schema(schema.get("items", {"type": "string"}), defs)]
    return {"string": "simulated", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind)


def _tools_requested(body: dict[str, Any]) -> bool:
    """Tools offered and allowed, and the conversation does not end with a tool's result (then the model
    answers in text, as an agent loop expects)."""
    offered = bool(body.get("tools")) and body.get("tool_choice") not in ("none", {"type": "none"})
    return offered and not _tool_result_last(body.get("messages") or [])


def _tool_result_last(messages: list[Any]) -> bool:
    last = messages[-1] if messages else {}
    if not isinstance(last, dict):
        return False
    content = last.get("content")
    blocks = content if isinstance(content, list) else []
    return last.get("role") == "tool" or any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)


class PrefixCache:
    """The provider-side prompt caches: OpenAI's automatic prefix cache and Anthropic's breakpoint cache."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def _check_and_add(self, digests: list[str]) -> list[bool]:
        with self._lock:
            hits = [d in self._seen for d in digests]
            self._seen.update(digests)
        return hits

    def openai_cached(self, body: dict[str, Any]) -> int:
        """Tokens of the longest previously seen prefix (1024 minimum, 128-token steps), as OpenAI reports."""
        text = json.dumps(body.get("messages") or body.get("input") or "", sort_keys=True)
        total = approx_tokens(text)
        bounds = list(range(OPENAI_CACHE_MIN, total + 1, OPENAI_CACHE_STEP))
        key = str(body.get("prompt_cache_key", ""))
        digests = [hashlib.sha256(f"{key}\0{text[: 4 * b]}".encode()).hexdigest() for b in bounds]
        hits = self._check_and_add(digests)
        cached = [b for b, hit in zip(bounds, hits, strict=True) if hit]
        return max(cached, default=0)

    def anthropic_usage(self, body: dict[str, Any]) -> dict[str, Any]:
        """Simulate Anthropic's cache: read the longest cached breakpoint prefix, write up to the last one."""
        blocks = _anthropic_blocks(body)
        total = sum(tokens for tokens, _ in blocks)
        minimum = min_cacheable_tokens(str(body.get("model", "")))
        breakpoints: list[tuple[int, str, str]] = []  # (prefix tokens, digest, ttl)
        running = 0
        hasher = hashlib.sha256(str(body.get("model", "")).encode())
        for tokens, block in blocks:
            running += tokens
            hasher.update(json.dumps({k: v for k, v in block.items() if k != "cache_control"}).encode())
            control = block.get("cache_control")
            if isinstance(control, dict) and running >= minimum:
                breakpoints.append((running, hasher.hexdigest(), str(control.get("ttl", "5m"))))
        hits = self._check_and_add([d for _, d, _ in breakpoints])
        read = max((n for (n, _, _), hit in zip(breakpoints, hits, strict=True) if hit), default=0)
        write = {"5m": 0, "1h": 0}
        previous = read
        for n, _, ttl in breakpoints:
            if n > previous:
                write["1h" if ttl == "1h" else "5m"] += n - previous
                previous = n
        written = write["5m"] + write["1h"]
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "cache_creation": {"ephemeral_5m_input_tokens": write["5m"], "ephemeral_1h_input_tokens": write["1h"]},
        }


def _anthropic_blocks(body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Every prompt block in cache order (tools, system, messages) with its approximate token count."""
    blocks: list[dict[str, Any]] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content, "role": message.get("role")})
        else:
            blocks.extend(content or [])
    return [(approx_tokens(json.dumps(b.get("text", b), sort_keys=True)), b) for b in blocks]


def error_body(endpoint: str, status: int) -> dict[str, Any]:
    """The error JSON each provider sends for `status`."""
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
    message = f"simulated HTTP {status}"
    if endpoint == "messages":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# -- OpenAI -----------------------------------------------------------------------------------------------


def chat_completion(body: dict[str, Any], serial: int, cached: int) -> dict[str, Any]:
    """A `ChatCompletion` JSON answering `body`."""
    messages = body.get("messages") or []
    prompt = _last_user_text(messages)
    fmt = body.get("response_format") or {}
    choices = []
    for index in range(int(body.get("n") or 1)):
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if _tools_requested(body):
            tool = body["tools"][0]["function"]
            arguments = json.dumps({"query": prompt})
            call_id = f"call_sim{serial}_{index}"
            function = {"name": tool["name"], "arguments": arguments}
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
            finish = "tool_calls"
        elif fmt.get("type") == "json_schema":
            message["content"] = json.dumps(example_from_schema(fmt["json_schema"].get("schema", {})))
        else:
            message["content"] = _reply_text(prompt, index)
        choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
    prompt_tokens = approx_tokens(json.dumps(messages))
    completion_tokens = sum(approx_tokens(json.dumps(c["message"])) for c in choices)
    return {
        "id": f"chatcmpl-sim{serial:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
        "system_fingerprint": "fp_sim",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


def response_object(body: dict[str, Any], serial: int, cached: int) -> dict[str, Any]:
    """A Responses-API `Response` JSON answering `body`."""
    raw = body.get("input")
    prompt = raw if isinstance(raw, str) else _last_user_text(list(raw or []))
    text = _reply_text(prompt)
    in_tokens = approx_tokens(json.dumps(raw))
    out_tokens = approx_tokens(text)
    return {
        "id": f"resp_sim{serial:06d}",
        "object": "response",
        "created_at": float(int(time.time())),
        "status": "completed",
        "model": body.get("model", "gpt-4o-mini"),
        "output": [
            {
                "id": f"msg_sim{serial:06d}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        },
    }


def embedding_vector(text: str, dims: int) -> list[float]:
    """The deterministic unit vector the simulator returns for `text`."""
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = out[:dims]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """A `CreateEmbeddingResponse` JSON (float lists, or base64 float32 when asked)."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
    dims = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        vec = embedding_vector(text, dims)
        packed: Any = vec
        if body.get("encoding_format") == "base64":
            packed = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": index, "embedding": packed})
    tokens = sum(approx_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- Anthropic --------------------------------------------------------------------------------------------


def anthropic_message(body: dict[str, Any], serial: int, usage: dict[str, Any]) -> dict[str, Any]:
    """A `Message` JSON answering `body`, with the simulated prompt-cache usage."""
    prompt = _last_user_text(body.get("messages") or [])
    content: list[dict[str, Any]] = [{"type": "text", "text": _reply_text(prompt), "citations": None}]
    stop = "end_turn"
    if _tools_requested(body):
        tool = body["tools"][0]
        content.append(
            {"type": "tool_use", "id": f"toolu_sim{serial:06d}", "name": tool["name"], "input": {"query": prompt}}
        )
        stop = "tool_use"
    output = sum(approx_tokens(json.dumps(block)) for block in content)
    return {
        "id": f"msg_sim{serial:06d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-sonnet-4-5"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": output, "service_tier": "standard"},
    }
