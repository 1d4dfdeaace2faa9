"""Chunking: a paper's abstract as sentence-aligned chunks, and what the model embeds of each.

A stored chunk records only its sentence span (first, last): its text is rebuilt from the
abstract with `chunk_texts`, exactly as `chunk_paper` produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rag.model_files import count_tokens, tokenizer
from rag.text import split_sentences
from rag.types import Chunk, Paper


def chunk_id(paper_id: str, position: int) -> str:
    """A stored chunk's id: its paper's and its place in the paper (the store reads a paper's
    chunks by these ids)."""
    return f"{paper_id}:{position}"


def chunk_paper(
    paper: Paper, max_tokens: int, count: Callable[[str], int] = count_tokens
) -> list[Chunk]:
    """Sentence-aligned chunks of about `max_tokens`, overlapping by one sentence."""
    sentences = abstract_sentences(paper.abstract)
    sizes = _count_all(sentences) if count is count_tokens else [count(s) for s in sentences]
    chunks: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > max_tokens:
            chunks.append(current)
            overlap = current[-1]
            keep = sizes[overlap] < max_tokens // 2
            current, total = ([overlap], sizes[overlap]) if keep else ([], 0)
        current.append(i)
        total += size
    if current and (not chunks or current != chunks[-1][-len(current) :]):
        chunks.append(current)
    return [
        Chunk(
            id=chunk_id(paper.id, n),
            paper_id=paper.id,
            position=n,
            text=" ".join(sentences[i] for i in members),
            first=members[0],
            last=members[-1],
        )
        for n, members in enumerate(chunks)
    ]


def abstract_sentences(abstract: str) -> list[str]:
    return split_sentences(abstract) or [abstract]


# What the dense search returns per chunk: its sentence span, or (indexes written before
# spans were stored) its text.
ChunkRef = tuple[int, int] | str


def chunk_texts(abstract: str, refs: Sequence[ChunkRef]) -> list[str]:
    """Chunks' texts from their paper's abstract: exactly what `chunk_paper` produced."""
    if all(isinstance(ref, str) for ref in refs):
        return [str(ref) for ref in refs]
    sentences = abstract_sentences(abstract)  # split once for all of the paper's chunks
    return [
        ref if isinstance(ref, str) else " ".join(sentences[ref[0] : ref[1] + 1]) for ref in refs
    ]


def _count_all(sentences: list[str]) -> list[int]:
    # One tokenizer call per abstract, not per sentence: a tenth of chunking time at 100k.
    encoded = tokenizer().encode_batch(sentences, add_special_tokens=False)
    return [len(e.ids) for e in encoded]


def chunk_input(paper: Paper, chunk: Chunk) -> str:
    """What the model embeds: the title gives every chunk its context."""
    return f"{paper.title}. {chunk.text}"
