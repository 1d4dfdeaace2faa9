"""Test doubles shared by the storage tests (the layer under test is storage, not the model)."""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import Future

import numpy as np

from rag.word_pull import QuestionVectors


class HashEmbeddings:
    """Deterministic stand-in for the model where only storage is under test."""

    backend = "hash"

    def embed_array(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
            vec = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
            rows.append(vec / np.linalg.norm(vec))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), 384)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]

    def token_vectors(self, texts: list[str]) -> list[np.ndarray]:
        """One "token" per word, each the hash vector of the word."""
        return [self.embed_array(text.split() or [""]) for text in texts]

    def query_vectors(self, text: str) -> QuestionVectors:
        """No vector without each word: the fake pools no tokens (rag.word_pull)."""
        return QuestionVectors(self.embed_array([text])[0], self.token_vectors([text])[0], {})

    def embed_later(self, texts: list[str]) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        future.set_result(self.embed_array(texts))
        return future

    def worker_processes(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()
