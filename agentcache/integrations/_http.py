"""What an HTTP request means to the cache: its normalised form, its credential partition, and scrubbing.

Pure functions over plain values (method, URL path and query, headers, body bytes), shared by the caching
transport and the pytest cassettes. Nothing here imports `httpx`/`httpx2`.

* `describe(...)` turns a request into a JSON-able mapping: method, path, sorted query, the headers that
  change the answer (API versions and betas) and the body as canonical JSON without transport-only fields
  (``user``, ``metadata``, ``store``, ...). Non-JSON bodies are represented by their SHA-256.
* `partition(headers, query)` is a short hash of the credential (``Authorization``, ``x-api-key``, ``api-key``,
  ``x-goog-api-key`` or a ``key=`` query parameter): two keys never share entries and no secret is kept.
* `scrub(value)` replaces secrets in JSON-able values (secret-named fields, ``sk-...``/``Bearer`` tokens and the
  values of API-key environment variables) so cassettes can be committed.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agentcache.decorators.response import TRANSPORT_FIELDS

__all__ = [
    "BODY_IGNORED",
    "DEFAULT_PATHS",
    "KEY_HEADERS",
    "REPLAYED_HEADERS",
    "describe",
    "is_cached_path",
    "partition",
    "scrub",
]

DEFAULT_PATHS: tuple[str, ...] = (
    "*/chat/completions",
    "*/completions",
    "*/responses",
    "*/embeddings",
    "*/messages",
    "*/messages/count_tokens",
    "*/moderations",
    "*/rerank",
    "*:generateContent",
    "*:streamGenerateContent",
    "*:embedContent",
    "*:batchEmbedContents",
    "*:countTokens",
)
"""Paths (fnmatch patterns) answered from the cache by default: the model-answering endpoints of the OpenAI,
Anthropic and Gemini APIs (and the many APIs that copy them). Anything else (file uploads, batches, polling a
stored response) goes to the network untouched: creating a resource twice must create it twice."""

BODY_IGNORED = TRANSPORT_FIELDS | {"prompt_cache_retention"}
"""Top-level JSON body fields that never change the answer (billing, tracing, provider-cache routing)."""

KEY_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
"""Request headers that select an API version or beta behaviour, so are part of the key."""

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
_CREDENTIAL_QUERY = ("key", "api_key", "api-key")

REPLAYED_HEADERS = frozenset(
    {"content-type", "x-request-id", "request-id", "openai-model", "openai-version", "anthropic-organization-id"}
)
"""Response headers kept with an entry and replayed; the rest (dates, cookies, rate limits, hop-by-hop) is
dropped, which also keeps cassettes free of per-run noise."""


def is_cached_path(method: str, path: str, patterns: Sequence[str]) -> bool:
    """Whether a request is one the cache answers: a POST whose path matches one of `patterns`."""
    return method == "POST" and _matcher(tuple(patterns))(path) is not None


@functools.lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], Any]:
    """One compiled regex for a set of fnmatch patterns (checked on every request)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)").match


def _header(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def describe(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes,
) -> dict[str, Any]:
    """The cache's view of a request: a JSON-able mapping that is equal for requests with the same answer.

    Credentials (headers and ``key=`` query parameters) are never part of it; see `partition`.
    """
    pairs = list(headers)
    out: dict[str, Any] = {"method": method, "path": path}
    params = sorted((k, v) for k, v in query if k not in _CREDENTIAL_QUERY)
    if params:
        out["query"] = [list(p) for p in params]
    selected = {name: ",".join(_header(pairs, name)) for name in KEY_HEADERS if _header(pairs, name)}
    if selected:
        out["headers"] = selected
    if body:
        out["body"] = _body(body)
    return out


def _body(body: bytes) -> Any:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return {"$sha256": hashlib.sha256(body).hexdigest()}
    if isinstance(parsed, dict):
        return {k: v for k, v in parsed.items() if k not in BODY_IGNORED}
    return parsed


def partition(headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]] = ()) -> str:
    """A 16-hex-digit hash of the request's credential (``""`` when it carries none).

    Requests made with different API keys get different partitions, so they never share entries; only this
    hash is kept, never the key.
    """
    pairs = list(headers)
    found = [f"{name}={v}" for name in _CREDENTIAL_HEADERS for v in _header(pairs, name)]
    found += [f"?{k}={v}" for k, v in query if k in _CREDENTIAL_QUERY]
    if not found:
        return ""
    return hashlib.sha256("\n".join(found).encode()).hexdigest()[:16]


# -- scrubbing --------------------------------------------------------------------------------------------

SCRUBBED = "<scrubbed>"
_SECRET_NAMES = re.compile(r"(?i)(api[-_]?key|secret|password|passwd|token|authorization|credential|cookie)")
_SECRET_VALUES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._~+/\-]{8,}=*|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,})"
)
_SECRET_ENV = re.compile(r"(?i)(api[-_]?key|secret|token|password)")


def env_secrets() -> list[str]:
    return sorted(
        (v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8),
        key=len,
        reverse=True,
    )


def scrub(value: Any, *, names: bool = True, secrets: Sequence[str] | None = None) -> Any:
    """`value` (JSON-able) with secrets replaced by ``"<scrubbed>"``.

    Replaced: token-shaped substrings (``sk-...``, ``Bearer ...``, AWS/Google/GitHub/Slack keys), any occurrence
    of the value of an environment variable named like a key or secret (or of `secrets`, when given) and, with
    `names` (for requests, not for model output, where ``token`` is a logprob field), the string values of
    fields named like a secret (``api_key``, ``password``, ``token``, ...).
    """
    known = env_secrets() if secrets is None else list(secrets)
    return _scrub(value, known, names)


def _scrub(value: Any, secrets: list[str], names: bool) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, SCRUBBED)
        return _SECRET_VALUES.sub(SCRUBBED, value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            secret_name = names and isinstance(k, str) and _SECRET_NAMES.search(k)
            out[k] = SCRUBBED if secret_name and isinstance(v, str) and v else _scrub(v, secrets, names)
        return out
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets, names) for v in value]
    return value


# -- server-sent events ---------------------------------------------------------------------------------------

_TERMINAL = frozenset({"message_stop", "response.completed", "response.incomplete"})
_FAILED = frozenset({"error", "response.failed"})


def sse_complete(text: str, *, exhausted: bool) -> bool:
    """Whether a recorded SSE body is a whole, successful answer that may be stored.

    Never when an ``error`` / ``response.failed`` event appears (providers report overload mid-stream with a
    200 status). Otherwise when the body was read to its end (`exhausted`) or, for a reader that stopped early,
    when a terminal event was seen (``[DONE]``, ``message_stop``, ``response.completed``): the SDKs stop at it.
    """
    from agentcache.integrations._streams import parse_sse

    terminal = False
    for event, data in parse_sse(text.encode()):
        kind = event
        if data.startswith("{"):
            try:
                payload = json.loads(data)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("type"), str):
                kind = kind or payload["type"]
                if payload["type"] in _FAILED:
                    return False
        if kind in _FAILED:
            return False
        terminal = terminal or kind in _TERMINAL or data.strip() == "[DONE]"
    return exhausted or terminal
