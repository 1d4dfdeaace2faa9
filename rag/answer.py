"""The extractive answerer: sentences from the cited abstracts, each with its marker.

It never writes text that is not in an abstract; the only fixed text is the abstention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.citations import citation_for
from rag.lexical import LexicalIndex
from rag.settings import AnswerSettings, RetrievalSettings
from rag.text import split_sentences, stems
from rag.types import Answer, Citation, Hit

ABSTAIN_TEXT = (
    "The indexed papers don't answer this question. Try rephrasing it, or add papers that cover it."
)
# Questions that ask for several papers: "papers"/"works" anywhere, or a plural head noun
# ("Which methods ...") -- not any plural ("separate systems" in a one-paper question).
_PLURAL = re.compile(
    r"\b(papers|works|studies|articles|publications)\b|^\s*(which|what)\s+(\w+\s+)?"
    r"(methods|approaches|models|frameworks|techniques|systems)\b",
    re.IGNORECASE,
)
_MAX_PAPERS = 5


def asks_for_several(question: str) -> bool:
    return bool(_PLURAL.search(question))


@dataclass
class Support:
    """How well the top paper supports the question; drives abstention."""

    dense: float
    term_coverage: float

    def answerable(self, settings: RetrievalSettings) -> bool:
        """Either signal alone suffices: paraphrases score high on dense similarity, keyword
        questions on term coverage; a question the papers don't answer is low on both."""
        return (
            self.dense >= settings.abstain_dense_below
            or self.term_coverage >= settings.abstain_coverage_below
        )


def support(query: str, top: Hit, lexical: LexicalIndex) -> Support:
    """Dense similarity of the best chunk, plus the idf-weighted share of query terms it has.

    A term no indexed paper uses weighs most: a question about something the corpus never
    mentions ("optical flow", "milliseconds") loses coverage exactly where it matters.
    """
    terms = set(stems(query))
    have = set(stems(f"{top.paper.title} {top.paper.abstract}"))
    total = sum(lexical.idf(t) for t in terms)
    covered = sum(lexical.idf(t) for t in terms & have)
    return Support(dense=top.dense, term_coverage=covered / total if total else 0.0)


def choose_papers(question: str, hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The top paper; for a question asking for several, those scoring near it too."""
    if not hits:
        return []
    if not asks_for_several(question):
        return [hits[0]]
    top = hits[0].score
    chosen = [hits[0]]
    for hit in hits[1 : min(limit, _MAX_PAPERS)]:
        if top > 0 and hit.score >= 0.45 * top:
            chosen.append(hit)
    return chosen


def rank_sentences(query: str, hit: Hit, lexical: LexicalIndex) -> list[tuple[float, int, str]]:
    """(score, position, sentence) for the abstract's sentences, best first."""
    terms = set(stems(query))
    weights = {t: lexical.idf(t) for t in terms}
    total = sum(weights.values()) or 1.0
    best_chunk = hit.evidence[0] if hit.evidence else ""
    ranked = []
    for position, sentence in enumerate(split_sentences(hit.paper.abstract)):
        have = set(stems(sentence))
        score = sum(w for t, w in weights.items() if t in have) / total
        if best_chunk and sentence in best_chunk:
            score += 0.15  # the dense model matched this region of the abstract
        if position == 0 or re.search(
            r"\b(we|this paper) (propose|present|introduce)", sentence, re.I
        ):
            score += 0.1  # the contribution sentence says what the paper is
        ranked.append((score, position, sentence))
    return sorted(ranked, key=lambda r: (-r[0], r[1]))


def extractive_answer(
    question: str,
    query: str,
    hits: Sequence[Hit],
    lexical: LexicalIndex,
    settings: AnswerSettings,
    retrieval_settings: RetrievalSettings,
    k: int,
) -> Answer:
    retrieved = list(hits[:k])
    if not hits or not support(query, hits[0], lexical).answerable(retrieval_settings):
        return Answer(ABSTAIN_TEXT, [], retrieved, abstained=True, mode="extractive", query=query)
    chosen = choose_papers(question, hits, k)
    per_paper = max(2, settings.max_sentences // len(chosen))
    paragraphs: list[str] = []
    citations: list[Citation] = []
    for n, hit in enumerate(chosen, start=1):
        picked = sorted(rank_sentences(query, hit, lexical)[:per_paper], key=lambda r: r[1])
        paragraphs.append(" ".join(f"{sentence} [{n}]" for _, _, sentence in picked))
        best = max(picked, key=lambda r: r[0])[2]
        citations.append(citation_for(n, hit, best))
    return Answer(
        "\n\n".join(paragraphs),
        citations,
        retrieved,
        abstained=False,
        mode="extractive",
        query=query,
    )
