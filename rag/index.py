"""Chunking, embedding and storage: the only module that imports chromadb.

Two collections: `<name>_chunks` (one vector per abstract chunk) and `<name>_papers` (one
record per paper, holding its abstract, link and content hash). A paper record is written
only after all of its chunks, so a record with the current hash means a complete paper;
an interrupted ingest simply redoes the papers it had not finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.corpus import content_hash
from rag.embeddings import LocalEmbeddings, count_tokens
from rag.errors import IndexBusyError, IndexMissingError, StorageError
from rag.lexical import LexicalIndex
from rag.settings import Settings
from rag.text import split_sentences
from rag.types import Chunk, IngestReport, Paper

_GET_PAGE = 2000


def chunk_paper(
    paper: Paper, max_tokens: int, count: Callable[[str], int] = count_tokens
) -> list[Chunk]:
    """Sentence-aligned chunks of about `max_tokens`, overlapping by one sentence."""
    sentences = split_sentences(paper.abstract) or [paper.abstract]
    sizes = [count(s) for s in sentences]
    chunks: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > max_tokens:
            chunks.append(current)
            overlap = current[-1]
            current, total = ([overlap], sizes[overlap]) if sizes[overlap] < max_tokens // 2 else ([], 0)
        current.append(i)
        total += size
    if current and (not chunks or current != chunks[-1][-len(current):]):
        chunks.append(current)
    return [
        Chunk(
            id=f"{paper.id}:{n}",
            paper_id=paper.id,
            position=n,
            text=" ".join(sentences[i] for i in members),
        )
        for n, members in enumerate(chunks)
    ]


def chunk_input(paper: Paper, chunk: Chunk) -> str:
    """What the model embeds: the title gives every chunk its context."""
    return f"{paper.title}. {chunk.text}"


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _paper_from_record(pid: str, document: str | None, meta: dict[str, Any]) -> Paper:
    authors = str(meta.get("authors") or "")
    return Paper(
        id=pid,
        title=str(meta.get("title", "")),
        abstract=document or "",
        url=str(meta.get("url", "")),
        source=str(meta.get("source", "")),
        authors=tuple(a for a in authors.split("; ") if a),
        date=str(meta.get("date", "")),
    )


@dataclass
class DenseMatch:
    paper_id: str
    score: float
    chunks: list[str]


class PaperIndex:
    """The stored index: dense chunks in Chroma, papers beside them, BM25 over papers."""

    def __init__(self, settings: Settings, embeddings: LocalEmbeddings, *, create: bool) -> None:
        import chromadb

        self.settings = settings
        self.embeddings = embeddings
        name = settings.index.collection
        if settings.chroma_url:
            self.location = settings.chroma_url
            self._client = self._http_client(chromadb, settings.chroma_url)
            key = hashlib.sha1(f"{settings.chroma_url}|{name}".encode()).hexdigest()[:12]
            self._lexical_path = settings.data_dir / "cache" / key / "lexical.pkl"
            self._lock_path: Path | None = None
        else:
            db = settings.resolved_db_dir
            self.location = str(db)
            if not create and not (db / "chroma.sqlite3").exists():
                raise IndexMissingError(
                    f"No index at {db}. Build it with `paperchat ingest` (the bundled corpus) "
                    "or `paperchat ingest PATH` for your own papers."
                )
            if create:
                self._ensure_writable(db)
            self._client = chromadb.PersistentClient(path=str(db), settings=_chroma_settings())
            self._lexical_path = db / "lexical.pkl"
            self._lock_path = db / ".ingest.lock"
        space = {"hnsw": {"space": "cosine"}}
        get = self._client.get_or_create_collection if create else self._get_collection
        self._chunks = get(name=f"{name}_chunks", configuration=space, embedding_function=None)
        self._papers = get(name=f"{name}_papers", configuration=space, embedding_function=None)
        self._lexical: LexicalIndex | None = None

    def _get_collection(self, **kwargs: Any) -> Any:
        try:
            return self._client.get_collection(
                name=kwargs["name"], embedding_function=kwargs["embedding_function"]
            )
        except Exception as exc:  # chromadb raises NotFoundError/ValueError across versions
            raise IndexMissingError(
                f"No paperchat index in {self.location}. Run `paperchat ingest` first."
            ) from exc

    @staticmethod
    def _http_client(chromadb: Any, url: str) -> Any:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise StorageError(f"PAPERCHAT_CHROMA_URL={url!r} is not an http(s) URL like http://host:8000.")
        try:
            return chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as exc:
            raise StorageError(
                f"Cannot reach the Chroma server at {url} ({type(exc).__name__}). Start it with "
                "`chroma run --path DIR --port PORT` or fix PAPERCHAT_CHROMA_URL."
            ) from exc

    @staticmethod
    def _ensure_writable(db: Path) -> None:
        try:
            db.mkdir(parents=True, exist_ok=True)
            probe = db / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the index directory {db} ({exc.strerror}). Choose another "
                "with --db DIR or PAPERCHAT_DB_DIR."
            ) from exc

    # ---- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer per local directory: Chroma's local mode is not multi-process safe."""
        if self._lock_path is None:
            yield
            return
        handle = self._lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise IndexBusyError(
                f"Another ingest ({holder}) is writing to {self.location}. Wait for it to "
                "finish, then run this command again; nothing was changed."
            ) from exc
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _GET_PAGE):
            got = self._papers.get(ids=list(ids[start : start + _GET_PAGE]), include=["metadatas"])
            for pid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                found[pid] = str((meta or {}).get("hash", ""))
        return found

    def ingest(
        self, papers: Sequence[Paper], on_progress: Callable[[int], None] | None = None
    ) -> IngestReport:
        """Add new papers, replace changed ones, skip unchanged; then refresh BM25."""
        with self.writer_lock():
            stored = self.stored_hashes([p.id for p in papers])
            report = IngestReport()
            todo: list[Paper] = []
            for paper in papers:
                old = stored.get(paper.id)
                if old == content_hash(paper):
                    report.unchanged += 1
                    if on_progress:
                        on_progress(1)
                    continue
                report.updated += old is not None
                report.new += old is None
                todo.append(paper)
            batch = max(1, self.settings.index.batch_size // 3)
            for start in range(0, len(todo), batch):
                group = todo[start : start + batch]
                self._write_papers(group, replace=[p.id for p in group if p.id in stored])
                if on_progress:
                    on_progress(len(group))
            if todo or not self._lexical_current():
                self.rebuild_lexical()
            report.papers = self._papers.count()
            report.chunks = self._chunks.count()
            return report

    def _write_papers(self, papers: list[Paper], replace: list[str]) -> None:
        chunks = [chunk_paper(p, self.settings.index.chunk_tokens) for p in papers]
        inputs = [chunk_input(p, c) for p, cs in zip(papers, chunks, strict=True) for c in cs]
        vectors = self.embeddings.embed_array(inputs)
        if replace:
            self._chunks.delete(where={"paper_id": {"$in": replace}})
        flat = [c for cs in chunks for c in cs]
        self._chunks.upsert(
            ids=[c.id for c in flat],
            embeddings=vectors,
            documents=[c.text for c in flat],
            metadatas=[{"paper_id": c.paper_id, "position": c.position} for c in flat],
        )
        paper_vectors, offset = [], 0
        for cs in chunks:
            mean = vectors[offset : offset + len(cs)].mean(axis=0)
            paper_vectors.append(mean / (np.linalg.norm(mean) or 1.0))
            offset += len(cs)
        self._papers.upsert(
            ids=[p.id for p in papers],
            embeddings=np.asarray(paper_vectors, dtype=np.float32),
            documents=[p.abstract for p in papers],
            metadatas=[
                {
                    "title": p.title,
                    "url": p.url,
                    "source": p.source,
                    "authors": "; ".join(p.authors),
                    "date": p.date,
                    "hash": content_hash(p),
                    "chunks": len(cs),
                }
                for p, cs in zip(papers, chunks, strict=True)
            ],
        )

    # ---- lexical index -------------------------------------------------------------

    def _generation(self) -> str:
        meta = self._client.get_collection(name=self._papers.name, embedding_function=None).metadata
        return str((meta or {}).get("generation", ""))

    def _lexical_current(self) -> bool:
        saved = LexicalIndex.load(self._lexical_path)
        return (
            saved is not None
            and saved.generation == self._generation()
            and len(saved.ids) == self._papers.count()
        )

    def all_papers(self) -> Iterator[Paper]:
        total = self._papers.count()
        for offset in range(0, total, _GET_PAGE):
            got = self._papers.get(
                limit=_GET_PAGE, offset=offset, include=["documents", "metadatas"]
            )
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            ):
                yield _paper_from_record(pid, doc, dict(meta or {}))

    def rebuild_lexical(self) -> LexicalIndex:
        papers = list(self.all_papers())
        generation = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"
        lexical = LexicalIndex.build(
            [p.id for p in papers], [(p.title, p.abstract) for p in papers], generation
        )
        lexical.save(self._lexical_path)
        self._papers.modify(metadata={"generation": generation})
        self._lexical = lexical
        return lexical

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index, loaded once; rebuilt when it disagrees with Chroma."""
        if self._lexical is None:
            saved = LexicalIndex.load(self._lexical_path)
            if (
                saved is not None
                and saved.generation == self._generation()
                and len(saved.ids) == self._papers.count()
            ):
                self._lexical = saved
            else:
                self._lexical = self.rebuild_lexical()
        return self._lexical

    def refresh(self) -> bool:
        """Reload BM25 if another process changed the index; True when it did."""
        if self._lexical is not None and self._lexical.generation == self._generation():
            return False
        self._lexical = None
        _ = self.lexical
        return True

    # ---- reading -------------------------------------------------------------------

    def count(self) -> int:
        return int(self._papers.count())

    def dense(self, vector: np.ndarray, n_chunks: int) -> list[DenseMatch]:
        """Papers of the nearest chunks, best chunk score first (cosine similarity)."""
        total = self._chunks.count()
        if total == 0:
            return []
        got = self._chunks.query(
            query_embeddings=[vector],
            n_results=min(n_chunks, total),
            include=["documents", "metadatas", "distances"],
        )
        by_paper: dict[str, DenseMatch] = {}
        for doc, meta, dist in zip(
            got["documents"][0], got["metadatas"][0], got["distances"][0], strict=False
        ):
            pid = str(meta["paper_id"])
            score = 1.0 - float(dist)
            match = by_paper.get(pid)
            if match is None:
                by_paper[pid] = DenseMatch(pid, score, [doc])
            else:
                match.chunks.append(doc)
        return sorted(by_paper.values(), key=lambda m: m.score, reverse=True)

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        if not ids:
            return {}
        got = self._papers.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            pid: _paper_from_record(pid, doc, dict(meta or {}))
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            )
        }

    def paper_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self._papers.get(ids=list(ids), include=["embeddings"])
        return {
            pid: np.asarray(vec, dtype=np.float32)
            for pid, vec in zip(got["ids"], got["embeddings"], strict=False)
        }
