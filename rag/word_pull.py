"""Which of a question's words pull it away from a paper: the words a near miss insists on.

A near miss (a video benchmark asked for its "underwater footage") matches a real paper in
every word but the one detail that paper lacks. A paraphrase lacks many of its
paper's words too ("pictures" for "images"), so absence alone flags nearly every right
answer. What tells them apart is the word's pull: the question's vector (the bundled model
mean-pools its tokens) with that word's tokens left out of the pooling comes *closer* to the
paper when the word asks for something else, and moves away or stays when the word means
what the paper says in other words. Leaving tokens out of the pooling needs no second pass of
the model: one pass gives every token's vector (docs/evaluation.md measures it against
re-encoding the question without the word).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

# The words rag.text.words reads, found in text as written.
_WORD = re.compile(r"[0-9a-z]+", re.IGNORECASE)


class QuestionVectors(NamedTuple):
    """One pass of the model over a question: its vector (as embed_query), its content-token
    vectors (rag.late_interaction), and its vector with each word's tokens left out."""

    vector: np.ndarray
    tokens: np.ndarray
    without_word: Mapping[str, np.ndarray]


def without_each_word(
    text: str, offsets: Sequence[tuple[int, int]], hidden: np.ndarray
) -> dict[str, np.ndarray]:
    """The text's mean-pooled, unit-length vector with each word's tokens (every occurrence)
    left out, by lower-cased word. `offsets`: each token's character span in `text`, (0, 0)
    for the special tokens (never left out); `hidden`: one row per token."""
    rows_of: dict[str, list[int]] = {}
    for match in _WORD.finditer(text):
        rows = [
            row
            for row, (start, end) in enumerate(offsets)
            if end > start and start >= match.start() and end <= match.end()
        ]
        if rows:
            rows_of.setdefault(match.group(0).lower(), []).extend(rows)
    total = hidden.sum(axis=0)
    out: dict[str, np.ndarray] = {}
    for word, rows in rows_of.items():
        rest = total - hidden[rows].sum(axis=0)
        norm = float(np.linalg.norm(rest))
        if len(rows) < len(hidden) and norm > 0:
            out[word] = (rest / norm).astype(np.float32)
    return out


def pulls(
    question: QuestionVectors, words: Sequence[str], paper_vector: np.ndarray
) -> dict[str, float]:
    """How much closer (cosine) the question comes to the paper's vector without each word;
    words the question's pass did not see (cut at the model's limit) are left out."""
    base = float(question.vector @ paper_vector)
    return {
        word: float(question.without_word[word] @ paper_vector) - base
        for word in words
        if word in question.without_word
    }
