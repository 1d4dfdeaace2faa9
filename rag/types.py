"""Plain data passed between stages. Imports nothing from rag."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AnswerMode = Literal["extractive", "llm"]


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    url: str
    source: str = ""
    authors: tuple[str, ...] = ()
    date: str = ""
    # Bibliographic metadata, when the source gives it (BibTeX, RIS, CSL-JSON, arXiv).
    year: str = ""
    venue: str = ""
    doi: str = ""  # normalised: lower-case, no resolver prefix
    arxiv_id: str = ""  # without version, e.g. 2401.12345
    # How `url` was found: doi | arxiv | source | search ('' in indexes built before).
    link_kind: str = ""


@dataclass(frozen=True)
class Chunk:
    id: str
    paper_id: str
    position: int
    text: str
    # Sentence span in the abstract: the stored index keeps these, not the text.
    first: int = 0
    last: int = 0


@dataclass
class Hit:
    """One retrieved paper with the signals that ranked it."""

    paper: Paper
    score: float  # rag.retrieve.scored: the fused score, the first papers' reranked
    dense: float = 0.0
    lexical: float = 0.0
    evidence: list[str] = field(default_factory=list)
    unknown_pull: float = 0.0  # rag.retrieve.HybridRetriever._unknown_pull


@dataclass
class Citation:
    n: int
    paper_id: str
    title: str
    url: str
    evidence: str
    supported: bool = True
    authors: tuple[str, ...] = ()
    year: str = ""
    doi: str = ""
    arxiv_id: str = ""
    link_kind: str = ""
    # Every abstract sentence the answer relies on for this source (evidence first).
    highlights: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("supported")
        data["authors"] = list(self.authors)
        data.pop("highlights")
        return data


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    retrieved: list[Hit]
    abstained: bool
    mode: AnswerMode
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""
    query: str = ""
    # Names the question insists on (a model, dataset, language, number) that the cited
    # abstracts never mention, words they only have in a contrasting form ("decoding" where
    # they say "encoding"), and words they never use that pull the question away from them
    # (rag.word_pull): the answer may be about something close, not the thing asked.
    missing_terms: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The object `paperchat ask --json` prints and the `/ask` endpoint returns."""
        data: dict[str, Any] = {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "retrieved": [
                {"paper_id": h.paper.id, "title": h.paper.title, "score": round(h.score, 4)}
                for h in self.retrieved
            ],
            "mode": self.mode,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "query": self.query,
            "missing_terms": self.missing_terms,
        }
        if self.note:
            data["note"] = self.note
        # What retrieval searched for: the question, or for a follow-up its standalone form.
        data["query"] = self.query
        return data


class Rejected(str):
    """A stream event: the text streamed so far is withdrawn (the answer that follows replaces
    it). Its value, a paragraph break, is what consumers that only print text show; a
    terminal prints `reason` as a visible rule instead."""

    reason: str

    def __new__(cls, reason: str) -> Rejected:
        event = super().__new__(cls, "\n\n")
        event.reason = reason
        return event


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass
class IngestReport:
    papers: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    # Papers of an older index re-keyed to the current id scheme (once per index).
    migrated: int = 0
    # Entries that became one paper with another (same DOI, arXiv id or title).
    merged: int = 0
    # Entries left out: no abstract, or malformed and skipped on request (--skip-bad).
    skipped: int = 0
    # One line per merge or skipped entry, for the summary.
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"Indexed {self.papers} papers ({self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.chunks} chunks)."
        )
        if self.merged:
            text += f" Merged {self.merged} duplicate{'s' if self.merged != 1 else ''}."
        if self.skipped:
            text += f" Skipped {self.skipped} entr{'ies' if self.skipped != 1 else 'y'}."
        if self.migrated:
            text += f" Moved {self.migrated} papers of an older index to the current ids."
        return text


@dataclass
class CorpusSummary:
    """What a front end says about the corpus: paper count, source files, a few titles.

    Built with the BM25 index (which reads every paper anyway) and saved beside it, so
    reading it costs nothing even at 100k papers.
    """

    papers: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    sample_titles: list[str] = field(default_factory=list)

    def add(self, paper: Paper) -> None:
        self.papers += 1
        # A paper merged from several files lists them all.
        for name in (paper.source or "").split(", "):
            if name:
                self.sources[name] += 1
        if len(self.sample_titles) < 3:
            self.sample_titles.append(paper.title)

    @classmethod
    def of(cls, papers: Iterable[Paper]) -> CorpusSummary:
        summary = cls()
        for paper in papers:
            summary.add(paper)
        return summary

    def to_json(self) -> dict[str, Any]:
        return {
            "papers": self.papers,
            "sources": dict(self.sources),
            "sample_titles": self.sample_titles,
        }

    @classmethod
    def from_json(cls, data: Any) -> CorpusSummary | None:
        """The summary in `data`, or None when it is not one (e.g. a damaged file)."""
        try:
            sources = Counter({str(k): int(v) for k, v in dict(data["sources"]).items()})
            return cls(int(data["papers"]), sources, [str(t) for t in data["sample_titles"]])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
