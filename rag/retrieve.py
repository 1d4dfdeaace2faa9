"""Hybrid retrieval: dense chunks + BM25 papers, fused by score, one hit per paper."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.index import ChunkRef, PaperIndex, chunk_texts
from rag.settings import RetrievalSettings
from rag.types import Hit, Turn

# A question that leans on the conversation: a pronoun, or "this/that/the method" naming nothing.
# A bare relative "that" ("methods that ...") is not a reference, so it does not count.
_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|these|those|"
    r"(this|that|the|said) (paper|method|model|approach|work|framework|dataset|authors|system|"
    r"study|technique|architecture|benchmark|network))\b",
    re.IGNORECASE,
)


def needs_history(question: str, history: Sequence[Turn]) -> bool:
    return bool(history) and bool(_ANAPHORA.search(question))


def contextualize(question: str, history: Sequence[Turn]) -> str:
    """The retrieval query: a follow-up carries the last exchange, which names its subject."""
    if not needs_history(question, history):
        return question
    recent = [t.content for t in history[-2:]]
    return " ".join([*recent, question])


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)


def _standardize(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - float(values.mean())) / (spread or 1.0)


def fuse(signals: dict[str, tuple[dict[str, float], float]]) -> dict[str, float]:
    """Weighted sum of standardized scores over the candidate pool.

    `signals` maps a name to (scores by paper id, weight). A paper a signal did not score
    gets that signal's lowest score. Scores, not ranks: a paper the dense model is sure about
    keeps its lead when BM25 ranks it low, since a weak lexical score subtracts only a little
    -- rank fusion would bury it.
    """
    ids = sorted({pid for scores, _ in signals.values() for pid in scores})
    fused = np.zeros(len(ids), dtype=np.float64)
    for scores, weight in signals.values():
        if not scores or weight == 0:
            continue
        floor = min(scores.values())
        values = np.array([scores.get(i, floor) for i in ids], dtype=np.float64)
        fused += weight * _standardize(values)
    return dict(zip(ids, fused.tolist(), strict=True))


class HybridRetriever:
    """Retrieves papers for a question (and its conversation) from a PaperIndex."""

    def __init__(self, index: PaperIndex, settings: RetrievalSettings) -> None:
        self.index = index
        self.settings = settings

    def retrieve(
        self,
        question: str,
        history: Sequence[Turn] = (),
        k: int | None = None,
        mode: str = "hybrid",
    ) -> Retrieval:
        k = k or self.settings.k
        timings: dict[str, float] = {}
        start = time.perf_counter()
        query = contextualize(question, history)
        chunk_scores: dict[str, float] = {}
        paper_scores: dict[str, float] = {}
        chunks: dict[str, list[ChunkRef]] = {}
        vector = None
        if mode in ("hybrid", "dense"):
            vector = np.asarray(self.index.embeddings.embed_query(query), dtype=np.float32)
            timings["embed"] = (time.perf_counter() - start) * 1000
            t = time.perf_counter()
            for match in self.index.dense(vector, self.settings.candidates * 2):
                chunk_scores[match.paper_id] = match.score
                chunks[match.paper_id] = match.chunks
            timings["dense"] = (time.perf_counter() - t) * 1000
        lexical_scores: dict[str, float] = {}
        if mode in ("hybrid", "lexical"):
            t = time.perf_counter()
            lexical_scores = self._lexical(query, extra=chunk_scores)
            timings["lexical"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if mode == "lexical":
            fused = lexical_scores
        else:
            assert vector is not None
            # The whole-abstract vector (mean of its chunks) sees what no single chunk says.
            pool = list(chunk_scores.keys() | lexical_scores.keys())
            paper_scores = {
                pid: float(vec @ vector) for pid, vec in self.index.paper_vectors(pool).items()
            }
            top_lexical = max(lexical_scores.values(), default=0.0) or 1.0
            fused = fuse(
                {
                    "chunk": (chunk_scores, 1.0),
                    "paper": (paper_scores, self.settings.paper_weight),
                    "lexical": (
                        {pid: v / top_lexical for pid, v in lexical_scores.items()},
                        self.settings.lexical_weight if mode == "hybrid" else 0.0,
                    ),
                }
            )
        ranked = sorted(fused, key=lambda pid: fused[pid], reverse=True)[: max(k, 20)]
        papers = self.index.papers(ranked)
        hits = [
            Hit(
                paper=papers[pid],
                score=fused[pid],
                dense=chunk_scores.get(pid, 0.0),
                lexical=lexical_scores.get(pid, 0.0),
                evidence=chunk_texts(papers[pid].abstract, chunks.get(pid, [])),
            )
            for pid in ranked
            if pid in papers
        ]
        timings["fuse"] = (time.perf_counter() - t) * 1000
        return Retrieval(query=query, hits=hits, timings_ms=timings)

    def _lexical(self, query: str, extra: dict[str, float]) -> dict[str, float]:
        """BM25 scores of the top lexical candidates and of every paper in `extra`."""
        lexical = self.index.lexical
        scores = lexical.scores(query)
        count = min(self.settings.candidates, len(scores))
        top = np.argpartition(-scores, count - 1)[:count] if count else np.array([], dtype=int)
        found = {lexical.ids[i]: float(scores[i]) for i in top if scores[i] > 0}
        if extra:
            positions = lexical.positions
            for pid in extra:
                if pid in positions:
                    found.setdefault(pid, float(scores[positions[pid]]))
        return found
