"""Opening the assistant for `paperchat serve` so the page is up within a few seconds.

Importing torch and sentence-transformers costs about 4 CPU-seconds, more than the page
itself (gradio about 2). Everything the page shows first (the intro, examples) needs only
the index, so with an index already built the model loads in a thread once the page is
served, and the first question waits for it if it comes sooner. A first run, which must
embed the whole corpus, loads the model up front and shows a progress bar instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.settings import Settings


def index_missing(settings: Settings) -> bool:
    if settings.chroma_url:
        return False  # a server's emptiness is known only after connecting; open() handles it
    return not (Path(settings.resolved_db_dir) / "chroma.sqlite3").exists()


def progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """The tqdm bar on stderr that `paperchat ingest` shows."""
    from rag.progress import progress_bar

    return progress_bar("Building the index")


def open_assistant(settings: Settings) -> tuple[Any, Callable[[], None] | None]:
    """(Assistant, a function that starts loading the model once the page is up, or None
    when a first run already loaded it to build the index)."""
    from rag.embeddings import LocalEmbeddings
    from rag.pipeline import Assistant

    embeddings = LocalEmbeddings.from_settings(settings.embedding)  # loads lazily
    start_model = None if index_missing(settings) else embeddings.start_loading
    update, close = progress_bar()
    try:
        assistant = Assistant.open(
            settings, build_if_missing=True, embeddings=embeddings, on_progress=update
        )
    finally:
        close()
    return assistant, start_model
