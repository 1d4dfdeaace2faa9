"""Derived data kept in step with the store: BM25, the exact-search copy of the chunk vectors,
and the generation stamp that says whether they are current.

The BM25 index is derived data: a pickle beside the local index (or, with a Chroma server,
in DATA_DIR/cache/<server+collection>/ of each app server), tagged with the "generation"
stamp kept in the papers collection's metadata. Only an ingest changes the stamp: to
`writing-...` before its first write, to a fresh value after its last. A reader whose
BM25 file carries another stamp or another paper count rebuilds it from Chroma, so the
file can never silently disagree with the vectors. The exact-search copy
(rag.chunk_vectors) carries the same stamp and is used only with the BM25 index of the
same generation.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from rag.chunk_vectors import ChunkVectors, chunk_vectors_path
from rag.lexical import LexicalIndex, lexical_path
from rag.settings import Settings
from rag.store import ChromaStore

# Stamp of an ingest in progress (or one that died): readers keep what they have meanwhile.
WRITING = "writing-"
# How often a long-running reader asks the store whether the index changed.
DEFAULT_REFRESH_S = 30.0


def new_stamp() -> str:
    return f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"


class DerivedData:
    """BM25 and the exact-search copy of one store, loaded once and refreshed when another
    process's ingest changes the store's generation."""

    def __init__(self, settings: Settings, store: ChromaStore) -> None:
        self.settings = settings
        self.store = store
        self._lexical: LexicalIndex | None = None
        self._lexical_guard = threading.Lock()
        self._checked_at = time.monotonic()
        self._lexical_path = lexical_path(settings)
        self._exact: ChunkVectors | None = None
        # The generation found too large for a copy: deciding that counts every chunk (36 ms
        # at 434k chunks), which must not happen again on every question.
        self._no_exact: str | None = None
        self._exact_guard = threading.Lock()
        self._exact_path = chunk_vectors_path(settings)

    # ---- the generation stamp --------------------------------------------------------

    def generation(self) -> str:
        return str(self.store.metadata().get("generation", ""))

    def set_generation(self, generation: str) -> None:
        self.store.update_metadata(generation=generation)

    def _agrees(self, lexical: LexicalIndex | None, generation: str) -> bool:
        return (
            lexical is not None
            and lexical.generation == generation
            and len(lexical.ids) == self.store.paper_count()
        )

    def _usable(self, lexical: LexicalIndex) -> bool:
        """A saved BM25 file a reader may start from: the store's current one, or, while an
        ingest writes, the last finished one (every paper it names is still stored, and
        the graphs being written are not read: see rag.chunk_vectors)."""
        generation = self.generation()
        if generation.startswith(WRITING) and not lexical.generation.startswith(WRITING):
            return True
        return self._agrees(lexical, generation)

    def current(self) -> bool:
        """Whether the saved BM25 file agrees with the store."""
        return self._agrees(LexicalIndex.load(self._lexical_path), self.generation())

    # ---- BM25 ------------------------------------------------------------------------

    def rebuild(self, *, stamp: bool = False) -> LexicalIndex:
        """BM25 over every stored paper, saved atomically.

        Only a writer stamps a new generation; a reader tags its copy with the stamp it
        found, so several app servers rebuilding never make each other rebuild again.
        """
        generation = new_stamp() if stamp else self.generation()
        lexical = LexicalIndex.from_papers(self.store.all_papers(), generation)
        try:
            lexical.save(self._lexical_path)
            if stamp:
                exact = self._build_exact(generation)
                if exact is not None:
                    exact.save(self._exact_path)
                else:
                    self._exact_path.unlink(missing_ok=True)
        except OSError:
            if stamp:
                raise
            # A reader on a read-only index still answers; it rebuilds again next start.
        # Ours before the stamp is: a refresh in another thread then sees nothing new.
        self._lexical = lexical
        if stamp:
            self.set_generation(generation)
        return lexical

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index, loaded once; rebuilt when it disagrees with Chroma."""
        current = self._lexical
        if current is not None:
            return current
        with self._lexical_guard:
            lexical = self._lexical
            if lexical is None:
                lexical = LexicalIndex.load(self._lexical_path)
                if lexical is None or not self._usable(lexical):
                    lexical = self.rebuild()
                self._lexical = lexical
            return lexical

    def refresh(self) -> bool:
        """Reload BM25 if another process changed the index; True when it did.

        Costs one metadata read when nothing changed. While an ingest is running (or after
        one died) the stamp reads `writing-...`: a reader keeps the BM25 it has until the
        ingest finishes, rather than rebuilding after every batch.
        """
        self._checked_at = time.monotonic()
        generation = self.generation()
        current = self._lexical
        if current is not None and (
            current.generation == generation or generation.startswith(WRITING)
        ):
            return False
        with self._lexical_guard:
            if self._lexical is not current:
                return True  # another thread refreshed meanwhile
            if current is not None:
                # Another process wrote: the vectors this process loaded lack its papers.
                self.store.reopen()
            saved = LexicalIndex.load(self._lexical_path)
            self._lexical = saved if self._agrees(saved, generation) else self.rebuild()
        return True

    def maybe_refresh(self, max_age_s: float = DEFAULT_REFRESH_S) -> bool:
        """`refresh()` at most once every `max_age_s` seconds; for long-running servers.

        Call it before each question: between checks it costs a clock read.
        """
        if time.monotonic() - self._checked_at < max_age_s:
            return False
        return self.refresh()

    # ---- the exact-search copy -------------------------------------------------------

    def _build_exact(self, generation: str) -> ChunkVectors | None:
        """Every chunk vector, read by id (not by graph search); None above the size where
        an exact search is cheap, or for an index whose chunks do not record their span."""
        rows = self.store.chunk_vectors(self.settings.index.exact_search_max_chunks)
        return None if rows is None else ChunkVectors.build(generation, rows)

    def exact_vectors(self) -> ChunkVectors | None:
        """The exact-search copy of the BM25 index's generation, or None (graph search)."""
        generation = self.lexical.generation
        current = self._exact
        if current is not None and current.generation == generation:
            return current
        if self._no_exact == generation:
            return None
        with self._exact_guard:
            if self._exact is not None and self._exact.generation == generation:
                return self._exact
            limit = self.settings.index.exact_search_max_chunks
            exact = ChunkVectors.load(self._exact_path)
            if exact is not None and len(exact.vectors) > limit:
                exact = None  # a copy saved under a larger limit
            elif exact is None or exact.generation != generation:
                # An index from before this file, or one being written: built from the
                # store, and saved only when it is the store's current generation.
                exact = None if generation.startswith(WRITING) else self._build_exact(generation)
                if exact is not None and generation == self.generation():
                    with contextlib.suppress(OSError):  # a read-only index still answers
                        exact.save(self._exact_path)
            self._exact = exact
            if exact is None and not generation.startswith(WRITING):
                self._no_exact = generation
            return exact
