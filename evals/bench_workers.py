"""What each measured step of `paperchat bench` runs in its own process: an ingest or a round of
questions, by paperchat or by the plain LangChain + Chroma baseline, printing its figures as
one JSON line on stdout (`python -m evals.bench --worker SPEC`; see evals.bench_phases).

Large runs may reuse sentence vectors instead of embedding every chunk (`ReuseEmbeddings`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from evals.measure import report_progress
from evals.metrics import percentile
from rag.corpus import load_corpus
from rag.settings import Settings
from rag.text import split_sentences
from rag.word_pull import QuestionVectors

KNOWN_QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"
# The answer must state this result. Not checked by title: synthetic papers recombine
# sentences, so a "variant" of another paper may carry this very sentence and rank first.
KNOWN_FACT = "62.54% NDCG"
_VARIANT = re.compile(r" \(variant \d+\)\.?$")


def make_encoder(backend: str, threads: int = 0) -> Any:
    from rag.embeddings import LocalEmbeddings

    return LocalEmbeddings(backend=backend, threads=threads)


class ReuseEmbeddings:
    """Documents as the normalised mean of cached sentence vectors; queries embedded for real.

    Every sentence of the synthetic corpus comes from the bundled abstracts and every title
    from a bundled title, so embedding those ~1,700 texts once gives a vector to every chunk
    of any N. Vectors are not the model's own for the chunk, but they lie in the same space
    with the same neighbourhood structure -- what index size, memory and latency depend on.
    Text pieces not in the cache (fragments cut by a character splitter) are skipped.
    """

    def __init__(self, encoder: Any, texts: Sequence[str]) -> None:
        self.encoder = encoder
        self.backend = f"{encoder.backend}+reuse"
        keys = sorted({self._key(t) for t in texts})
        vectors = encoder.embed_array(keys)
        self._cache = dict(zip(keys, vectors, strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return _VARIANT.sub("", text.strip()).rstrip(".")

    def embed_array(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        missing: list[int] = []
        for row, text in enumerate(texts):
            found = [self._cache[k] for k in map(self._key, _pieces(text)) if k in self._cache]
            if found:
                mean = np.mean(found, axis=0)
                out[row] = mean / (np.linalg.norm(mean) or 1.0)
            else:
                missing.append(row)
        if missing:
            out[missing] = self.encoder.embed_array([texts[i] for i in missing])
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.embed_query(text)  # type: ignore[no-any-return]

    # What an ingest and a question also ask of their embeddings (rag.embeddings): the cached
    # vectors need no worker processes; questions and late interaction use the real model.
    def embed_later(self, texts: list[str]) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        future.set_result(self.embed_array(texts))
        return future

    def worker_processes(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def query_vectors(self, text: str) -> QuestionVectors:
        return self.encoder.query_vectors(text)  # type: ignore[no-any-return]

    def token_vectors(self, texts: list[str]) -> list[np.ndarray]:
        return self.encoder.token_vectors(texts)  # type: ignore[no-any-return]


def _pieces(text: str) -> list[str]:
    head, sep, rest = text.partition("\n")
    parts = [head, *split_sentences(rest)] if sep else []
    return parts or split_sentences(text)


def _reuse_texts() -> list[str]:
    base, _ = load_corpus(None, Settings.model_construct().corpus.search_url_template)
    return [p.title for p in base] + [s for p in base for s in split_sentences(p.abstract)]


def _embeddings(spec: dict[str, Any]) -> Any:
    encoder = make_encoder(spec["backend"])
    return ReuseEmbeddings(encoder, _reuse_texts()) if spec.get("reuse") else encoder


def _settings_for(spec: dict[str, Any]) -> Settings:
    settings = Settings(data_dir=Path(spec["data_dir"]), db_dir=Path(spec["db"]))
    settings.embedding.backend = spec["backend"]
    return settings


def _questions() -> list[tuple[str, list[Any]]]:
    from rag.inputs import parse_history

    path = Path(__file__).parent / "sets" / "dev.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(r["question"], parse_history(r.get("history") or [])) for r in rows]


def _percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95 and mean of `samples` in ms, and their count; `samples` must not be empty."""
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    if p50 is None or p95 is None:
        raise ValueError("no timed questions: --rounds must be at least 1")
    return {
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "mean_ms": round(float(np.mean(samples)), 2),
        "n": len(samples),
    }


def worker_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from rag.pipeline import Assistant

    t0 = time.perf_counter()
    embeddings = _embeddings(spec)
    assistant = Assistant.create(_settings_for(spec), embeddings)
    ready = time.perf_counter()
    report = assistant.ingest([Path(spec["corpus"])], on_progress=report_progress)
    done = time.perf_counter()
    return {
        "backend": embeddings.backend,
        "setup_s": round(ready - t0, 2),
        "ingest_s": round(done - ready, 2),
        "papers": report.papers,
        "chunks": report.chunks,
        "papers_per_s": round(report.new / (done - ready), 2) if report.new else None,
    }


