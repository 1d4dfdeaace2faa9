"""BM25 over title + abstract of every paper, persisted as one file written atomically."""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.text import stems

FORMAT_VERSION = 2


def paper_terms(title: str, abstract: str) -> list[str]:
    # The title counts twice: it names what the paper is about.
    return stems(f"{title} {title} {abstract}")


@dataclass
class LexicalIndex:
    ids: list[str]
    generation: str
    _bm25: Any
    doc_freq: dict[str, int]

    @classmethod
    def build(cls, ids: list[str], texts: list[tuple[str, str]], generation: str) -> LexicalIndex:
        return cls.from_records(
            ((pid, title, abstract) for pid, (title, abstract) in zip(ids, texts, strict=True)),
            generation,
        )

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str, str]], generation: str) -> LexicalIndex:
        """BM25 over (id, title, abstract) records, read one at a time.

        Each paper's terms become a compact int32 array against one shared vocabulary, so
        memory grows by ~4 bytes per term instead of a Python string list per paper (at
        100k papers the latter was the ingest's memory peak).
        """
        import bm25s

        ids: list[str] = []
        vocab: dict[str, int] = {}
        docs: list[array[int]] = []
        doc_freq: dict[str, int] = {}
        for pid, title, abstract in records:
            terms = paper_terms(title, abstract) or ["_"]
            ids.append(pid)
            docs.append(array("i", [vocab.setdefault(t, len(vocab)) for t in terms]))
            for term in set(terms):
                doc_freq[term] = doc_freq.get(term, 0) + 1
        bm25 = bm25s.BM25()
        if docs:
            bm25.index((docs, vocab), show_progress=False)
        return cls(ids=ids, generation=generation, _bm25=bm25, doc_freq=doc_freq)

    @cached_property
    def positions(self) -> dict[str, int]:
        return {pid: n for n, pid in enumerate(self.ids)}

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency; a term no paper uses gets the highest value."""
        n = len(self.ids)
        df = self.doc_freq.get(term, 0)
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper, in `ids` order."""
        terms = [t for t in stems(query) if t in self._bm25.vocab_dict]
        if not terms or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lexical-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(
                    (FORMAT_VERSION, self.ids, self.generation, self._bm25, self.doc_freq), handle
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> LexicalIndex | None:
        """The saved index, or None when it is missing, unreadable or of another format."""
        try:
            with path.open("rb") as handle:
                version, ids, generation, bm25, doc_freq = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
            return None
        if version != FORMAT_VERSION:
            return None
        return cls(ids=ids, generation=generation, _bm25=bm25, doc_freq=doc_freq)
