"""Opening the assistant for `paperchat serve` so the page is up within a few seconds.

Importing torch and sentence-transformers costs about 4 CPU-seconds, more than the page
itself (gradio about 2). Everything the page shows first (the intro, examples) needs only
the index, so with an index already built the model loads in a thread once the page is
served, and the first question waits for it if it comes sooner. A first run, which must
embed the whole corpus, loads the model up front and shows a progress bar instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

import numpy as np

from rag.settings import Settings


class BackgroundEmbeddings:
    """Stands in for LocalEmbeddings: the model loads on start() (or first use) in a thread,
    and every embedding call waits until it is there."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._future: Future[Any] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._future is not None:
                return
            future: Future[Any] = Future()
            self._future = future

        def load() -> None:
            try:
                future.set_result(self._factory())
            except BaseException as exc:  # re-raised in whichever request waits for it
                future.set_exception(exc)

        threading.Thread(target=load, name="paperchat-model", daemon=True).start()

    @property
    def ready(self) -> bool:
        return self._future is not None and self._future.done()

    def model(self) -> Any:
        self.start()
        assert self._future is not None
        return self._future.result()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        return cast(np.ndarray, self.model().embed_array(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return cast(list[list[float]], self.model().embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return cast(list[float], self.model().embed_query(text))


def local_embeddings(settings: Settings) -> Any:
    from rag.embeddings import LocalEmbeddings

    return LocalEmbeddings(
        backend=settings.embedding.backend,
        threads=settings.embedding.threads,
        batch_size=settings.embedding.batch_size,
    )


def index_missing(settings: Settings) -> bool:
    if settings.chroma_url:
        return False  # a server's emptiness is known only after connecting; open() handles it
    return not (Path(settings.resolved_db_dir) / "chroma.sqlite3").exists()


def progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """The tqdm bar on stderr that `paperchat ingest` shows."""
    from rag.progress import progress_bar

    return progress_bar("Building the index")


def open_assistant(settings: Settings) -> tuple[Any, BackgroundEmbeddings | None]:
    """(Assistant, the background model to start once the page is up, or None)."""
    from rag.pipeline import Assistant

    embeddings: BackgroundEmbeddings | None = None
    if not index_missing(settings):
        embeddings = BackgroundEmbeddings(lambda: local_embeddings(settings))
    update, close = progress_bar()
    try:
        assistant = Assistant.open(
            settings,
            build_if_missing=True,
            embeddings=cast(Any, embeddings) if embeddings else None,
            on_progress=update,
        )
    finally:
        close()
    return assistant, embeddings
