"""The stored index as the pipeline and the retriever see it: `PaperIndex`.

A small face over the modules that do the work, one job each:

- rag.store    Chroma: opening (locally or over HTTP), reading, writing, naming failures
- rag.ingest   the writer lock; papers chunked, embedded and stored in groups, with progress
- rag.derived  BM25 and the exact-search copy of the chunk vectors, kept current by stamps
- rag.chunking sentence-aligned chunks and what the model embeds of each
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.chunk_vectors import ChunkVectors
from rag.chunking import ChunkRef, abstract_sentences
from rag.derived import DEFAULT_REFRESH_S, DerivedData
from rag.embeddings import LocalEmbeddings
from rag.ingest import Ingester, WriterLock
from rag.late_interaction import TokenVectorCache, late_score
from rag.lexical import LexicalIndex
from rag.read_cache import GenerationCache
from rag.settings import Settings
from rag.store import ChromaStore
from rag.types import CorpusSummary, IngestReport, Paper

log = logging.getLogger(__name__)

# Records kept between questions (rag.read_cache): about 2 KB a paper with its vector, so
# some 80 MB at most; a larger collection reads the rest from the store as before.
KEPT_RECORDS = 20_000


@dataclass
class DenseMatch:
    paper_id: str
    score: float
    chunks: list[ChunkRef]


# Papers a question's nearest-chunk search missed whose chunks are read from the store when
# there is no exact-search copy: at 434k chunks, reading 40 papers' chunks by id took 12-15 ms
# of a 31 ms question, 5 papers' 3 ms.
STORED_BEST_CHUNKS = 10


def _by_paper(chunks: Iterable[tuple[str, float, ChunkRef]]) -> list[DenseMatch]:
    """Chunks (paper id, cosine, ref) grouped by paper, best chunk score first."""
    by_paper: dict[str, DenseMatch] = {}
    for pid, score, ref in chunks:
        match = by_paper.get(pid)
        if match is None:
            by_paper[pid] = DenseMatch(pid, score, [ref])
        else:
            match.chunks.append(ref)
    return sorted(by_paper.values(), key=lambda m: m.score, reverse=True)


class PaperIndex:
    """The stored index: dense chunks in Chroma, papers beside them, BM25 over papers.

    `create`: open for writing, making the store if it is missing; without it, open an
    existing index for reading (a reader never takes the writer's lock: it must answer
    while an ingest runs).
    """

    def __init__(self, settings: Settings, embeddings: LocalEmbeddings, *, create: bool) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self._writer = WriterLock(None if settings.chroma_url else settings.resolved_db_dir)
        # Creating a local client can write (a new sqlite file, migrations) and so can
        # get_or_create: a second writer must stop before either, not in the middle.
        self.store = ChromaStore(
            settings, create=create, opening=self._writer.held() if create else None
        )
        self.location = self.store.location
        self.derived = DerivedData(settings, self.store)
        self._ingester = Ingester(settings, embeddings, self.store, self.derived, self._writer)
        self._token_vectors = TokenVectorCache(
            embeddings.token_vectors, settings.retrieval.late_cache_papers
        )
        self._warm_up_started = threading.Lock()  # held for good once a warm-up thread starts
        self._papers: GenerationCache[Paper] = GenerationCache(KEPT_RECORDS)
        self._paper_vectors: GenerationCache[tuple[np.ndarray, str]] = GenerationCache(
            KEPT_RECORDS
        )

    # ---- writing -------------------------------------------------------------------

    def writer_lock(self) -> contextlib.AbstractContextManager[None]:
        """One writer per local directory (see rag.ingest.WriterLock); re-entrant."""
        return self._writer.held()

    def ingest(
        self, papers: Sequence[Paper], on_progress: Callable[[int], None] | None = None
    ) -> IngestReport:
        """Add new papers, replace changed ones, skip unchanged; then refresh BM25."""
        return self._ingester.run(papers, on_progress)

    def id_scheme(self) -> int:
        """The paper-id scheme of the stored papers (see rag.corpus.ID_SCHEME)."""
        return self._ingester.id_scheme()

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """The content hash stored with each of these papers that is stored."""
        return self.store.stored_hashes(ids)

    # ---- derived data --------------------------------------------------------------

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index, loaded once; rebuilt when it disagrees with Chroma."""
        return self.derived.lexical

    def summary(self) -> CorpusSummary:
        """Paper count, source files and a few titles, kept with (and as current as) BM25."""
        return self.derived.lexical.summary

    def refresh(self) -> bool:
        """Reload BM25 if another process changed the index; True when it did."""
        return self.derived.refresh()

    def maybe_refresh(self, max_age_s: float = DEFAULT_REFRESH_S) -> bool:
        """`refresh()` at most once every `max_age_s` seconds; for long-running servers."""
        return self.derived.maybe_refresh(max_age_s)

    def reopen(self) -> None:
        """Read the local index afresh (after another process wrote to it)."""
        self.store.reopen()

    # ---- reading -------------------------------------------------------------------

    def count(self) -> int:
        return self.store.count()

    def all_papers(self) -> Iterator[Paper]:
        return self.store.all_papers()

    def dense(self, vector: np.ndarray, n_chunks: int) -> list[DenseMatch]:
        """Papers of the nearest chunks, best chunk score first (cosine similarity)."""
        exact = self.derived.exact_vectors()
        if exact is not None:
            return _by_paper(exact.nearest(vector, n_chunks))
        return _by_paper(self.store.nearest_chunks(vector, n_chunks))

    def dense_of(self, vector: np.ndarray, ids: Sequence[str]) -> list[DenseMatch]:
        """The best chunk of each of `ids` for `vector`, from the exact-search copy. Above
        its size, only the first STORED_BEST_CHUNKS of `ids` (the caller puts the likeliest
        first) are read from the store, by chunk id; the others keep the lowest dense score
        in fusion."""
        if not ids:
            return []
        exact = self.derived.exact_vectors()
        if exact is None:
            first = self.papers(list(ids)[:STORED_BEST_CHUNKS])
            # A paper has at most one chunk per sentence (rag.chunking).
            most = {pid: len(abstract_sentences(p.abstract)) for pid, p in first.items()}
            exact = ChunkVectors.build("", self.store.chunks_of(most))
        return _by_paper(exact.best_of(vector, ids))

    def same_papers(self, papers: Sequence[Paper]) -> list[Paper]:
        """Stored papers that may be copies of `papers`: same id, DOI or arXiv id."""
        return self.store.same_papers(papers)

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        """The stored records of these papers (those that exist), as of BM25's generation."""
        return self._papers.get(self.lexical.generation, ids, self.store.papers)

    def warm_late_vectors(self, *, background: bool) -> None:
        """Encode every paper's token vectors for late interaction now (in a daemon thread
        with `background`, started once per index however often the web page loads), so no
        question waits for them; only when they all fit the cache
        (`retrieval.late_cache_papers`), else papers are encoded as questions reach them."""
        retrieval = self.settings.retrieval

        def encode_all() -> None:
            if not retrieval.late_weight or self.count() > retrieval.late_cache_papers:
                return
            papers = list(self.all_papers())
            # In small steps: each holds the model, which a question's own pass then waits for.
            for start in range(0, len(papers), 8):
                self._token_vectors.rows(papers[start : start + 8])

        if not background:
            encode_all()
            return
        if not self._warm_up_started.acquire(blocking=False):
            return  # a second thread would only encode the same papers beside the first

        def best_effort() -> None:
            # A warm-up that fails (the index replaced, the store gone) costs only speed:
            # each question still encodes the papers it reaches.
            try:
                encode_all()
            except Exception:  # noqa: BLE001
                log.debug("late-interaction warm-up stopped", exc_info=True)

        threading.Thread(target=best_effort, name="paperchat-late-warmup", daemon=True).start()

    def late_scores(self, question: np.ndarray, papers: Sequence[Paper]) -> dict[str, float]:
        """Each paper's late-interaction score for the question's content-token vectors
        (`LocalEmbeddings.query_vectors`; rag.late_interaction)."""
        rows = self._token_vectors.rows(papers)
        return {pid: late_score(question, paper_rows) for pid, paper_rows in rows.items()}

    def paper_vectors(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
        """Whole-abstract vector and title of each paper, in one read of those not kept."""
        return self._paper_vectors.get(self.lexical.generation, ids, self.store.paper_vectors)
