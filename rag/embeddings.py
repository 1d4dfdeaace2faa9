"""The bundled all-MiniLM-L6-v2 weights as a LangChain Embeddings, loaded with no network."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from rag import model_files
from rag.errors import EmbeddingError
from rag.late_interaction import content_rows
from rag.settings import EmbeddingSettings
from rag.word_pull import QuestionVectors, without_each_word

if TYPE_CHECKING:  # imported for real only by an ingest that uses worker processes
    from rag.encoder_processes import EncoderProcesses

# Re-exported for callers of the LangChain face.
MAX_MODEL_TOKENS = model_files.MAX_MODEL_TOKENS
bundled_model_path = model_files.bundled_model_path
count_tokens = model_files.count_tokens


class TorchEncoder:
    """The reference path: sentence-transformers on torch."""

    def __init__(self, threads: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "the torch backend needs torch and sentence-transformers, which are not "
                "installed here: `pip install torch sentence-transformers`, or use the "
                "default PAPERCHAT_EMBEDDING_BACKEND=onnx-fp32 (the same vectors)."
            ) from exc

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._threads = torch.get_num_threads()
        self._model = SentenceTransformer(str(bundled_model_path()), device="cpu")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # One short question is faster on one thread: splitting it across cores costs more in
        # synchronisation than it saves, and far more when other requests load the CPU.
        self._torch.set_num_threads(1 if len(texts) == 1 else self._threads)
        vectors = self._model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_tokens(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        """Each text's content-token vectors (rag.late_interaction.content_rows)."""
        hidden = self._model.encode(
            texts,
            batch_size=batch_size,
            output_value="token_embeddings",
            convert_to_numpy=False,
            show_progress_bar=False,
        )
        limit = self._model.max_seq_length
        ids = [self._model.tokenizer(t, truncation=True, max_length=limit)["input_ids"] for t in texts]
        return [content_rows(i, rows.numpy()) for i, rows in zip(ids, hidden, strict=True)]

    def encode_with_tokens(self, text: str) -> QuestionVectors:
        hidden = self._model.encode(
            [text], batch_size=1, output_value="token_embeddings", convert_to_numpy=False,
            show_progress_bar=False,
        )[0].numpy()
        limit = self._model.max_seq_length
        encoded = self._model.tokenizer(
            text, truncation=True, max_length=limit, return_offsets_mapping=True
        )
        offsets = [tuple(span) for span in encoded["offset_mapping"]]
        # The model's pooling (mean over the tokens, unit length) from the same pass.
        pooled = hidden.mean(axis=0)
        return QuestionVectors(
            (pooled / np.linalg.norm(pooled)).astype(np.float32),
            content_rows(encoded["input_ids"], hidden),
            without_each_word(text, offsets, hidden),
        )


def _make_encoder(backend: str, threads: int, cache_dir: Path | None) -> Any:
    if backend in ("onnx", "onnx-fp32"):
        from rag.onnx_encoder import OnnxEncoder

        return OnnxEncoder(threads=threads, cache_dir=cache_dir, quantize=backend == "onnx")
    return TorchEncoder(threads=threads)


class LocalEmbeddings(Embeddings):
    """Normalised 384-d vectors from the bundled model; thread-safe for concurrent chat users.

    The model loads on first use, or in a background thread after `start_loading()`: opening
    an index, taking its write lock or serving the first page need no model, and loading it
    costs seconds of CPU.
    """

    def __init__(
        self,
        backend: str = "onnx-fp32",
        threads: int = 0,
        batch_size: int = 32,
        encoder_factory: Callable[[], Any] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self._threads = threads
        self._cache_dir = cache_dir
        self._custom_encoder = encoder_factory is not None
        self._factory = encoder_factory or (lambda: _make_encoder(backend, threads, cache_dir))
        self._processes: EncoderProcesses | None = None  # inside worker_processes()
        self._encoder: Future[Any] | None = None
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> LocalEmbeddings:
        return cls(
            backend=settings.backend,
            threads=settings.threads,
            batch_size=settings.batch_size,
            cache_dir=settings.cache_dir,
        )

    def start_loading(self) -> None:
        """Load the model in a background thread (no-op once started)."""
        self._future(background=True)

    @property
    def ready(self) -> bool:
        return self._encoder is not None and self._encoder.done()

    def _future(self, background: bool) -> Future[Any]:
        with self._start_lock:
            if self._encoder is not None:
                return self._encoder
            future: Future[Any] = Future()
            self._encoder = future

        def load() -> None:
            try:
                future.set_result(self._factory())
            except BaseException as exc:  # re-raised in whichever call waits for the model
                future.set_exception(exc)

        if background:
            threading.Thread(target=load, name="paperchat-model", daemon=True).start()
        else:
            load()
        return future

    def embed_array(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encoder = self._future(background=False).result()
        with self._lock:
            return encoder.encode(texts, self.batch_size)  # type: ignore[no-any-return]

    def token_vectors(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's content-token vectors, for late interaction (rag.late_interaction)."""
        if not texts:
            return []
        encoder = self._future(background=False).result()
        with self._lock:
            return encoder.encode_tokens(texts, self.batch_size)  # type: ignore[no-any-return]

    def query_vectors(self, text: str) -> QuestionVectors:
        """A question's vector (as embed_query), its content-token vectors (as
        token_vectors) and its vector without each word (rag.word_pull), from one pass of
        the model."""
        encoder = self._future(background=False).result()
        with self._lock:
            return encoder.encode_with_tokens(text)  # type: ignore[no-any-return]

    def embed_later(self, texts: list[str]) -> Future[np.ndarray]:
        """The vectors as a Future: computed by a worker inside worker_processes(), else now."""
        if self._processes is not None:
            return self._processes.submit(texts)
        future: Future[np.ndarray] = Future()
        future.set_result(self.embed_array(texts))
        return future

    @contextlib.contextmanager
    def worker_processes(self) -> Iterator[None]:
        """Within this block embed_later runs in one worker process per core (ingest).

        ONNX backends only: torch stays the plain in-process reference path, and an injected
        encoder (tests) cannot be sent to another process.
        """
        if self._custom_encoder or self.backend == "torch" or self._processes is not None:
            yield
            return
        from rag.encoder_processes import EncoderProcesses
        from rag.onnx_encoder import ensure_model

        # Built here, once: workers starting together must not all export the model.
        ensure_model(self._cache_dir, self.backend == "onnx")
        workers = self._threads or os.cpu_count() or 1
        processes = EncoderProcesses(self.backend, self._cache_dir, workers, self.batch_size)
        self._processes = processes
        finished = False
        try:
            yield
            finished = True
        except BrokenProcessPool as exc:
            raise EmbeddingError(
                "an embedding worker process died (out of memory, or killed?). Re-run the "
                "same command to finish the ingest; PAPERCHAT_EMBEDDING_THREADS=1 runs one "
                "worker and needs less memory."
            ) from exc
        finally:
            self._processes = None
            # After an error or Ctrl-C, queued work is dropped rather than waited for.
            processes.close(wait=finished)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]
