"""OpenAIEmbedder through the real openai SDK against a local fake embeddings endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from agentcache.semantic.embedders import Embedder, OpenAIEmbedder


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        dims = body.get("dimensions", 4)
        # Reversed order on purpose: the SDK's `index` field, not list order, defines the mapping.
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t))] + [float(i)] * (dims - 1)}
            for i, t in reversed(list(enumerate(body["input"])))
        ]
        payload = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    """A fake OpenAI embeddings server on a free local port."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def base_url(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def test_sync_embed_orders_by_index(server: ThreadingHTTPServer) -> None:
    """embed sends one request with every text and returns vectors in input order."""
    client = openai.OpenAI(api_key="test", base_url=base_url(server), max_retries=0)
    emb = OpenAIEmbedder(client, model="text-embedding-3-small", dimensions=4)
    vecs = emb.embed(["a", "bbb", "cc"])
    assert [v[0] for v in vecs] == [1.0, 3.0, 2.0]
    (request,) = server.requests  # type: ignore[attr-defined]
    assert request["input"] == ["a", "bbb", "cc"]
    assert request["model"] == "text-embedding-3-small"
    assert request["dimensions"] == 4
    assert isinstance(emb, Embedder)
    assert emb.dim == 4
    client.close()


async def test_async_embed_uses_async_client(server: ThreadingHTTPServer) -> None:
    """aembed with an AsyncOpenAI client returns the same ordered vectors."""
    client = openai.AsyncOpenAI(api_key="test", base_url=base_url(server), max_retries=0)
    emb = OpenAIEmbedder(client, model="text-embedding-3-small", dimensions=4)
    vecs = await emb.aembed(["xy", "z"])
    assert [v[0] for v in vecs] == [2.0, 1.0]
    assert await emb.aembed([]) == []
    await client.close()


async def test_sync_client_serves_async_face(server: ThreadingHTTPServer) -> None:
    """With only a sync client, aembed still works (in a worker thread)."""
    client = openai.OpenAI(api_key="test", base_url=base_url(server), max_retries=0)
    emb = OpenAIEmbedder(client, model="text-embedding-3-small", dimensions=4)
    assert [v[0] for v in await emb.aembed(["abcd"])] == [4.0]
    client.close()


def test_default_dimension_and_unknown_model() -> None:
    """Known models get their default dimension; unknown ones must pass dimensions=."""
    assert OpenAIEmbedder(object(), model="text-embedding-3-large").dim == 3072
    with pytest.raises(ValueError, match="dimensions"):
        OpenAIEmbedder(object(), model="my-model")
