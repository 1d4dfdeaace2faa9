"""Late interaction: each word of a question matched to its closest word of a paper, in context.

The dense signals compare one vector per question with one per chunk or abstract, so a
question's rare details drown in its framing; BM25 matches words exactly, so a paraphrase
("pictures" for "images") scores nothing. Matching each of the question's content tokens to
the paper token closest to it in the bundled model's contextual token vectors (ColBERT's
MaxSim, without ColBERT's training) sees both: a paraphrase finds its synonyms, a rare name
finds itself. A paper scores by its best windows of a few sentences, not its whole text.
Scored over the fused ranking's first papers only, it reorders them (rag.retrieve.reranked);
measured leave one set out in docs/evaluation.md.

A paper's token vectors come from one pass of the model over its title and abstract, in
windows of a few sentences so no text is cut at the model's 256 tokens. They are computed
when a paper first reaches the reranked top and kept, int8, in a bounded in-memory cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from rag.model_files import tokenizer
from rag.text import STOP_WORDS, split_sentences
from rag.types import Paper

SENTENCES_PER_WINDOW = 3
_INT8_SCALE = 127.0


@lru_cache(maxsize=1)
def _skipped_token_ids() -> frozenset[int]:
    """Token ids that carry no content: special tokens, punctuation, stop words."""
    skipped = set()
    for token, token_id in tokenizer().get_vocab().items():
        word = token.removeprefix("##").lower()
        if token.startswith("[") or not any(ch.isalnum() for ch in word) or word in STOP_WORDS:
            skipped.add(token_id)
    return frozenset(skipped)


def content_rows(ids: Sequence[int], hidden: np.ndarray) -> np.ndarray:
    """The unit-length token vectors of `hidden` (one row per id) whose tokens carry content."""
    skipped = _skipped_token_ids()
    keep = [i for i, token_id in enumerate(ids) if token_id not in skipped]
    rows = np.asarray(hidden[keep], dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def paper_windows(paper: Paper) -> list[str]:
    """The texts a paper's token vectors come from: its title before each few sentences."""
    sentences = split_sentences(paper.abstract) or [paper.abstract]
    return [
        f"{paper.title}. " + " ".join(sentences[at : at + SENTENCES_PER_WINDOW])
        for at in range(0, len(sentences), SENTENCES_PER_WINDOW)
    ]


def window_score(question_rows: np.ndarray, window_rows: np.ndarray) -> float:
    """Mean over the question's tokens of the cosine of the window's closest token."""
    if not len(question_rows) or not len(window_rows):
        return 0.0
    return float((question_rows @ window_rows.T).max(axis=1).mean())


def late_score(question_rows: np.ndarray, windows: Sequence[np.ndarray]) -> float:
    """The mean of the paper's best two window scores. Matching the whole abstract at once
    favoured papers that spread the question's words over unrelated sentences: with 10,000
    synthetic papers made of other papers' sentences, dev's MRR fell from 0.942 to 0.870;
    with the best two windows it rose to 0.974 (docs/evaluation.md)."""
    scores = sorted((window_score(question_rows, rows) for rows in windows), reverse=True)
    return float(np.mean(scores[:2])) if scores else 0.0


class TokenVectorCache:
    """Papers' content-token vectors (int8), the most recently used `capacity` papers."""

    def __init__(self, encode: Callable[[list[str]], list[np.ndarray]], capacity: int) -> None:
        self._encode = encode  # texts -> content_rows of each
        self._capacity = capacity
        self._rows: OrderedDict[tuple[str, int], list[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, papers: Sequence[Paper]) -> dict[str, list[np.ndarray]]:
        """Each paper's token vectors (float32) per window (paper_windows), encoding the ones
        not cached in one batch."""
        # Keyed by the text too: a paper ingested again with a new abstract keeps its id.
        keys = {p.id: (p.id, hash((p.title, p.abstract))) for p in papers}
        with self._lock:
            found = {p.id: self._rows[keys[p.id]] for p in papers if keys[p.id] in self._rows}
            for pid in found:
                self._rows.move_to_end(keys[pid])
        missing = [p for p in papers if p.id not in found]
        if missing:
            windows = [paper_windows(p) for p in missing]
            encoded = self._encode([text for texts in windows for text in texts])
            at = 0
            for paper, texts in zip(missing, windows, strict=True):
                found[paper.id] = [
                    np.round(rows * _INT8_SCALE).astype(np.int8)
                    for rows in encoded[at : at + len(texts)]
                ]
                at += len(texts)
            with self._lock:
                for paper in missing:
                    self._rows[keys[paper.id]] = found[paper.id]
                while len(self._rows) > self._capacity:
                    self._rows.popitem(last=False)
        return {
            pid: [rows.astype(np.float32) / _INT8_SCALE for rows in windows]
            for pid, windows in found.items()
        }
