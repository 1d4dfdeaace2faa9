"""The configurations an eval run compares: paperchat itself and the textbook alternatives.

- `default`: exactly `Assistant.ask`, what `paperchat ask` and the web chat answer.
- `bm25` / `dense`: one retrieval signal alone (`HybridRetriever.retrieve(mode=...)`), with
  the same history handling and the same extractive answer over its hits.
- `langchain_basic`: the textbook pipeline -- RecursiveCharacterTextSplitter chunks of the
  abstracts in a Chroma vector store, `similarity_search(k=4)`, no fusion, no history; the
  answer is the retrieved chunks, citing their papers.

Every config ranks up to 20 papers (for recall@10 and mrr) and answers separately, so the
ranking metrics measure the retriever and the answer metrics measure what a user is shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from evals.configs import BASELINES
from evals.sets import EvalQuestion
from rag.errors import InputError
from rag.pipeline import Assistant
from rag.retrieve import contextualize
from rag.types import Answer

RANK_DEPTH = 20
# Textbook splitter parameters (the LangChain tutorials' defaults for prose).
_ADD_BATCH = 5000
LANGCHAIN_CHUNK_SIZE = 1000
LANGCHAIN_CHUNK_OVERLAP = 200
LANGCHAIN_K = 4
# Chunks fetched to rank 20 distinct papers for the ranking metrics (abstracts give 1-3 chunks).
LANGCHAIN_RANK_CHUNKS = 80


@dataclass
class Outcome:
    """What one config did with one question."""

    retrieved_titles: list[str]
    cited_titles: list[str]
    abstained: bool
    answer: str
    latency_ms: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Names the question insists on that the cited abstracts never mention (flagged answer).
    missing_terms: list[str] = field(default_factory=list)


class Config(Protocol):
    name: str

    def run(self, question: EvalQuestion) -> Outcome: ...


def _unique(titles: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(titles))


def _from_answer(answer: Answer, ranked: list[str], latency_ms: float) -> Outcome:
    return Outcome(
        retrieved_titles=ranked,
        cited_titles=_unique([c.title for c in answer.citations]),
        abstained=answer.abstained,
        answer=answer.text,
        latency_ms=latency_ms,
        note=answer.note,
        missing_terms=list(answer.missing_terms),
    )


class DefaultConfig:
    """`Assistant.ask(question, history, k, mode)`, unchanged.

    `Answer.retrieved` holds only the top k papers, so the 20-deep ranking for recall@10 and
    mrr is retrieved again from `Answer.query`, the exact query `ask` retrieved with (the
    contextualised follow-up, or the LLM's standalone rewrite). The retriever ranks 20
    papers whatever k is and k only cuts the list, so the first k are the papers `ask`
    retrieved (checked: a difference is flagged as `ranking_mismatch`). The latency is
    that of `ask` alone.
    """

    name = "default"

    def __init__(self, assistant: Assistant, k: int, mode: str) -> None:
        self.assistant, self.k, self.mode = assistant, k, mode

    def run(self, question: EvalQuestion) -> Outcome:
        start = time.perf_counter()
        answer = self.assistant.ask(question.question, question.history, self.k, self.mode)
        latency = (time.perf_counter() - start) * 1000
        # An LLM's rewrite of a follow-up is its own context; otherwise retrieve as ask did.
        rewritten = answer.query and answer.query != contextualize(
            question.question, question.history
        )
        query, history = (
            (answer.query, ()) if rewritten else (question.question, question.history)
        )
        ranking = self.assistant.retriever.retrieve(query, history, RANK_DEPTH)
        ranked = [h.paper.title for h in ranking.hits[:RANK_DEPTH]]
        outcome = _from_answer(answer, ranked, latency)
        shown = [h.paper.title for h in answer.retrieved]
        if ranked[: len(shown)] != shown:
            # Should not happen (same retriever, same input); flagged rather than hidden.
            outcome.extra["ranking_mismatch"] = shown
        return outcome


class RetrieverConfig:
    """One retrieval signal alone, then paperchat's extractive answer over its hits."""

    def __init__(self, assistant: Assistant, k: int, retrieval_mode: str, name: str) -> None:
        self.assistant, self.k, self.retrieval_mode, self.name = assistant, k, retrieval_mode, name

    def run(self, question: EvalQuestion) -> Outcome:
        start = time.perf_counter()
        retrieval = self.assistant.retriever.retrieve(
            question.question, question.history, self.k, mode=self.retrieval_mode
        )
        answer = self.assistant.extractive(
            question.question, retrieval, self.k, question.history
        )
        latency = (time.perf_counter() - start) * 1000
        return _from_answer(answer, [h.paper.title for h in retrieval.hits[:RANK_DEPTH]], latency)


class _PrecomputedEmbeddings(Embeddings):
    """The bundled model, serving document vectors already computed for these exact texts."""

    def __init__(self, base: Embeddings, vectors: dict[str, list[float]]) -> None:
        self.base, self.vectors = base, vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.base.embed_documents(missing), strict=True))
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.base.embed_query(text)


