"""Ingest orchestration: the writer lock, then papers chunked, embedded and stored in groups
with progress, between the generation stamps that tell readers an ingest is under way.

Safe to kill at any point: writes are upserts keyed by paper and chunk ids, and a paper
counts as stored only once its record (written after its chunks, see rag.store) carries the
current content hash, so re-running the same command finishes the job. Papers stored under
an older id scheme are re-keyed first (`Ingester.migrate_ids`).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import chunk_input, chunk_paper
from rag.derived import WRITING, DerivedData, new_stamp
from rag.embeddings import LocalEmbeddings
from rag.errors import IndexBusyError, PaperchatError, StorageError
from rag.papers import ID_SCHEME, content_hash, paper_id
from rag.settings import Settings
from rag.store import ChromaStore, storage_errors
from rag.types import Chunk, IngestReport, Paper


class WriterLock:
    """One writer per local directory: Chroma's local mode is not multi-process safe.

    Non-blocking: a second ingest stops at once with IndexBusyError instead of waiting
    behind a run that may take an hour. Re-entrant within one holder. A Chroma server
    serialises writes itself, so server mode (`db` None) takes no lock here.
    """

    def __init__(self, db: Path | None) -> None:
        self._db = db
        self._path = db / ".ingest.lock" if db is not None else None
        self._handle: Any = None
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        if self._depth == 0:
            self._handle = self._acquire(self._path)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self._handle, fcntl.LOCK_UN)
                self._handle.close()
                self._handle = None

    def _acquire(self, path: Path) -> Any:
        try:
            handle = path.open("a+")
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the index directory {path.parent} ({exc.strerror}). Choose "
                "another with --db DIR or PAPERCHAT_DB_DIR."
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise IndexBusyError(
                f"Another ingest ({holder}) is writing to {self._db}. Wait for it to "
                "finish, then run this command again; nothing was changed."
            ) from exc
        # The lock is the flock, not the file: a holder killed with -9 releases it.
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        return handle


@dataclass
class _Embedding:
    """A write group whose vectors are on their way, one Future per embedding step."""

    papers: list[Paper]
    chunks: list[list[Chunk]]
    steps: list[Future[np.ndarray]]

    def vectors(self, on_progress: Callable[[int], None] | None) -> np.ndarray:
        # A paper counts once its last chunk is embedded: it is stored just after.
        ends = np.cumsum([len(cs) for cs in self.chunks])
        parts, reported, done = [], 0, 0
        for step in self.steps:
            parts.append(step.result())
            done += len(parts[-1])
            complete = int(np.searchsorted(ends, done, side="right"))
            if on_progress and complete > reported:
                on_progress(complete - reported)
                reported = complete
        return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


class Ingester:
    """Writes papers into one store under its writer lock, and refreshes what derives from it."""

    def __init__(
        self,
        settings: Settings,
        embeddings: LocalEmbeddings,
        store: ChromaStore,
        derived: DerivedData,
        lock: WriterLock,
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.store = store
        self.derived = derived
        self.lock = lock

    def run(
        self, papers: Sequence[Paper], on_progress: Callable[[int], None] | None = None
    ) -> IngestReport:
        """Add new papers, replace changed ones, skip unchanged; then refresh BM25.

        Safe to kill at any point: batches are upserts keyed by paper and chunk ids, and a
        paper counts as stored only once its record (written after its chunks) carries the
        current content hash, so re-running the same command finishes the job.
        """
        with storage_errors(self.store.location), self.lock.held():
            self.store.replay_chunks()
            report = IngestReport()
            report.migrated = self.migrate_ids()
            stored = self.store.stored_hashes([p.id for p in papers])
            todo: list[Paper] = []
            for paper in papers:
                old = stored.get(paper.id)
                if old == content_hash(paper):
                    report.unchanged += 1
                    continue
                report.updated += old is not None
                report.new += old is None
                todo.append(paper)
            if on_progress:
                # Always, even 0: the first call starts the bar, its rate counts real work only.
                on_progress(report.unchanged)
            if todo:
                self.derived.set_generation(f"{WRITING}{new_stamp()}")
                self.store.apply_ef_search()
            self._embed_and_store(todo, set(stored), on_progress)
            if (
                todo
                or report.migrated
                or self.derived.generation().startswith(WRITING)
                or not self.derived.current()
            ):
                self.derived.rebuild(stamp=True)
            report.papers = self.store.paper_count()
            report.chunks = self.store.chunk_count()
            return report

    # ---- id scheme -------------------------------------------------------------------

    def id_scheme(self) -> int:
        """The paper-id scheme of the stored papers: 1 for indexes from before
        rag.corpus.ID_SCHEME was recorded (or an empty one never ingested into)."""
        try:
            return int(self.store.metadata().get("id_scheme", 1))
        except (TypeError, ValueError):
            return 1

    def migrate_ids(self) -> int:
        """Re-key papers stored under an older id scheme; the number re-keyed.

        Vectors and records are moved, not re-embedded. Each paper's new chunks and record
        are written before its old ones are deleted, and the scheme is recorded only at the
        end, so a killed migration simply runs again. Papers whose old ids collided (titles
        without ASCII letters) were already one record: it keeps its title, and re-ingesting
        the files adds the others.
        """
        if self.id_scheme() >= ID_SCHEME:
            return 0
        with self.lock.held():
            self.store.replay_chunks()
            moves: dict[str, list[tuple[str, int]]] = {}
            for pid, title, length in self.store.titles():
                try:
                    new = paper_id(title)
                except PaperchatError:
                    continue  # no usable title: left as it is, still answerable
                if new != pid:
                    moves.setdefault(new, []).append((pid, length))
            if moves:
                self.derived.set_generation(f"{WRITING}{new_stamp()}")
            for new, olds in moves.items():
                # Two old records with one new id (e.g. "ﬁnd" and "find"): keep the longer.
                keep = max(olds, key=lambda old: old[1])[0]
                self.store.move_paper(keep, new, [old for old, _ in olds])
            self.store.update_metadata(id_scheme=ID_SCHEME)
            return sum(len(olds) for olds in moves.values())

    # ---- embedding and storing -------------------------------------------------------

    def _batches(self, papers: Sequence[Paper]) -> Iterator[tuple[list[Paper], list[list[Chunk]]]]:
        """Whole papers, grouped until a group holds index.write_chunks chunks."""
        limit = self.settings.index.write_chunks
        group: list[Paper] = []
        chunks: list[list[Chunk]] = []
        size = 0
        for paper in papers:
            group.append(paper)
            chunks.append(chunk_paper(paper, self.settings.index.chunk_tokens))
            size += len(chunks[-1])
            if size >= limit:
                yield group, chunks
                group, chunks, size = [], [], 0
        if group:
            yield group, chunks

    def _embed_and_store(
        self,
        papers: Sequence[Paper],
        stored: set[str],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Write group k while the encoder already embeds group k+1.

        Writes stay in the main thread, in order, one at a time; with more than one group
        the vectors come from worker processes (rag.encoder_processes says why not threads).
        An interruption loses only groups not yet written, whose papers have no record yet.
        """
        groups = self._batches(papers)
        ahead = [group for group in (next(groups, None), next(groups, None)) if group]
        parallel = (
            self.embeddings.worker_processes() if len(ahead) > 1 else contextlib.nullcontext()
        )
        with parallel:
            queued: collections.deque[_Embedding] = collections.deque()
            for group, chunks in itertools.chain(ahead, groups):
                queued.append(self._embed(group, chunks))
                if len(queued) > 1:
                    self._store(queued.popleft(), stored, on_progress)
            while queued:
                self._store(queued.popleft(), stored, on_progress)

    def _embed(self, papers: list[Paper], chunks: list[list[Chunk]]) -> _Embedding:
        inputs = [chunk_input(p, c) for p, cs in zip(papers, chunks, strict=True) for c in cs]
        # In steps of index.batch_size chunks, so progress moves while a group is embedded.
        step = self.settings.index.batch_size
        steps = [
            self.embeddings.embed_later(inputs[start : start + step])
            for start in range(0, len(inputs), step)
        ]
        return _Embedding(papers, chunks, steps)

    def _store(
        self,
        embedding: _Embedding,
        stored: set[str],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Chunks first, then the paper records: a record means its chunks are all stored."""
        papers, chunks = embedding.papers, embedding.chunks
        self.store.check_room(sum(len(cs) for cs in chunks))
        vectors = embedding.vectors(on_progress)
        self.store.write(papers, chunks, vectors, stored)
