"""Recording and replay of SDK streams at the byte level, so every SDK stream helper keeps working.

A streamed call returns the SDK's own `Stream` / `AsyncStream`, rebuilt over a new HTTP response whose body
*tees* the real one: chunks reach the caller as they arrive while the raw SSE bytes are recorded. The recording
is handed to `on_done` only when the provider's terminal event was seen and the body raised nothing, so an
aborted, cut or errored stream is never stored. A hit builds the same stream class over an in-memory response
holding the recorded SSE bytes.

Events are stored as `[event, data]` pairs. Conversions between a recorded stream and the non-streamed object
(`events_to_object` / `object_to_events`) let one entry serve both forms where the content is the same.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

import orjson

Event = tuple[str | None, str]
Provider = str  # "openai.chat" | "openai.responses" | "anthropic.messages"

__all__ = [
    "build_items",
    "encode_sse",
    "events_to_object",
    "is_complete",
    "object_to_events",
    "parse_sse",
    "record_stream",
    "replay_stream",
    "response_events",
]


def _loads(data: str) -> Any:
    """Parse one event's JSON with orjson (stdlib `json` cost ~27% of a streamed hit), falling back to `json`
    for what orjson refuses (NaN / Infinity literals). Integers beyond 64 bits come back as floats (orjson)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _dumps(obj: Any) -> str:
    """Compact JSON of one event with orjson, falling back to `json` for what orjson refuses (ints beyond
    64 bits)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- SSE wire format --------------------------------------------------------------------------------------


def parse_sse(data: bytes) -> list[Event]:
    """Split raw SSE bytes into `(event, data)` pairs (comments, ids and retry fields dropped)."""
    out: list[Event] = []
    text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    for frame in text.split("\n\n"):
        event: str | None = None
        lines: list[str] = []
        for line in frame.split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                lines.append(value)
        if lines:
            out.append((event, "\n".join(lines)))
    return out


def encode_sse(events: list[Event] | list[list[Any]]) -> bytes:
    """The SSE bytes of `(event, data)` pairs."""
    parts = []
    for event, data in events:
        head = f"event: {event}\n" if event else ""
        parts.append(f"{head}data: {data}\n\n")
    return "".join(parts).encode()


def is_complete(provider: Provider, events: list[Event]) -> bool:
    """Whether a recorded stream reached the provider's terminal event (`[DONE]`, `message_stop`, ...)."""
    if provider == "openai.chat":
        return bool(events) and events[-1][1].strip() == "[DONE]"
    if provider == "anthropic.messages":
        return any(event == "message_stop" for event, _ in events)
    return any(event in ("response.completed", "response.incomplete") for event, _ in events)


# -- stream <-> object conversions --------------------------------------------------------------------------


def events_to_object(provider: Provider, events: list[Event]) -> dict[str, Any]:
    """Accumulate a recorded stream into the JSON of the non-streamed result."""
    payloads = [_loads(data) for _, data in events if data.strip() != "[DONE]"]
    if provider == "openai.chat":
        return _chat_from_chunks(payloads)
    if provider == "anthropic.messages":
        return _message_from_events(payloads)
    done = [p for p in payloads if p.get("type") in ("response.completed", "response.incomplete")]
    return dict(done[-1]["response"])


def object_to_events(provider: Provider, obj: dict[str, Any], *, include_usage: bool = False) -> list[Event] | None:
    """The stream a provider would have sent for `obj`, or `None` when that cannot be rebuilt faithfully."""
    if provider == "openai.chat":
        return chat_events(obj, include_usage=include_usage)
    if provider == "anthropic.messages":
        return message_events(obj)
    return response_events(obj)


def _chat_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    head = chunks[0] if chunks else {}
    out: dict[str, Any] = {k: head[k] for k in ("id", "created", "model") if k in head}
    for k in ("system_fingerprint", "service_tier"):
        if head.get(k) is not None:
            out[k] = head[k]
    out["object"] = "chat.completion"
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for c in chunk.get("choices") or []:
            choice = choices.setdefault(
                c["index"],
                {"index": c["index"], "message": {"role": "assistant", "content": None}, "finish_reason": None},
            )
            message, delta = choice["message"], c.get("delta") or {}
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    message[field] = (message.get(field) or "") + delta[field]
            for call in delta.get("tool_calls") or []:
                calls = message.setdefault("tool_calls", [])
                while len(calls) <= call["index"]:
                    calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                target = calls[call["index"]]
                if call.get("id"):
                    target["id"] = call["id"]
                fn = call.get("function") or {}
                target["function"]["name"] += fn.get("name") or ""
                target["function"]["arguments"] += fn.get("arguments") or ""
            if c.get("finish_reason") is not None:
                choice["finish_reason"] = c["finish_reason"]
            if c.get("logprobs") is not None:
                choice["logprobs"] = c["logprobs"]
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