def worker_asks(spec: dict[str, Any]) -> dict[str, Any]:
    from rag.pipeline import Assistant

    # One thread for query embedding: a single short text gains nothing from two, and on a
    # busy machine torch's thread spinning made it 10x slower (measured: 12 ms vs 120+ ms).
    encoder = make_encoder(spec["backend"], threads=1)
    assistant = Assistant.open(_settings_for(spec), embeddings=encoder)
    questions = _questions()
    rounds = spec.get("rounds", 3)
    planned, asked = len(questions) * (rounds + 1), 0
    for question, history in questions:  # warm-up: model, HNSW pages, caches
        assistant.ask(question, history, mode="extractive")
        asked += 1
        report_progress(asked, planned)
    total: list[float] = []
    retrieval: list[float] = []
    for _ in range(rounds):
        for question, history in questions:
            t = time.perf_counter()
            answer = assistant.ask(question, history, mode="extractive")
            total.append((time.perf_counter() - t) * 1000)
            retrieval.append(answer.timings_ms.get("retrieve", 0.0))
            asked += 1
            report_progress(asked, planned)
    known = assistant.ask(KNOWN_QUESTION, mode="extractive")
    return {
        "ask": _percentiles(total),
        "retrieve": _percentiles(retrieval),
        "known_answer_ok": bool(known.citations) and KNOWN_FACT in known.text,
    }


def _baseline_store(spec: dict[str, Any], embeddings: Any) -> Any:
    from langchain_chroma import Chroma

    return Chroma(
        collection_name="baseline",
        embedding_function=embeddings,
        persist_directory=spec["db"],
        collection_metadata={"hnsw:space": "cosine"},
    )


def worker_baseline_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t0 = time.perf_counter()
    embeddings = _embeddings(spec)
    store = _baseline_store(spec, embeddings)
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
    records = [json.loads(line) for line in Path(spec["corpus"]).read_text().splitlines()]
    ready = time.perf_counter()
    texts: list[str] = []
    metas: list[dict[str, str]] = []
    papers_done: list[int] = []  # per chunk: papers complete once it is written
    for number, record in enumerate(records, start=1):
        for piece in splitter.split_text(f"{record['title']}\n{record['abstract']}"):
            texts.append(piece)
            metas.append({"title": record["title"]})
            papers_done.append(number - 1)
        if papers_done:
            papers_done[-1] = number
    for start in range(0, len(texts), 256):
        store.add_texts(texts[start : start + 256], metadatas=metas[start : start + 256])
        report_progress(papers_done[min(start + 256, len(texts)) - 1], len(records))
    done = time.perf_counter()
    return {
        "backend": embeddings.backend,
        "setup_s": round(ready - t0, 2),
        "ingest_s": round(done - ready, 2),
        "papers": len(records),
        "chunks": len(texts),
        "papers_per_s": round(len(records) / (done - ready), 2),
    }


def worker_baseline_asks(spec: dict[str, Any]) -> dict[str, Any]:
    store = _baseline_store(spec, make_encoder(spec["backend"], threads=1))
    questions = [q for q, _ in _questions()]
    rounds = spec.get("rounds", 3)
    planned, asked = len(questions) * (rounds + 1), 0
    for question in questions:
        store.similarity_search(question, k=5)
        asked += 1
        report_progress(asked, planned)
    samples: list[float] = []
    for _ in range(rounds):
        for question in questions:
            t = time.perf_counter()
            store.similarity_search(question, k=5)
            samples.append((time.perf_counter() - t) * 1000)
            asked += 1
            report_progress(asked, planned)
    docs = store.similarity_search(KNOWN_QUESTION, k=5)
    return {
        "ask": _percentiles(samples),
        "known_answer_ok": bool(docs) and KNOWN_FACT in docs[0].page_content,
    }


def worker_baseline_cold(spec: dict[str, Any]) -> dict[str, Any]:
    store = _baseline_store(spec, make_encoder(spec["backend"]))
    docs = store.similarity_search(KNOWN_QUESTION, k=5)
    return {"first_title": docs[0].metadata["title"] if docs else ""}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": worker_ingest,
    "asks": worker_asks,
    "baseline_ingest": worker_baseline_ingest,
    "baseline_asks": worker_baseline_asks,
    "baseline_cold": worker_baseline_cold,
}


def main(argv: Sequence[str]) -> int:
    """`--worker SPEC`: run the worker SPEC's "kind" names; print its result as one JSON line."""
    if len(argv) != 2 or argv[0] != "--worker":
        sys.exit("usage: paperchat bench ...  (this module runs bench workers)")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = json.loads(argv[1])
    result = WORKERS[spec["kind"]](spec)
    print(json.dumps(result))
    return 0
