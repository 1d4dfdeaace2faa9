"""Opening the assistant for `paperchat serve` so the page is up within a few seconds.

Importing gradio, chromadb and the model's libraries are each a second or more of CPU, and
in one process they run one after another (the GIL). The first page needs only the corpus
summary that the last BM25 build saved beside the index, so when there is one the page is
built from it, and the index (then the model) opens in a thread once the page has loaded;
a question sent sooner waits for them. Without a saved summary (an index built by an
older version) the index opens first, and a first run, which must embed the whole corpus,
builds it up front with a progress bar.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rag.errors import PaperchatError, StorageError
from rag.settings import Settings
from rag.types import CorpusSummary


def index_missing(settings: Settings) -> bool:
    if settings.chroma_url:
        return False  # a server's emptiness is known only after connecting; open() handles it
    return not (Path(settings.resolved_db_dir) / "chroma.sqlite3").exists()


def progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """The progress on stderr that `paperchat ingest` shows (a bar, or lines in a log)."""
    from rag.progress import progress_bar

    return progress_bar("Building the index")


def _open(settings: Settings) -> Any:
    from rag.embeddings import LocalEmbeddings
    from rag.pipeline import Assistant

    embeddings = LocalEmbeddings.from_settings(settings.embedding)  # loads lazily
    update, close = progress_bar()
    try:
        return Assistant.open(
            settings, build_if_missing=True, embeddings=embeddings, on_progress=update
        )
    finally:
        close()


def start_background_work(assistant: Any) -> None:
    """Load the model, then encode the papers' token vectors for late interaction."""
    assistant.index.embeddings.start_loading()
    assistant.index.warm_late_vectors(background=True)


def open_assistant(
    settings: Settings,
) -> tuple[Any, CorpusSummary | None, Callable[[], None]]:
    """(the Assistant or a Future of it, the summary to show before it is ready, and a
    function that starts the background work; call it once the page is up, any number of
    times)."""
    from rag.lexical import saved_summary

    if index_missing(settings):
        assistant = _open(settings)  # it built the index: model loaded
        return assistant, None, lambda: assistant.index.warm_late_vectors(background=True)
    summary = saved_summary(settings)
    if summary is None:
        assistant = _open(settings)
        return assistant, None, lambda: start_background_work(assistant)

    opening = RetryingOpen(lambda: _open(settings))
    return opening, summary, opening.start


class RetryingOpen:
    """The assistant, opened in a background thread once started.

    `result()` waits for it. A failed open is not kept: the caller gets its message, and the
    next call opens again (an ingest that held the index, a Chroma server that was down,
    may be gone by then), so a chat never needs a restart to recover.
    """

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._guard = threading.Lock()
        self._future: Future[Any] | None = None

    def start(self) -> None:
        """Start opening unless an open is running or done; any number of times."""
        with self._guard:
            if self._future is not None:
                return
            future: Future[Any] = Future()
            self._future = future
        threading.Thread(target=self._run, args=(future,), name="paperchat-open", daemon=True).start()

    def _run(self, future: Future[Any]) -> None:
        try:
            assistant = self._opener()
        except PaperchatError as exc:
            print(f"paperchat: {exc}", file=sys.stderr, flush=True)
            future.set_exception(exc)
            return
        except Exception as exc:  # the page shows this message instead of a trace
            traceback.print_exc()
            future.set_exception(
                StorageError(
                    f"Cannot open the index ({type(exc).__name__}: {exc}). Check the server "
                    "log, then rebuild it with `paperchat ingest --rebuild` if it is damaged."
                )
            )
            return
        future.set_result(assistant)
        start_background_work(assistant)

    def result(self) -> Any:
        self.start()
        with self._guard:
            future = self._future
        assert future is not None
        try:
            return future.result()
        except PaperchatError:
            with self._guard:
                if self._future is future:
                    self._future = None  # the next question tries again
            raise
