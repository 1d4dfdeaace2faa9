"""Readers never need the writer's lock, a failed open is retried, and a reader sees another
process's writes after a refresh (issue 12, item 2; the end-to-end test with two real
servers is tests/test_serve_during_ingest.py)."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes import HashEmbeddings

from rag.chunking import chunk_input, chunk_paper
from rag.corpus import load_corpus
from rag.errors import IndexBusyError
from rag.index import PaperIndex
from rag.papers import make_paper
from rag.pipeline import Assistant
from rag.settings import Settings
from ui.startup import RetryingOpen


def _bundled(n: int) -> list[Any]:
    return load_corpus(None, Settings().corpus.search_url_template)[0][:n]


def test_opening_an_existing_index_while_an_ingest_holds_the_lock(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, db_dir=tmp_path / "db")
    PaperIndex(settings, HashEmbeddings(), create=True).ingest(_bundled(10))  # type: ignore[arg-type]
    holder = (tmp_path / "db" / ".ingest.lock").open("a+")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running ingest holds
    try:
        # `serve` opens with build_if_missing: for an existing index that is only reading.
        assistant = Assistant.open(settings, build_if_missing=True, embeddings=HashEmbeddings())  # type: ignore[arg-type]
        assert assistant.index.count() == 10
        assert len(assistant.index.lexical.ids) == 10
    finally:
        holder.close()


def test_a_failed_open_is_retried_not_cached() -> None:
    attempts: list[int] = []

    class Opened:
        class index:  # noqa: N801 -- shaped like Assistant.index
            class embeddings:  # noqa: N801
                @staticmethod
                def start_loading() -> None:
                    pass

            @staticmethod
            def warm_late_vectors(*, background: bool) -> None:
                pass

    def opener() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise IndexBusyError("Another ingest (pid 1) is writing to db. ...")
        return Opened()

    opening = RetryingOpen(opener)
    with pytest.raises(IndexBusyError):
        opening.result()
    assert isinstance(opening.result(), Opened)  # the next question opens again
    assert isinstance(opening.result(), Opened)
    assert len(attempts) == 2


def test_reader_sees_papers_another_writer_added_after_refresh(tmp_path: Path) -> None:
    """The reader's Chroma instance keeps the vectors it loaded: without reopening, a new
    paper's chunks are not found, and asking for its vector by id fails."""
    settings = Settings(db_dir=tmp_path / "db")
    writer = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
    writer.ingest(_bundled(20))
    reader = PaperIndex(settings, HashEmbeddings(), create=False)  # type: ignore[arg-type]
    assert len(reader.lexical.ids) == 20
    reader.dense(HashEmbeddings().embed_array(["warm up"])[0], 5)  # vectors loaded now

    # Another process writes: a fresh chromadb instance, as `paperchat ingest` has.
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(str(tmp_path / "db"), None)
    other = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
    new = make_paper(
        "Quorkalo: imaginary crystals",
        "We introduce Quorkalo for imaginary crystals. It is accurate on held-out crystals.",
        source="new.jsonl",
        search_url_template="https://x.example/?q={query}",
    )
    other.ingest([new])

    assert reader.refresh() is True
    assert len(reader.lexical.ids) == 21
    vector = HashEmbeddings().embed_array([chunk_input(new, chunk_paper(new, 120)[0])])[0]
    assert reader.dense(vector, 3)[0].paper_id == new.id
    assert set(reader.paper_vectors([new.id])) == {new.id}
    assert reader.papers([new.id])[new.id].title == new.title


def test_reads_in_flight_keep_their_store_while_a_reopen_swaps_it(tmp_path: Path) -> None:
    settings = Settings(db_dir=tmp_path / "db")
    PaperIndex(settings, HashEmbeddings(), create=True).ingest(_bundled(30))  # type: ignore[arg-type]
    reader = PaperIndex(settings, HashEmbeddings(), create=False)  # type: ignore[arg-type]
    errors: list[BaseException] = []
    stop = threading.Event()
    vector = HashEmbeddings().embed_array(["question"])[0]

    def ask() -> None:
        while not stop.is_set():
            try:
                ids = [m.paper_id for m in reader.dense(vector, 20)]
                assert len(reader.paper_vectors(ids)) == len(ids)
            except BaseException as exc:  # noqa: BLE001 -- any failure fails the test
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        reader.reopen()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert reader.count() == 30
