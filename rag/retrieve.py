"""Hybrid retrieval: dense chunks + BM25 papers, fused by score, one hit per paper.

Three signals score each candidate paper: its best chunk's cosine, its whole-abstract
vector's cosine, and BM25. How much BM25 counts depends on the query: when one paper's
BM25 score stands far above the corpus (the query shares rare exact terms with it), BM25 is
nearly always right; when no paper stands out (a paraphrase in other words), BM25 ranks
noise and the dense signals decide. A name the question uses (a model, method or dataset)
that a title carries is a fourth signal: the question is about that paper.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.chunking import ChunkRef, chunk_texts
from rag.index import PaperIndex
from rag.settings import RetrievalSettings
from rag.text import (
    PLACE_REFERENCE,
    content_words,
    latest_list,
    name_key,
    name_keys,
    name_terms,
    points_into_a_list,
    spelled_out,
    without_request,
    without_words,
)
from rag.types import Hit, Paper, Turn
from rag.word_pull import QuestionVectors

# A question that leans on the conversation: a pronoun, or "this/that/the method" naming nothing.
# A bare relative "that" ("methods that ...") is not a reference, so it does not count.
_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|these|those|"
    r"(this|that|the|said|these|those) (paper|method|model|approach|work|framework|dataset|"
    r"author|system|study|technique|architecture|benchmark|network)s?|"
    r"(which|that|this) one)\b",  # and a place in a list: rag.text.PLACE_REFERENCE
    re.IGNORECASE,
)


# An elliptical follow-up names only what changes: "What about video?", "And on COCO?"; or
# nothing at all: "Tell me more", "Go on".
_ELLIPSIS = re.compile(
    r"^\W*((and|also|what about|how about|what else|anything else|how so)\b|(why( not)?|"
    r"(please )?(tell me|say|explain|go on|continue|elaborate)( (some|a bit|a little))?"
    r"( more| further)?( please)?|more( details?)?( please)?)\W*$)",
    re.IGNORECASE,
)


# "Is the code available?", "What are the limitations?": what every paper has, asked of the
# one being discussed, when the question names no other.
_PAPER_PART = re.compile(
    r"\bthe (code|source code|implementation|results|limitations|experiments|baselines|"
    r"training data|data)\b",
    re.IGNORECASE,
)


def needs_history(question: str, history: Sequence[Turn]) -> bool:
    return bool(history) and (
        any(pattern.search(question) for pattern in (_ANAPHORA, PLACE_REFERENCE, _ELLIPSIS))
        or (bool(_PAPER_PART.search(question)) and not name_terms(question))
    )


def contextualize(question: str, history: Sequence[Turn]) -> str:
    """The retrieval query: the question without its request framing; a follow-up carries the
    last exchange, which names its subject."""
    # "Explain further": the request framing is the whole question, and it asks for more.
    follows = needs_history(question, history)
    question = without_request(question)
    if not (follows or needs_history(question, history)):
        return question
    recent = list(history[-2:])
    if points_into_a_list(question):
        # "the first one", "which of them": the exchange that gave the list, though others
        # may have followed.
        at = latest_list([t.content if t.role == "assistant" else "" for t in history])
        if at is not None:
            recent = list(history[max(at - 1, 0) : at + 1])
    return " ".join([*(t.content for t in recent), question])


def asked_names(question: str, history: Sequence[Turn]) -> list[str]:
    """Names the user wrote: in the question, and for a follow-up in their previous question."""
    texts = [question]
    if needs_history(question, history):
        texts += [t.content for t in history[-2:] if t.role == "user"]
    found: dict[str, str] = {}
    for text in texts:
        for name in name_terms(text):
            found.setdefault(name_key(name), name)
    return list(found.values())


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    dense_margin: float = 0.0  # see dense_margin()
    # The query's pass of the model (hybrid mode): rag.word_pull reads which of its words
    # pull it away from the papers an answer cites.
    question: QuestionVectors | None = None


def dense_margin(chunk_scores: dict[str, float], cap: float) -> float:
    """How far the best paper's chunk cosine stands above the mean of the next nine, at most
    `cap`. Beside the best cosine itself in the support model, it tells a question near many
    papers (the corpus's own topics) from one whose best match is a lone outlier: the fitted
    weight is negative (docs/evaluation.md). In a small or mixed collection every paper is
    a lone outlier, so the lead counts only up to `cap` (`retrieval.dense_margin_cap`)."""
    scores = sorted(chunk_scores.values(), reverse=True)
    margin = scores[0] - float(np.mean(scores[1:10])) if len(scores) > 2 else 0.0
    return min(margin, cap)


@dataclass
class Signals:
    """One query's per-paper scores before fusion; `fuse` turns them into a ranking."""

    chunk: dict[str, float]  # best chunk cosine (dense candidates)
    paper: dict[str, float]  # whole-abstract vector cosine (every candidate)
    lexical: dict[str, float]  # BM25, standardized over the whole corpus
    lexical_raw: dict[str, float]
    lexical_confidence: float  # how far the best BM25 score stands above the corpus (z)
    named: dict[str, float]  # share of the asked names found in the paper's title
    chunks: dict[str, list[ChunkRef]] = field(default_factory=dict)
    unknown_pull: dict[str, float] = field(default_factory=dict)  # HybridRetriever._unknown_pull
    # The idf-weighted share of the query's terms that BM25's top paper uses (lexical_weight).
    lexical_coverage: float = 1.0
    # rag.late_interaction's score of (at least) the fused ranking's first rerank_depth papers,
    # and the question's pass of the model it is computed from (its content-token vectors).
    late: dict[str, float] = field(default_factory=dict)
    question: QuestionVectors | None = None


def _standardize(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - float(values.mean())) / (spread or 1.0)


def lexical_weight(confidence: float, coverage: float, settings: RetrievalSettings) -> float:
    """BM25's weight for a query whose best BM25 score stands `confidence` z above the corpus
    and whose top BM25 paper uses `coverage` of its terms (idf-weighted).

    The confidence counts only as far as that paper covers the question
    (confidence * coverage ** lexical_coverage_power): a z over the whole corpus grows
    with a corpus that mixes fields, where any paper of the question's field stands out,
    but a paraphrase's words stay mostly absent from the paper BM25 puts first.
    """
    evidence = confidence * max(coverage, 0.0) ** settings.lexical_coverage_power
    gate = (evidence - settings.lexical_gate) / settings.lexical_gate_width
    return settings.lexical_weight / (1.0 + math.exp(-gate))


def fuse(signals: Signals, settings: RetrievalSettings, mode: str = "hybrid") -> dict[str, float]:
    """Weighted sum of standardized scores over the candidate pool.

    Scores, not ranks: a paper the dense model is sure about keeps its lead when BM25 ranks
    it low, and the lexical weight itself shrinks when BM25 has nothing distinctive to go on.
    A paper a dense signal did not score gets that signal's lowest score.
    """
    if mode == "lexical":
        return dict(signals.lexical_raw)
    ids = sorted(signals.paper.keys() | signals.chunk.keys() | signals.lexical.keys())
    fused = np.zeros(len(ids), dtype=np.float64)
    for scores, weight in ((signals.chunk, 1.0), (signals.paper, settings.paper_weight)):
        if scores and weight:
            floor = min(scores.values())
            fused += weight * _standardize(np.array([scores.get(i, floor) for i in ids]))
    if mode == "hybrid":
        weight = lexical_weight(signals.lexical_confidence, signals.lexical_coverage, settings)
        fused += weight * np.array([signals.lexical.get(i, 0.0) for i in ids])
        fused += settings.name_weight * np.array([signals.named.get(i, 0.0) for i in ids])
    return dict(zip(ids, fused.tolist(), strict=True))


def reranked(
    fused: dict[str, float], late: dict[str, float], settings: RetrievalSettings
) -> dict[str, float]:
    """`fused` with its first `rerank_depth` papers reordered by their fused score plus
    late_weight times their late-interaction score, each standardized over those papers. They
    stay above the rest, and their scores' gaps are the new score's."""
    top = sorted(fused, key=lambda pid: fused[pid], reverse=True)[: settings.rerank_depth]
    rest = [fused[pid] for pid in fused if pid not in top]
    if not settings.late_weight or len(top) < 2 or any(pid not in late for pid in top):
        return fused
    combined = _standardize(np.array([fused[pid] for pid in top])) + (
        settings.late_weight * _standardize(np.array([late[pid] for pid in top]))
    )
    floor = max(rest, default=0.0) - float(combined.min()) + 1e-6
    return {**fused, **{pid: floor + float(v) for pid, v in zip(top, combined, strict=True)}}


def scored(
    signals: Signals, settings: RetrievalSettings, mode: str = "hybrid"
) -> dict[str, float]:
    """Each candidate's score: fused, and in hybrid mode reranked by late interaction."""
    fused = fuse(signals, settings, mode)
    return reranked(fused, signals.late, settings) if mode == "hybrid" else fused


def ranked(
    signals: Signals,
    settings: RetrievalSettings,
    mode: str = "hybrid",
    fused: dict[str, float] | None = None,
) -> list[str]:
    """Paper ids best first. In hybrid mode the top paper of each component (dense, BM25)
    keeps a place among the first `settings.k` (at least 3): fusion may outvote one
    component, but the paper that component is surest of still reaches the answer's
    candidates. Measured on every set, this never lowered recall@5 or MRR and raised recall@5
    on the held-out folds (docs/evaluation.md). `fused`: scored(signals, settings, mode), when
    the caller has it already."""
    fused = scored(signals, settings, mode) if fused is None else fused
    order = sorted(fused, key=lambda pid: fused[pid], reverse=True)
    if mode != "hybrid":
        return order
    slot = max(settings.k, 3)  # room for fusion's own top paper and both components' tops
    tops: list[str] = []
    for component in ("dense", "lexical"):
        scores = fuse(signals, settings, component)
        top = max(scores, key=lambda pid: scores[pid]) if scores else None
        if top is not None and top in fused and top not in tops:
            tops.append(top)
    head = order[:slot]
    missing = [pid for pid in tops if pid not in head]
    # Room for them is made at the end of the first k, never by pushing out the other
    # component's top paper.
    dropped = set([pid for pid in reversed(head) if pid not in tops][: len(missing)])
    head = [pid for pid in head if pid not in dropped] + missing
    return head + [pid for pid in order if pid not in head]


def named_shares(titles: dict[str, str], names: Sequence[str]) -> dict[str, float]:
    """How much each title names the paper the question asks about (titles carrying no asked
    name are left out). Each asked name counts 1/len(names), split among the candidate titles
    that carry it: a name one title carries ("TokenPacker") identifies that paper, a name many
    carry ("CLIP") is a topic, and look-alike titles do not all get the full bonus."""
    carried = {pid: name_keys(title) for pid, title in titles.items()}
    shares: dict[str, float] = {}
    for key, name in {name_key(name): name for name in names}.items():
        holders = [
            pid
            for pid, keys in carried.items()
            if key in keys or spelled_out(name, titles[pid])  # "LVLMs": "Large ... Models"
        ]
        for pid in holders:
            shares[pid] = shares.get(pid, 0.0) + 1.0 / (len(names) * len(holders))
    return shares


class HybridRetriever:
    """Retrieves papers for a question (and its conversation) from a PaperIndex."""

    def __init__(self, index: PaperIndex, settings: RetrievalSettings) -> None:
        self.index = index
        self.settings = settings

    def signals(
        self, query: str, names: Sequence[str], mode: str = "hybrid", timings: dict | None = None
    ) -> Signals:
        """Every signal of `query` over the candidate pool (dense and lexical candidates)."""
        timings = {} if timings is None else timings
        start = time.perf_counter()
        chunk_scores: dict[str, float] = {}
        chunks: dict[str, list[ChunkRef]] = {}
        vector = question = None
        if mode == "hybrid":  # one pass: the vector, and what late interaction and word_pull read
            question = self.index.embeddings.query_vectors(query)
            vector = question.vector
        elif mode == "dense":
            vector = np.asarray(self.index.embeddings.embed_query(query), dtype=np.float32)
        if vector is not None:
            timings["embed"] = (time.perf_counter() - start) * 1000
            t = time.perf_counter()
            for match in self.index.dense(vector, self.settings.candidates * 2):
                chunk_scores[match.paper_id] = match.score
                chunks[match.paper_id] = match.chunks
            timings["dense"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        raw, standardized, confidence = self._lexical(query, extra=chunk_scores)
        top_lexical = max(raw, key=lambda pid: raw[pid]) if raw else None
        coverage = self.index.lexical.coverage(query, top_lexical) if top_lexical else 0.0
        if mode == "dense":
            raw, standardized = {pid: raw.get(pid, 0.0) for pid in chunk_scores}, {}
        timings["lexical"] = (time.perf_counter() - t) * 1000
        if vector is not None and mode == "hybrid":
            # BM25's candidates the nearest chunks missed: their real best-chunk cosine, so
            # fusion and the support test do not score them by a guess.
            missed = sorted(
                (p for p in raw if p not in chunk_scores), key=raw.__getitem__, reverse=True
            )
            for match in self.index.dense_of(vector, missed):
                chunk_scores[match.paper_id] = match.score
                chunks[match.paper_id] = match.chunks
        paper_scores: dict[str, float] = {}
        named: dict[str, float] = {}
        pull: dict[str, float] = {}
        if vector is not None:
            pool = list(chunk_scores.keys() | raw.keys())
            # The whole-abstract vector (mean of its chunks) sees what no single chunk says.
            stored = self.index.paper_vectors(pool)
            paper_scores = {pid: float(vec @ vector) for pid, (vec, _) in stored.items()}
            if names:
                named = named_shares({pid: title for pid, (_, title) in stored.items()}, names)
            pull = self._unknown_pull(query, stored, paper_scores, timings)
        return Signals(
            chunk_scores, paper_scores, standardized, raw, confidence, named, chunks, pull,
            lexical_coverage=coverage, question=question,
        )

    def _unknown_pull(
        self,
        query: str,
        stored: dict[str, tuple[np.ndarray, str]],
        paper_scores: dict[str, float],
        timings: dict[str, float],
    ) -> dict[str, float]:
        """How much closer each paper's abstract vector comes to the query once the query's
        words that no indexed paper uses are dropped. A paper that matches only when those
        words are ignored ("watermarking", "EEG") is about something else; a paraphrase's
        unused words ("pictures" for images) mean what the paper says, and dropping them
        moves it away or not at all. A support feature (rag.answer.Support)."""
        unknown = self.index.lexical.unknown_words(query)
        if not unknown or not stored:
            return {}
        rest = without_words(query, unknown)
        if not content_words(rest):
            return {}  # nothing else to compare with
        start = time.perf_counter()
        reduced = np.asarray(self.index.embeddings.embed_query(rest), dtype=np.float32)
        timings["embed"] = timings.get("embed", 0.0) + (time.perf_counter() - start) * 1000
        return {pid: float(vec @ reduced) - paper_scores[pid] for pid, (vec, _) in stored.items()}

    def retrieve(
        self,
        question: str,
        history: Sequence[Turn] = (),
        k: int | None = None,
        mode: str = "hybrid",
    ) -> Retrieval:
        k = k or self.settings.k
        timings: dict[str, float] = {}
        query = contextualize(question, history)
        names = asked_names(question, history)
        signals = self.signals(query, names, mode, timings)
        t = time.perf_counter()
        fused = fuse(signals, self.settings, mode)
        papers: dict[str, Paper] = {}
        if signals.question is not None and self.settings.late_weight:
            start = time.perf_counter()
            first = sorted(fused, key=lambda pid: fused[pid], reverse=True)
            papers = self.index.papers(first[: self.settings.rerank_depth])
            late = self.index.late_scores(signals.question.tokens, list(papers.values()))
            signals.late = late
            fused = reranked(fused, late, self.settings)
            timings["rerank"] = (time.perf_counter() - start) * 1000
        order = ranked(signals, self.settings, mode, fused)[: max(k, 20)]
        # The reranked papers were read already; read the others.
        papers |= self.index.papers([pid for pid in order if pid not in papers])
        hits = [
            Hit(
                paper=papers[pid],
                score=fused[pid],
                dense=signals.chunk.get(pid, 0.0),
                lexical=signals.lexical_raw.get(pid, 0.0),
                unknown_pull=signals.unknown_pull.get(pid, 0.0),
                evidence=chunk_texts(papers[pid].abstract, signals.chunks.get(pid, [])),
            )
            for pid in order
            if pid in papers
        ]
        timings["fuse"] = (time.perf_counter() - t) * 1000
        margin = dense_margin(signals.chunk, self.settings.dense_margin_cap)
        return Retrieval(query, hits, timings, names, margin, signals.question)

    def _lexical(
        self, query: str, extra: dict[str, float]
    ) -> tuple[dict[str, float], dict[str, float], float]:
        """BM25 of the top lexical candidates and of every paper in `extra`: raw scores, the
        same standardized over the corpus, and the best one's standardized score."""
        lexical = self.index.lexical
        scores = lexical.scores(query)
        count = min(self.settings.candidates, len(scores))
        if not count or not scores.any():
            return {}, {}, 0.0
        mean, spread = float(scores.mean()), float(scores.std()) or 1.0
        top = np.argpartition(-scores, count - 1)[:count]
        found = {lexical.ids[i]: float(scores[i]) for i in top if scores[i] > 0}
        positions = lexical.positions
        for pid in extra:
            if pid in positions:
                found.setdefault(pid, float(scores[positions[pid]]))
        standardized = {pid: (v - mean) / spread for pid, v in found.items()}
        return found, standardized, (float(scores.max()) - mean) / spread
