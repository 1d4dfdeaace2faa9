"""BM25 over title + abstract of every paper and the corpus summary, each file written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rag.citations import term_coverage
from rag.settings import Settings
from rag.text import content_words, joined_names, stems
from rag.types import CorpusSummary, Paper

# 3: with the corpus summary; 4: postings saved without bm25s's class; 5: counts such as "10M"
# also indexed as "10" and "million" (rag.text.stems); 6: joined names such as "ST-Align" also
# indexed whole (rag.text.joined_names)
FORMAT_VERSION = 6
# Beside the BM25 file: the summary alone, readable without unpickling BM25 (or Chroma).
SUMMARY_FILE = "summary.json"


def lexical_terms(text: str) -> list[str]:
    """What BM25 matches: the text's stems and its joined names."""
    return stems(text) + joined_names(text)


def paper_terms(title: str, abstract: str) -> list[str]:
    # The title counts twice: it names what the paper is about.
    return lexical_terms(f"{title} {title} {abstract}")


@dataclass
class _Postings:
    """What scoring reads of a bm25s.BM25: its vocabulary and score matrix (CSC arrays).

    Saved instead of the BM25 object, so loading the file (every cold `paperchat ask`)
    does not import bm25s and, through it, scipy (measured: ~0.1-0.25 s of a cold start).
    """

    vocab_dict: dict[str, int]
    scores: dict[str, Any]


@dataclass
class LexicalIndex:
    ids: list[str]
    generation: str
    _bm25: Any
    doc_freq: dict[str, int]
    summary: CorpusSummary

    @classmethod
    def build(cls, ids: list[str], texts: list[tuple[str, str]], generation: str) -> LexicalIndex:
        papers = (
            Paper(id=pid, title=title, abstract=abstract, url="")
            for pid, (title, abstract) in zip(ids, texts, strict=True)
        )
        return cls.from_papers(papers, generation)

    @classmethod
    def from_papers(cls, papers: Iterable[Paper], generation: str) -> LexicalIndex:
        """BM25 (and the corpus summary) over papers read one at a time.

        Each paper's terms become a compact int32 array against one shared vocabulary, so
        memory grows by ~4 bytes per term instead of a Python string list per paper (at
        100k papers the latter was the ingest's memory peak).
        """
        import bm25s

        ids: list[str] = []
        vocab: dict[str, int] = {}
        docs: list[array[int]] = []
        doc_freq: dict[str, int] = {}
        summary = CorpusSummary()
        for paper in papers:
            terms = paper_terms(paper.title, paper.abstract) or ["_"]
            ids.append(paper.id)
            docs.append(array("i", [vocab.setdefault(t, len(vocab)) for t in terms]))
            for term in set(terms):
                doc_freq[term] = doc_freq.get(term, 0) + 1
            summary.add(paper)
        bm25 = bm25s.BM25()
        if docs:
            bm25.index((docs, vocab), show_progress=False)
        return cls(ids, generation, bm25, doc_freq, summary)

    @cached_property
    def positions(self) -> dict[str, int]:
        return {pid: n for n, pid in enumerate(self.ids)}

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency; a term no paper uses gets the highest value."""
        n = len(self.ids)
        df = self.doc_freq.get(term, 0)
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def unknown_words(self, text: str) -> list[str]:
        """The content words of `text` that no indexed paper uses (by stem), in order."""
        return [
            word
            for word in dict.fromkeys(content_words(text))
            if not any(stem in self.doc_freq for stem in stems(word))
        ]

    def coverage(self, query: str, paper_id: str) -> float:
        """rag.citations.term_coverage of the query for the paper's title and abstract, read
        from the postings (no read of the paper); 0.0 for a paper not indexed."""
        row = self.positions.get(paper_id)
        vocab, matrix = self._bm25.vocab_dict, self._bm25.scores
        indptr, indices = matrix["indptr"], matrix["indices"]

        def uses(term: str) -> bool:
            column = vocab.get(term)
            if row is None or column is None:
                return False
            return bool(np.any(indices[indptr[column] : indptr[column + 1]] == row))

        return term_coverage(query, uses, self.idf)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper, in `ids` order."""
        vocab = self._bm25.vocab_dict
        terms = [vocab[t] for t in lexical_terms(query) if t in vocab]
        if not terms or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        # bm25s's own get_scores sums the terms' columns with np.add.at, which is unbuffered:
        # 7.9 ms a question at 100k papers. One bincount over the same columns: the same sums.
        matrix = self._bm25.scores
        indptr = matrix["indptr"]
        spans = [slice(indptr[t], indptr[t + 1]) for t in terms]  # repeated terms count again
        rows = np.concatenate([matrix["indices"][span] for span in spans])
        weights = np.concatenate([matrix["data"][span] for span in spans])
        return np.bincount(rows, weights=weights, minlength=len(self.ids)).astype(np.float32)

    def save(self, path: Path) -> None:
        fields = (
            FORMAT_VERSION,
            self.ids,
            self.generation,
            _Postings(self._bm25.vocab_dict, self._bm25.scores),
            self.doc_freq,
            self.summary,
        )
        atomic_write(path, lambda handle: pickle.dump(fields, handle))
        summary = json.dumps({"generation": self.generation, **self.summary.to_json()})
        atomic_write(path.with_name(SUMMARY_FILE), lambda handle: handle.write(summary.encode()))

    @classmethod
    def load(cls, path: Path) -> LexicalIndex | None:
        """The saved index, or None when it is missing, unreadable or of another format."""
        try:
            with path.open("rb") as handle:
                version, *fields = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
            return None
        except (AttributeError, ImportError):  # written by another version of paperchat
            return None
        if version != FORMAT_VERSION:
            return None
        return cls(*fields)

    @staticmethod
    def saved_summary(path: Path) -> CorpusSummary | None:
        """The summary saved with the BM25 file at `path`, if there is a readable one.

        Not checked against the store: as current as the last BM25 build on this machine.
        """
        try:
            data = json.loads(path.with_name(SUMMARY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return CorpusSummary.from_json(data)


def lexical_path(settings: Settings) -> Path:
    """Where the BM25 file (and the corpus summary beside it) lives for these settings."""
    if settings.chroma_url:
        key = f"{settings.chroma_url}|{settings.index.collection}"
        return (
            settings.data_dir
            / "cache"
            / hashlib.sha1(key.encode()).hexdigest()[:12]
            / "lexical.pkl"
        )
    return settings.resolved_db_dir / "lexical.pkl"


def saved_summary(settings: Settings) -> CorpusSummary | None:
    """The corpus summary saved by the last BM25 build, read without opening the store."""
    return LexicalIndex.saved_summary(lexical_path(settings))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