def _message_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event["message"])
            message["content"] = list(message.get("content") or [])
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            index, delta = event["index"], event["delta"]
            block = message["content"][index]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "input_json_delta":
                partial[index] = partial.get(index, "") + delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "citations_delta":
                block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        elif kind == "content_block_stop" and event["index"] in partial:
            message["content"][event["index"]]["input"] = _loads(partial.pop(event["index"]) or "{}")
        elif kind == "message_delta":
            message.update({k: v for k, v in event["delta"].items() if k in ("stop_reason", "stop_sequence")})
            usage = dict(message.get("usage") or {})
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            message["usage"] = usage
    return message


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def chat_events(completion: dict[str, Any], *, include_usage: bool) -> list[Event]:
    """The chunk stream of a chat completion: role, content/tool-call deltas, finish, usage chunk, `[DONE]`."""
    head: dict[str, Any] = {k: completion[k] for k in ("id", "created", "model") if k in completion}
    head["object"] = "chat.completion.chunk"
    if completion.get("system_fingerprint") is not None:
        head["system_fingerprint"] = completion["system_fingerprint"]
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    frames: list[dict[str, Any]] = []

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        frames.append({**head, "choices": [choice], **extra})

    for choice in completion.get("choices") or []:
        i, message = choice["index"], choice.get("message") or {}
        content = message.get("content")
        chunk(i, {"role": "assistant", "content": "" if content else None})
        for piece in _pieces(content or ""):
            chunk(i, {"content": piece})
        if message.get("refusal"):
            chunk(i, {"refusal": message["refusal"]})
        for t, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            chunk(
                i,
                {
                    "tool_calls": [
                        {
                            "index": t,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn.get("name", ""), "arguments": ""},
                        }
                    ]
                },
            )
            for piece in _pieces(fn.get("arguments") or ""):
                chunk(i, {"tool_calls": [{"index": t, "function": {"arguments": piece}}]})
        chunk(i, {}, choice.get("finish_reason"))
    if include_usage:
        frames.append({**head, "choices": [], "usage": completion.get("usage")})
    events: list[Event] = [(None, _dumps(f)) for f in frames]
    events.append((None, "[DONE]"))
    return events


def message_events(message: dict[str, Any]) -> list[Event]:
    """The event stream of an Anthropic message: start, block start/deltas/stop, message_delta, stop."""
    usage = dict(message.get("usage") or {})
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    frames: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or []):
        deltas: list[dict[str, Any]]
        if block["type"] == "text":
            empty: dict[str, Any] = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif block["type"] == "tool_use":
            empty = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(_dumps(block["input"]))]
        elif block["type"] == "thinking":
            empty = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        else:
            empty, deltas = dict(block), []
        frames.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}))
        for delta in deltas:
            frames.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        frames.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    keep = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    frames.append(
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": {k: usage.get(k) for k in keep}})
    )
    frames.append(("message_stop", {"type": "message_stop"}))
    return [(name, _dumps(payload)) for name, payload in frames]