def _chunk_vectors(
    assistant: Assistant,
    texts: list[str],
    on_progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """Vectors of the baseline's chunks, cached under DATA_DIR/cache/evals.

    Embedding the corpus a second way is most of a run's time, and the chunks only change
    when the papers (or the model backend) do, so the cache is keyed by both.
    """
    embeddings = assistant.index.embeddings
    backend = str(getattr(embeddings, "backend", type(embeddings).__name__))
    digest = hashlib.sha1(backend.encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    path = (
        assistant.settings.data_dir
        / "cache"
        / "evals"
        / f"langchain_basic-{digest.hexdigest()[:16]}.npy"
    )
    with contextlib.suppress(OSError, ValueError):
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    parts = []
    batch = 32
    for start in range(0, len(texts), batch):
        parts.append(np.asarray(embeddings.embed_documents(texts[start : start + batch])))
        if on_progress:
            on_progress(min(start + batch, len(texts)), len(texts))
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    # A cache that cannot be written only costs time on the next run.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors.astype(np.float32))
    return vectors


class LangchainBasicConfig:
    """The textbook LangChain RAG retriever over the same papers and the same embeddings."""

    name = "langchain_basic"

    def __init__(
        self, assistant: Assistant, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        from langchain_chroma import Chroma
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        # rag.store owns chromadb; its settings helper turns telemetry off, and passing the
        # bundled embeddings keeps Chroma from fetching its default model.
        from rag.store import chroma_settings

        papers = list(assistant.index.all_papers())
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=LANGCHAIN_CHUNK_SIZE, chunk_overlap=LANGCHAIN_CHUNK_OVERLAP
        )
        docs = splitter.create_documents(
            [p.abstract for p in papers], metadatas=[{"title": p.title} for p in papers]
        )
        texts = [d.page_content for d in docs]
        vectors = _chunk_vectors(assistant, texts, on_progress)
        embeddings = _PrecomputedEmbeddings(
            assistant.index.embeddings, dict(zip(texts, vectors.tolist(), strict=True))
        )
        # An in-memory collection with a fresh name: nothing is written next to the index.
        self.store = Chroma(
            collection_name=f"eval_langchain_basic_{uuid.uuid4().hex[:8]}",
            embedding_function=embeddings,
            client_settings=chroma_settings(),
        )
        # In slices: a local Chroma takes at most 5,461 records per write.
        for start in range(0, len(docs), _ADD_BATCH):
            self.store.add_documents(docs[start : start + _ADD_BATCH])
        self.chunks = len(docs)

    def run(self, question: EvalQuestion) -> Outcome:
        start = time.perf_counter()
        docs = self.store.similarity_search(question.question, k=LANGCHAIN_K)
        titles = _unique([str(d.metadata["title"]) for d in docs])
        marks = {title: n for n, title in enumerate(titles, start=1)}
        answer = "\n\n".join(f"{d.page_content} [{marks[d.metadata['title']]}]" for d in docs)
        latency = (time.perf_counter() - start) * 1000
        deep = self.store.similarity_search(question.question, k=LANGCHAIN_RANK_CHUNKS)
        ranked = _unique([str(d.metadata["title"]) for d in deep])[:RANK_DEPTH]
        return Outcome(
            retrieved_titles=ranked,
            cited_titles=titles,
            abstained=False,
            answer=answer,
            latency_ms=latency,
        )

    def close(self) -> None:
        self.store.delete_collection()


def parse_compare(value: str | None) -> list[str]:
    """`--compare` -> baseline names; 'none' (or empty) means only the default config."""
    if value is None:
        return list(BASELINES)
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in (*BASELINES, "default")]
    if unknown or "none" in names:
        bad = ", ".join(unknown) if unknown else "'none' mixed with names"
        raise InputError(
            f"--compare: unknown {bad}. Use a comma list of {', '.join(BASELINES)}, or 'none'."
        )
    # `default` is always run; naming it is harmless.
    return _unique([n for n in names if n != "default"])


def build_config(
    name: str,
    assistant: Assistant,
    *,
    k: int,
    mode: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> Config:
    if name == "default":
        return DefaultConfig(assistant, k, mode)
    if name == "bm25":
        return RetrieverConfig(assistant, k, "lexical", name)
    if name == "dense":
        return RetrieverConfig(assistant, k, "dense", name)
    if name == "langchain_basic":
        return LangchainBasicConfig(assistant, on_progress)
    raise InputError(f"Unknown config {name!r}; use default, {', '.join(BASELINES)}.")