def response_events(response: dict[str, Any]) -> list[Event] | None:
    """The Responses-API event stream of a `Response`: created, in_progress, per output item its added/delta/done
    events, then completed (or incomplete). `None` for output items other than messages and function calls."""
    frames: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        frames.append({"type": kind, "sequence_number": len(frames), **fields})

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(response.get("output") or []):
        kind = item.get("type")
        if kind == "message":
            parts = item.get("content") or []
            if any(p.get("type") not in ("output_text", "refusal") for p in parts):
                return None
            emit(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            for c, part in enumerate(parts):
                where = {"item_id": item["id"], "output_index": index, "content_index": c}
                if part["type"] == "refusal":
                    emit("response.content_part.added", **where, part={**part, "refusal": ""})
                    emit("response.refusal.delta", **where, delta=part["refusal"])
                    emit("response.refusal.done", **where, refusal=part["refusal"])
                else:
                    empty = {**part, "text": "", "annotations": []}
                    emit("response.content_part.added", **where, part=empty)
                    for piece in _pieces(part["text"]):
                        emit("response.output_text.delta", **where, delta=piece, logprobs=[])
                    emit("response.output_text.done", **where, text=part["text"], logprobs=[])
                emit("response.content_part.done", **where, part=part)
        elif kind == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            where = {"item_id": item.get("id", ""), "output_index": index}
            for piece in _pieces(item.get("arguments") or ""):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit("response.function_call_arguments.done", **where, arguments=item.get("arguments") or "")
        else:
            return None
        emit("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    emit(final, response=response)
    return [(f["type"], _dumps(f)) for f in frames]


# -- SDK stream objects over recorded or teed bytes -----------------------------------------------------------


def _http_module(response_type: type) -> Any:
    """The httpx-compatible module an SDK uses (`httpx2` for current SDKs, `httpx` for older ones)."""
    return sys.modules[response_type.__module__.split(".", 1)[0]]


_takes_options: dict[type, bool] = {}


def _make_stream(template: Any, stream_cls: type, response: Any) -> Any:
    kwargs: dict[str, Any] = {"cast_to": template["cast_to"], "response": response, "client": template["client"]}
    takes = _takes_options.get(stream_cls)
    if takes is None:  # older SDKs' streams have no `options` parameter
        takes = _takes_options[stream_cls] = "options" in inspect.signature(stream_cls).parameters
    if takes:
        kwargs["options"] = template.get("options")
    return stream_cls(**kwargs)


def replay_stream(
    stream_cls: type,
    *,
    cast_to: Any,
    client: Any,
    events: list[Event] | list[list[Any]],
    url: str,
    is_async: bool,
) -> Any:
    """An SDK stream of class `stream_cls` that yields the recorded `events` (sync and async alike).

    The items are built when the stream is made, straight from the stored JSON through the SDK types'
    pydantic schemas, instead of through the SDK's SSE parser and its per-field Python `construct`: that
    parse was ~80% of a streamed hit. What the caller sees is unchanged: the same stream class (iteration,
    context manager, `.response` holding the recorded SSE body, `close()`) and items equal field for field
    to the live ones. An item that does not validate is built the SDK's own way.
    """
    http = _sdk_http_module(stream_cls)
    # A stream body (not `content=`): readable on demand, not read into the response up front.
    body = http.ByteStream(encode_sse(events))
    response = http.Response(200, headers=_SSE_HEADERS, stream=body, request=_request_for(http, url))
    stream = _make_stream({"cast_to": cast_to, "client": client, "options": None}, stream_cls, response)
    items = build_items(client, cast_to, events, response)
    # The SDK iterates `self._iterator` (an attribute, or a cached property in newer SDKs): our items replace
    # the SSE-parsing generator it would have made.
    stream._iterator = _aiter_items(items, response) if is_async else _iter_items(items, response)
    return stream


_SSE_HEADERS = {"content-type": "text/event-stream"}
_requests: dict[tuple[int, str], Any] = {}


def _request_for(http: Any, url: str) -> Any:
    """One shared request object per URL (the replayed response's `.request`): parsing a URL costs more than a hit."""
    key = (id(http), url)
    request = _requests.get(key)
    if request is None:
        request = _requests[key] = http.Request("POST", url)
    return request


def build_items(client: Any, cast_to: Any, events: list[Event] | list[list[Any]], response: Any) -> list[Any]:
    """The objects the SDK's stream would yield for `events` (`[DONE]` ends it; pings and empty events skipped)."""
    validate = _validator(cast_to)
    items = []
    for event, data in events:
        if data.startswith("[DONE]"):
            break
        if event == "ping" or not data:
            continue
        payload = _loads(data)
        try:
            items.append(validate(payload))
        except Exception:  # the SDK never validates stream items: build this one its own lenient way
            items.append(client._process_response_data(data=payload, cast_to=cast_to, response=response))
    return items


_validators: dict[Any, Callable[[Any], Any]] = {}


def _validator(cast_to: Any) -> Callable[[Any], Any]:
    """`cast_to.model_validate`; for an SDK event union, the variant's, picked by its discriminator field."""
    found = _validators.get(cast_to)
    if found is None:
        found = getattr(cast_to, "model_validate", None) or _union_validator(cast_to)
        _validators[cast_to] = found
    return found


def _union_validator(union: Any) -> Callable[[Any], Any]:
    """Validate with the variant the discriminator names, as the SDK's `construct_type` picks it.

    The SDKs mark event unions ``Annotated[Union[...], PropertyInfo(discriminator="type")]``, which pydantic
    does not read: a plain `TypeAdapter` would try every variant in turn (~50 for Responses events).
    """
    from typing import Annotated, get_args, get_origin

    field: str | None = None
    if get_origin(union) is Annotated:
        union, *meta = get_args(union)
        field = next((m.discriminator for m in meta if getattr(m, "discriminator", None)), None)
    table: dict[Any, Callable[[Any], Any]] = {}
    for variant in get_args(union):
        info = getattr(variant, "model_fields", {}).get(field) if field else None
        for value in get_args(info.annotation) if info is not None else ():
            table.setdefault(value, variant.model_validate)
    if field is None or not table:
        from pydantic import TypeAdapter

        return TypeAdapter(union).validate_python
    name = field

    def validate(payload: Any) -> Any:
        return table[payload[name]](payload)  # an unknown event type raises: the SDK builds it instead

    return validate


def _iter_items(items: list[Any], response: Any) -> Iterator[Any]:
    try:
        yield from items
    finally:
        response.close()


async def _aiter_items(items: list[Any], response: Any) -> AsyncIterator[Any]:
    try:
        for item in items:
            yield item
    finally:
        await response.aclose()


def _sdk_http_module(stream_cls: type) -> Any:
    """The httpx-compatible module the SDK's streaming module was written against."""
    module = sys.modules[stream_cls.__dict__["__init__"].__module__]  # classes are re-exported under the package name
    return getattr(module, "httpx2", None) or module.httpx


def record_stream(
    real: Any,
    provider: Provider,
    on_done: Callable[[list[Event]], None] | Callable[[list[Event]], Awaitable[None]],
) -> Any:
    """Return a stream like `real` (same class) that passes chunks through and reports the finished recording.

    `on_done(events)` is called (awaited, for an async stream) once the body ended cleanly *and* the terminal
    event was seen; it is never called for a stream the caller abandoned or that failed mid-way.
    """
    source = real.response
    http = _http_module(type(source))
    template = {"cast_to": real._cast_to, "client": real._client, "options": getattr(real, "_options", None)}
    headers = [(k, v) for k, v in source.headers.items() if k.lower() not in _HOP_HEADERS]
    is_async = inspect.iscoroutinefunction(on_done)
    body = _async_tee(http, source, provider, on_done) if is_async else _sync_tee(http, source, provider, on_done)
    response = http.Response(source.status_code, headers=headers, stream=body, request=source.request)
    return _make_stream(template, type(real), response)


_HOP_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


def _finished(provider: Provider, recorded: bytearray) -> list[Event] | None:
    events = parse_sse(bytes(recorded))
    return events if is_complete(provider, events) else None


def _sync_tee(http: Any, source: Any, provider: Provider, on_done: Callable[..., Any]) -> Any:
    class Tee(http.SyncByteStream):  # type: ignore[misc]
        def __init__(self) -> None:
            self._run = self._pump()

        def __iter__(self) -> Iterator[bytes]:
            return self._run

        def _pump(self) -> Generator[bytes, None, None]:
            recorded = bytearray()
            failed = False
            try:
                for chunk in source.iter_bytes():
                    recorded += chunk
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException:
                failed = True
                raise
            finally:
                # The SDK stops reading at `[DONE]` and closes us, so completion is judged on content.
                events = None if failed else _finished(provider, recorded)
                if events is not None:
                    on_done(events)

        def close(self) -> None:
            self._run.close()
            source.close()

    return Tee()


def _async_tee(http: Any, source: Any, provider: Provider, on_done: Callable[..., Any]) -> Any:
    class Tee(http.AsyncByteStream):  # type: ignore[misc]
        def __init__(self) -> None:
            self._run = self._pump()

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._run

        async def _pump(self) -> AsyncGenerator[bytes, None]:
            recorded = bytearray()
            failed = False
            try:
                async for chunk in source.aiter_bytes():
                    recorded += chunk
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException:
                failed = True
                raise
            finally:
                events = None if failed else _finished(provider, recorded)
                if events is not None:
                    await on_done(events)

        async def aclose(self) -> None:
            await self._run.aclose()
            await source.aclose()

    return Tee()
