"""Chunking, embedding and storage: the only module that imports chromadb.

Two collections: `<name>_chunks` (one vector per abstract chunk) and `<name>_papers` (one
record per paper, holding its abstract, link and content hash). A paper record is written
only after all of its chunks, so a record with the current hash means a complete paper;
an interrupted ingest simply redoes the papers it had not finished.

The BM25 index is derived data: a pickle beside the local index (or, with a Chroma server,
in DATA_DIR/cache/<server+collection>/ of each app server), tagged with the "generation"
stamp kept in the papers collection's metadata. Only an ingest changes the stamp: to
`writing-...` before its first write, to a fresh value after its last. A reader whose
BM25 file carries another stamp or another paper count rebuilds it from Chroma, so the
file can never silently disagree with the vectors.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import itertools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunk_vectors import ChunkVectors, chunk_vectors_path
from rag.corpus import ID_SCHEME, content_hash, paper_id
from rag.embeddings import LocalEmbeddings
from rag.errors import IndexBusyError, IndexMissingError, PaperchatError, StorageError
from rag.lexical import LexicalIndex, lexical_path
from rag.model_files import count_tokens, tokenizer
from rag.settings import Settings
from rag.text import split_sentences
from rag.types import Chunk, CorpusSummary, IngestReport, Paper

_GET_PAGE = 2000
# Disk use of one stored chunk with its share of the paper record, rounded up (1,682 papers
# in 2,285 chunks took 16 MB).
_BYTES_PER_CHUNK = 8 * 1024
# Stamp of an ingest in progress (or one that died): readers keep what they have meanwhile.
WRITING = "writing-"
# Held while a process opens the local store or writes vectors (see _vector_files_lock).
VECTOR_FILES_LOCK = ".vectors.lock"
# How often a long-running reader asks the store whether the index changed.
DEFAULT_REFRESH_S = 30.0


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
            id=f"{paper.id}:{n}",
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


def chroma_settings() -> Any:
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
        year=str(meta.get("year", "")),
        venue=str(meta.get("venue", "")),
        doi=str(meta.get("doi", "")),
        arxiv_id=str(meta.get("arxiv_id", "")),
        link_kind=str(meta.get("link_kind", "")),
    )


def _chroma_instances() -> dict[str, Any] | None:
    """chromadb's cache of one running instance per local path (private to chromadb,
    hence the guard: None if a release renames it, and reads then never go stale-free)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    cache = getattr(SharedSystemClient, "_identifier_to_system", None)
    return cache if isinstance(cache, dict) else None


def storage_failure(exc: BaseException, location: str) -> StorageError | None:
    """What a failed read or write of the store means for the user, for the failures whose
    cause is known (read-only or full disk, damaged database); None for the others."""
    text = str(exc).lower()
    if "readonly database" in text or "read-only file system" in text:
        return StorageError(
            f"The index at {location} is read-only ({exc}). Its store (Chroma) must write to "
            "its directory even to answer questions: make the directory writable, or copy it "
            "somewhere writable and point --db (PAPERCHAT_DB_DIR) at the copy."
        )
    if "malformed" in text or "not a database" in text or "deserializ" in text:
        return StorageError(
            f"The index at {location} is damaged ({exc}). Rebuild it from the files it was "
            "built from with `paperchat ingest --rebuild` (same --db); the damaged copy is "
            "kept beside it."
        )
    if "no space left" in text or "disk is full" in text or "error in compaction" in text:
        return StorageError(
            f"The disk holding the index at {location} is full, or was during the last write "
            f"({exc}). Free some space, then run the same command again: the papers stored "
            "so far are kept, and questions are answered again once there is room."
        )
    return None


def _storage_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Known storage failures of a PaperIndex method become StorageError with what to do."""

    @functools.wraps(method)
    def wrapper(self: PaperIndex, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except PaperchatError:
            raise
        except Exception as exc:
            failure = storage_failure(exc, self.location)
            if failure is None:
                raise
            raise failure from exc

    return wrapper


@contextlib.contextmanager
def _vector_files_lock(db: Path) -> Iterator[None]:
    """One process at a time may touch the local vector files.

    Chroma's local mode is not process-safe: besides an ingest's writes, every process that
    opens the directory replays the store's pending log into its copy of the HNSW graphs
    and saves them (measured: a plain `paperchat ask` rewrites both graph files). A server
    that loaded the graphs while another process was saving them answered from torn files
    (a paper ranked first by BM25 was missing from the dense results), or died in native
    code. So opening (with its replay) and each write batch take this short lock; the
    reads in between need none. An ingest holds it per batch, not per run: a server
    started mid-ingest waits for one batch, not the whole ingest.
    """
    try:
        handle = (db / VECTOR_FILES_LOCK).open("a+")
    except OSError:
        yield  # a read-only directory: no process can write the files either
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_connection_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError) or type(seen).__module__.startswith(
            ("httpx", "httpcore")
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_chroma_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("chromadb") or "chromadb" in repr(type(exc))


def _page(store: _Store, offset: int) -> Any:
    return store.papers.get(limit=_GET_PAGE, offset=offset, include=["documents", "metadatas"])


def _chunk_page(store: _Store, offset: int) -> Any:
    return store.chunks.get(limit=_GET_PAGE, offset=offset, include=["embeddings", "metadatas"])


def _new_stamp() -> str:
    return f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"


@dataclass
class DenseMatch:
    paper_id: str
    score: float
    chunks: list[ChunkRef]


def _by_paper(chunks: Iterable[tuple[str, float, ChunkRef]]) -> list[DenseMatch]:
    """Chunks (paper id, cosine, ref) grouped by paper, best chunk score first."""
    by_paper: dict[str, DenseMatch] = {}
    for pid, score, ref in chunks:
        match = by_paper.get(pid)
        if match is None:
            by_paper[pid] = DenseMatch(pid, score, [ref])
        else:
            match.chunks.append(ref)
    return sorted(by_paper.values(), key=lambda m: m.score, reverse=True)


@dataclass
class _Embedding:
    """A write group whose vectors are on their way, one Future per embedding step."""

    papers: list[Paper]
    chunks: list[list[Chunk]]
    steps: list[Future[np.ndarray]]

    def vectors(self, on_progress: Callable[[int], None] | None) -> np.ndarray:
        # A paper counts once its last chunk is embedded: it is stored just after.
        ends = np.cumsum([len(cs) for cs in self.chunks])
        parts, reported, done = [], 0, 0
        for step in self.steps:
            parts.append(step.result())
            done += len(parts[-1])
            complete = int(np.searchsorted(ends, done, side="right"))
            if on_progress and complete > reported:
                on_progress(complete - reported)
                reported = complete
        return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


@dataclass
class _Store:
    """One Chroma client with its two collections, and the reads using it."""

    client: Any
    chunks: Any
    papers: Any
    system: Any = None  # the local Chroma instance, stopped when the store is retired
    chunks_replayed: bool = False  # see PaperIndex._replay_chunks
    users: int = 0
    retired: bool = False

    def close(self) -> None:
        if self.system is not None:
            with contextlib.suppress(Exception):  # best effort: it only frees memory
                self.system.stop()
            self.system = None


class PaperIndex:
    """The stored index: dense chunks in Chroma, papers beside them, BM25 over papers."""

    def __init__(self, settings: Settings, embeddings: LocalEmbeddings, *, create: bool) -> None:
        import chromadb

        self.settings = settings
        self.embeddings = embeddings
        self._lock_path: Path | None = None
        self._lock_handle: Any = None
        self._lock_depth = 0
        self._lexical: LexicalIndex | None = None
        self._lexical_guard = threading.Lock()
        self._checked_at = time.monotonic()
        self._lexical_path = lexical_path(settings)
        self._exact: ChunkVectors | None = None
        self._exact_guard = threading.Lock()
        self._exact_path = chunk_vectors_path(settings)
        self._store_guard = threading.Lock()
        self._db: _Store
        if settings.chroma_url:
            self.location = settings.chroma_url
        else:
            db = settings.resolved_db_dir
            self.location = str(db)
            if not create and not (db / "chroma.sqlite3").exists():
                raise IndexMissingError(
                    f"No index at {db}. Build it with `paperchat ingest` (the bundled corpus) "
                    "or `paperchat ingest PATH` for your own papers."
                )
            self._lock_path = db / ".ingest.lock"
            if create:
                self._ensure_writable(db)
        # Creating a local client can write (a new sqlite file, migrations) and so can
        # get_or_create: a second writer must stop before either, not in the middle.
        # A reader (create=False) never takes the lock: it must answer while an ingest runs.
        try:
            with self.writer_lock() if create else contextlib.nullcontext():
                self._db = self._connect(chromadb, create=create)
        except PaperchatError:
            raise
        except Exception as exc:
            failure = storage_failure(exc, self.location)
            if failure is not None:
                raise failure from exc
            if not _is_chroma_error(exc):
                raise
            raise StorageError(
                f"Cannot open the index at {self.location} ({type(exc).__name__}: {exc}). If "
                "it is damaged, rebuild it with `paperchat ingest --rebuild` (same --db)."
            ) from exc

    def _connect(self, chromadb: Any, *, create: bool, fresh: bool = False) -> _Store:
        """A client and the two collections. `fresh`: a new Chroma instance for the local
        directory, which reads the files as another process left them (chromadb shares one
        instance per path in a process, and an instance keeps the vectors it loaded)."""
        if self.settings.chroma_url:
            client = self._http_client(chromadb, self.settings.chroma_url)
            return self._collections(client, create=create, system=None)
        with self._vector_files():
            return self._connect_local(chromadb, create=create, fresh=fresh)

    def _connect_local(self, chromadb: Any, *, create: bool, fresh: bool) -> _Store:
        path = str(self.settings.resolved_db_dir)
        cache = _chroma_instances() if fresh else None
        if cache is not None:
            # Dropping the cached instance makes the next client start its own; the old
            # one goes on serving whoever holds it (reads in flight, other handles).
            cache.pop(path, None)
        client = chromadb.PersistentClient(path=path, settings=chroma_settings())
        # ...and this one stays private, so retiring it can stop it.
        system = cache.pop(path, None) if cache is not None else None
        store = self._collections(client, create=create, system=system)
        # The first read of a collection replays Chroma's log and saves its graph: done inside
        # the lock, so later reads never write. The chunks only when first needed
        # (_replay_chunks): questions read the exact copy, so most readers never do.
        store.papers.count()
        return store

    def _replay_chunks(self) -> None:
        store = self._db
        if not store.chunks_replayed:
            with self._vector_files():
                store.chunks.count()
            store.chunks_replayed = True

    def _vector_files(self) -> contextlib.AbstractContextManager[None]:
        if self.settings.chroma_url:
            return contextlib.nullcontext()  # a server serialises its own files
        return _vector_files_lock(self.settings.resolved_db_dir)

    def _collections(self, client: Any, *, create: bool, system: Any) -> _Store:
        settings = self.settings
        name = settings.index.collection

        def get(**kwargs: Any) -> Any:
            if create:
                return client.get_or_create_collection(**kwargs)
            return self._get_collection(client, **kwargs)

        chunks = {"hnsw": {"space": "cosine", "ef_search": settings.index.ef_search}}
        # Read by id only, never searched: a sparse graph is cheap to build (51k vectors
        # written in 12 s instead of 31 s with Chroma's default graph).
        papers = {"hnsw": {"space": "cosine", "ef_construction": 16, "max_neighbors": 4}}
        return _Store(
            client=client,
            chunks=get(name=f"{name}_chunks", configuration=chunks, embedding_function=None),
            papers=get(name=f"{name}_papers", configuration=papers, embedding_function=None),
            system=system,
        )

    # The current store (self._db); a reader's reopen() swaps it as a whole.
    @property
    def _client(self) -> Any:
        return self._db.client

    @property
    def _chunks(self) -> Any:
        return self._db.chunks

    @property
    def _papers(self) -> Any:
        return self._db.papers

    @contextlib.contextmanager
    def _reading(self) -> Iterator[_Store]:
        """The current store, kept open until the read ends even if reopen() retires it."""
        with self._store_guard:
            store = self._db
            store.users += 1
        try:
            yield store
        finally:
            with self._store_guard:
                store.users -= 1
                finished = store.retired and store.users == 0
            if finished:
                store.close()

    def reopen(self) -> None:
        """Read the local index afresh: after another process wrote to it, the vectors
        this process loaded lack the new papers (and asking for them by id fails)."""
        if self.settings.chroma_url:
            return  # a server holds one current copy for every client
        import chromadb

        store = self._connect(chromadb, create=False, fresh=True)
        with self._store_guard:
            old, self._db = self._db, store
            old.retired = True
            finished = old.users == 0
        if finished:
            old.close()

    def _get_collection(self, client: Any, **kwargs: Any) -> Any:
        try:
            return client.get_collection(
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
            raise StorageError(
                f"PAPERCHAT_CHROMA_URL={url!r} is not an http(s) URL like http://host:8000."
            )
        try:
            return chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=chroma_settings(),
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
        """One writer per local directory: Chroma's local mode is not multi-process safe.

        Non-blocking: a second ingest stops at once with IndexBusyError instead of waiting
        behind a run that may take an hour. Re-entrant within one PaperIndex. A Chroma
        server serialises writes itself, so server mode takes no lock here.
        """
        if self._lock_path is None:
            yield
            return
        if self._lock_depth == 0:
            self._lock_handle = self._acquire(self._lock_path)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None

    def _acquire(self, path: Path) -> Any:
        try:
            handle = path.open("a+")
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the index directory {path.parent} ({exc.strerror}). Choose "
                "another with --db DIR or PAPERCHAT_DB_DIR."
            ) from exc
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
        # The lock is the flock, not the file: a holder killed with -9 releases it.
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        return handle

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _GET_PAGE):
            got = self._papers.get(ids=list(ids[start : start + _GET_PAGE]), include=["metadatas"])
            for pid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                found[pid] = str((meta or {}).get("hash", ""))
        return found

    @_storage_errors
    def ingest(
        self, papers: Sequence[Paper], on_progress: Callable[[int], None] | None = None
    ) -> IngestReport:
        """Add new papers, replace changed ones, skip unchanged; then refresh BM25.

        Safe to kill at any point: batches are upserts keyed by paper and chunk ids, and a
        paper counts as stored only once its record (written after its chunks) carries the
        current content hash, so re-running the same command finishes the job.
        """
        with self.writer_lock():
            self._replay_chunks()
            report = IngestReport()
            report.migrated = self.migrate_ids()
            stored = self.stored_hashes([p.id for p in papers])
            todo: list[Paper] = []
            for paper in papers:
                old = stored.get(paper.id)
                if old == content_hash(paper):
                    report.unchanged += 1
                    continue
                report.updated += old is not None
                report.new += old is None
                todo.append(paper)
            if on_progress:
                # Always, even 0: the first call starts the bar, its rate counts real work only.
                on_progress(report.unchanged)
            if todo:
                self._set_generation(f"{WRITING}{_new_stamp()}")
                self._apply_ef_search()
            self._embed_and_store(todo, set(stored), on_progress)
            if (
                todo
                or report.migrated
                or self._generation().startswith(WRITING)
                or not self._lexical_current()
            ):
                self.rebuild_lexical(stamp=True)
            report.papers = self._papers.count()
            report.chunks = self._chunks.count()
            return report

    # ---- id scheme -------------------------------------------------------------------

    def id_scheme(self) -> int:
        """The paper-id scheme of the stored papers: 1 for indexes from before
        rag.corpus.ID_SCHEME was recorded (or an empty one never ingested into)."""
        try:
            return int(self._metadata().get("id_scheme", 1))
        except (TypeError, ValueError):
            return 1

    def migrate_ids(self) -> int:
        """Re-key papers stored under an older id scheme; the number re-keyed.

        Vectors and records are moved, not re-embedded. Each paper's new chunks and record
        are written before its old ones are deleted, and the scheme is recorded only at the
        end, so a killed migration simply runs again. Papers whose old ids collided (titles
        without ASCII letters) were already one record: it keeps its title, and re-ingesting
        the files adds the others.
        """
        if self.id_scheme() >= ID_SCHEME:
            return 0
        with self.writer_lock():
            self._replay_chunks()
            moves: dict[str, list[tuple[str, int]]] = {}
            total = self._papers.count()
            for offset in range(0, total, _GET_PAGE):
                got = self._papers.get(
                    limit=_GET_PAGE, offset=offset, include=["metadatas", "documents"]
                )
                for pid, doc, meta in zip(
                    got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
                ):
                    try:
                        new = paper_id(str((meta or {}).get("title", "")))
                    except PaperchatError:
                        continue  # no usable title: left as it is, still answerable
                    if new != pid:
                        moves.setdefault(new, []).append((pid, len(doc or "")))
            if moves:
                self._set_generation(f"{WRITING}{_new_stamp()}")
            for new, olds in moves.items():
                # Two old records with one new id (e.g. "ﬁnd" and "find"): keep the longer.
                keep = max(olds, key=lambda old: old[1])[0]
                with self._vector_files():
                    self._move_paper(keep, new, [old for old, _ in olds])
            self._update_metadata(id_scheme=ID_SCHEME)
            return sum(len(olds) for olds in moves.values())

    def _move_paper(self, old: str, new: str, drop: list[str]) -> None:
        record = self._papers.get(ids=[old], include=["documents", "metadatas", "embeddings"])
        chunks = self._chunks.get(where={"paper_id": old}, include=["metadatas", "embeddings"])
        if chunks["ids"]:
            metas = [{**dict(m or {}), "paper_id": new} for m in chunks["metadatas"] or []]
            self._chunks.upsert(
                ids=[f"{new}:{m.get('position', n)}" for n, m in enumerate(metas)],
                embeddings=np.asarray(chunks["embeddings"], dtype=np.float32),
                metadatas=metas,
            )
        self._papers.upsert(
            ids=[new],
            embeddings=np.asarray(record["embeddings"], dtype=np.float32),
            documents=record["documents"],
            metadatas=record["metadatas"],
        )
        gone = [pid for pid in drop if pid != new]
        if gone:
            self._papers.delete(ids=gone)
            self._chunks.delete(where={"paper_id": {"$in": gone}})

    def _upsert(self, collection: Any, **columns: Any) -> None:
        """One upsert, in slices under the store's largest batch (5,461 records locally):
        a write group can exceed it when papers have many chunks."""
        limit = int(self._client.get_max_batch_size())
        total = len(columns["ids"])
        for start in range(0, total, limit):
            collection.upsert(**{k: v[start : start + limit] for k, v in columns.items()})

    def _check_room(self, chunks: int) -> None:
        """Stop before a write that could fill the disk (see index.min_free_mb)."""
        if self.settings.chroma_url:
            return
        needed = self.settings.index.min_free_mb * 2**20 + chunks * _BYTES_PER_CHUNK
        free = shutil.disk_usage(self.settings.resolved_db_dir).free
        if free < needed:
            raise StorageError(
                f"The disk holding the index at {self.location} is nearly full "
                f"({free / 2**20:.0f} MiB free; the next write needs about "
                f"{needed / 2**20:.0f} MiB, including the reserve of index.min_free_mb). Free "
                "some space, then run the same command again: the papers stored so far are "
                "kept and answerable, and it goes on from there."
            )

    def _apply_ef_search(self) -> None:
        """Bring an index created with another HNSW search breadth to the configured one."""
        wanted = self.settings.index.ef_search
        current = (self._chunks.configuration or {}).get("hnsw") or {}
        if current.get("ef_search") != wanted:
            self._chunks.modify(configuration={"hnsw": {"ef_search": wanted}})

    def _batches(self, papers: Sequence[Paper]) -> Iterator[tuple[list[Paper], list[list[Chunk]]]]:
        """Whole papers, grouped until a group holds index.write_chunks chunks."""
        limit = self.settings.index.write_chunks
        group: list[Paper] = []
        chunks: list[list[Chunk]] = []
        size = 0
        for paper in papers:
            group.append(paper)
            chunks.append(chunk_paper(paper, self.settings.index.chunk_tokens))
            size += len(chunks[-1])
            if size >= limit:
                yield group, chunks
                group, chunks, size = [], [], 0
        if group:
            yield group, chunks

    def _embed_and_store(
        self,
        papers: Sequence[Paper],
        stored: set[str],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Write group k while the encoder already embeds group k+1.

        Writes stay in the main thread, in order, one at a time; with more than one group
        the vectors come from worker processes (rag.encoder_processes says why not threads).
        An interruption loses only groups not yet written, whose papers have no record yet.
        """
        groups = self._batches(papers)
        ahead = [group for group in (next(groups, None), next(groups, None)) if group]
        parallel = (
            self.embeddings.worker_processes() if len(ahead) > 1 else contextlib.nullcontext()
        )
        with parallel:
            queued: collections.deque[_Embedding] = collections.deque()
            for group, chunks in itertools.chain(ahead, groups):
                queued.append(self._embed(group, chunks))
                if len(queued) > 1:
                    self._store(queued.popleft(), stored, on_progress)
            while queued:
                self._store(queued.popleft(), stored, on_progress)

    def _embed(self, papers: list[Paper], chunks: list[list[Chunk]]) -> _Embedding:
        inputs = [chunk_input(p, c) for p, cs in zip(papers, chunks, strict=True) for c in cs]
        # In steps of index.batch_size chunks, so progress moves while a group is embedded.
        step = self.settings.index.batch_size
        steps = [
            self.embeddings.embed_later(inputs[start : start + step])
            for start in range(0, len(inputs), step)
        ]
        return _Embedding(papers, chunks, steps)

    def _store(
        self,
        embedding: _Embedding,
        stored: set[str],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Chunks first, then the paper records: a record means its chunks are all stored."""
        papers, chunks = embedding.papers, embedding.chunks
        self._check_room(sum(len(cs) for cs in chunks))
        vectors = embedding.vectors(on_progress)
        with self._vector_files():
            self._write(papers, chunks, vectors, stored)

    def _write(
        self, papers: list[Paper], chunks: list[list[Chunk]], vectors: np.ndarray, stored: set[str]
    ) -> None:
        replace = [p.id for p in papers if p.id in stored]
        if replace:
            self._chunks.delete(where={"paper_id": {"$in": replace}})
        flat = [c for cs in chunks for c in cs]
        # No chunk text: it is rebuilt from the abstract, and Chroma's full-text index over
        # documents made a write 2.6x slower (12.5k chunks: 9.8 s vs 3.8 s).
        self._upsert(
            self._chunks,
            ids=[c.id for c in flat],
            embeddings=vectors,
            metadatas=[
                {"paper_id": c.paper_id, "position": c.position, "first": c.first, "last": c.last}
                for c in flat
            ],
        )
        paper_vectors, offset = [], 0
        for cs in chunks:
            mean = vectors[offset : offset + len(cs)].mean(axis=0)
            paper_vectors.append(mean / (np.linalg.norm(mean) or 1.0))
            offset += len(cs)
        self._upsert(
            self._papers,
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
                    "year": p.year,
                    "venue": p.venue,
                    "doi": p.doi,
                    "arxiv_id": p.arxiv_id,
                    "link_kind": p.link_kind,
                    "hash": content_hash(p),
                    "chunks": len(cs),
                }
                for p, cs in zip(papers, chunks, strict=True)
            ],
        )

    # ---- lexical index -------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        # Asked afresh every time: the stamp is how other processes' writes become visible.
        meta = self._read(
            lambda store: (
                store.client.get_collection(
                    name=store.papers.name, embedding_function=None
                ).metadata
            )
        )
        return dict(meta or {})

    def _generation(self) -> str:
        return str(self._metadata().get("generation", ""))

    def _update_metadata(self, **values: Any) -> None:
        # Merged, not replaced: the stamp and the id scheme live side by side.
        # (hnsw:* keys are configuration that modify() refuses to change.)
        kept = {k: v for k, v in self._metadata().items() if not k.startswith("hnsw:")}
        self._papers.modify(metadata={**kept, **values})

    def _set_generation(self, generation: str) -> None:
        self._update_metadata(generation=generation)

    def _agrees(self, lexical: LexicalIndex | None, generation: str) -> bool:
        return (
            lexical is not None
            and lexical.generation == generation
            and len(lexical.ids) == self._papers.count()
        )

    def _usable(self, lexical: LexicalIndex) -> bool:
        """A saved BM25 file a reader may start from: the store's current one, or, while an
        ingest writes, the last finished one (every paper it names is still stored, and
        the graphs being written are not read: see rag.chunk_vectors)."""
        generation = self._generation()
        if generation.startswith(WRITING) and not lexical.generation.startswith(WRITING):
            return True
        return self._agrees(lexical, generation)

    def _lexical_current(self) -> bool:
        return self._agrees(LexicalIndex.load(self._lexical_path), self._generation())

    def all_papers(self) -> Iterator[Paper]:
        total = self.count()
        for offset in range(0, total, _GET_PAGE):
            got = self._read(functools.partial(_page, offset=offset))
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            ):
                yield _paper_from_record(pid, doc, dict(meta or {}))

    def rebuild_lexical(self, *, stamp: bool = False) -> LexicalIndex:
        """BM25 over every stored paper, saved atomically.

        Only a writer stamps a new generation; a reader tags its copy with the stamp it
        found, so several app servers rebuilding never make each other rebuild again.
        """
        generation = _new_stamp() if stamp else self._generation()
        lexical = LexicalIndex.from_papers(self.all_papers(), generation)
        try:
            lexical.save(self._lexical_path)
            if stamp:
                exact = self._build_exact(generation)
                if exact is not None:
                    exact.save(self._exact_path)
                else:
                    self._exact_path.unlink(missing_ok=True)
        except OSError:
            if stamp:
                raise
            # A reader on a read-only index still answers; it rebuilds again next start.
        # Ours before the stamp is: a refresh in another thread then sees nothing new.
        self._lexical = lexical
        if stamp:
            self._set_generation(generation)
        return lexical

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index, loaded once; rebuilt when it disagrees with Chroma."""
        current = self._lexical
        if current is not None:
            return current
        with self._lexical_guard:
            lexical = self._lexical
            if lexical is None:
                lexical = LexicalIndex.load(self._lexical_path)
                if lexical is None or not self._usable(lexical):
                    lexical = self.rebuild_lexical()
                self._lexical = lexical
            return lexical

    def refresh(self) -> bool:
        """Reload BM25 if another process changed the index; True when it did.

        Costs one metadata read when nothing changed. While an ingest is running (or after
        one died) the stamp reads `writing-...`: a reader keeps the BM25 it has until the
        ingest finishes, rather than rebuilding after every batch.
        """
        self._checked_at = time.monotonic()
        generation = self._generation()
        current = self._lexical
        if current is not None and (
            current.generation == generation or generation.startswith(WRITING)
        ):
            return False
        with self._lexical_guard:
            if self._lexical is not current:
                return True  # another thread refreshed meanwhile
            if current is not None:
                # Another process wrote: the vectors this process loaded lack its papers.
                self.reopen()
            saved = LexicalIndex.load(self._lexical_path)
            self._lexical = saved if self._agrees(saved, generation) else self.rebuild_lexical()
        return True

    def maybe_refresh(self, max_age_s: float = DEFAULT_REFRESH_S) -> bool:
        """`refresh()` at most once every `max_age_s` seconds; for long-running servers.

        Call it before each question: between checks it costs a clock read.
        """
        if time.monotonic() - self._checked_at < max_age_s:
            return False
        return self.refresh()

    # ---- reading -------------------------------------------------------------------

    def _read(self, what: Callable[[_Store], Any]) -> Any:
        """A read of the store; a Chroma error is retried once on a freshly opened store
        (the files may have changed under this process), then reported as StorageError."""
        for attempt in (1, 2):
            try:
                with self._reading() as store:
                    return what(store)
            except PaperchatError:
                raise
            except Exception as exc:
                if self.settings.chroma_url and _is_connection_error(exc):
                    raise StorageError(
                        f"Cannot reach the Chroma server at {self.location} "
                        f"({type(exc).__name__}). Start it (`chroma run --path DIR --port "
                        "PORT`) or fix PAPERCHAT_CHROMA_URL; questions work again as soon as "
                        "it answers."
                    ) from exc
                if not _is_chroma_error(exc):
                    raise
                failure = storage_failure(exc, self.location)
                if failure is not None:
                    raise failure from exc
                if attempt == 2 or self.settings.chroma_url:
                    raise StorageError(
                        f"Cannot read the index at {self.location} ({type(exc).__name__}: "
                        f"{exc}). Ask again; if this persists, rebuild it with "
                        "`paperchat ingest --rebuild`."
                    ) from exc
                self.reopen()
        raise AssertionError("unreachable")

    def count(self) -> int:
        return int(self._read(lambda store: store.papers.count()))

    def summary(self) -> CorpusSummary:
        """Paper count, source files and a few titles, kept with (and as current as) BM25."""
        return self.lexical.summary

    def _build_exact(self, generation: str) -> ChunkVectors | None:
        """Every chunk vector, read by id (not by graph search); None above the size where
        an exact search is cheap, or for an index whose chunks do not record their span."""
        limit = self.settings.index.exact_search_max_chunks
        self._replay_chunks()
        total = int(self._read(lambda store: store.chunks.count()))
        if total > limit:
            return None
        rows: list[tuple[str, tuple[int, int], np.ndarray]] = []
        for offset in range(0, total, _GET_PAGE):
            got = self._read(functools.partial(_chunk_page, offset=offset))
            for meta, vector in zip(got["metadatas"] or [], got["embeddings"], strict=False):
                if not meta or "first" not in meta:
                    return None  # written before chunks recorded their sentences
                span = (int(meta["first"]), int(meta["last"]))
                rows.append((str(meta["paper_id"]), span, np.asarray(vector, dtype=np.float32)))
        return ChunkVectors.build(generation, rows)

    def _exact_vectors(self) -> ChunkVectors | None:
        """The exact-search copy of the BM25 index's generation, or None (graph search)."""
        generation = self.lexical.generation
        current = self._exact
        if current is not None and current.generation == generation:
            return current
        with self._exact_guard:
            if self._exact is not None and self._exact.generation == generation:
                return self._exact
            exact = ChunkVectors.load(self._exact_path)
            if exact is None or exact.generation != generation:
                # An index from before this file, or one being written: built from the
                # store, and saved only when it is the store's current generation.
                exact = None if generation.startswith(WRITING) else self._build_exact(generation)
                if exact is not None and generation == self._generation():
                    with contextlib.suppress(OSError):  # a read-only index still answers
                        exact.save(self._exact_path)
            self._exact = exact
            return exact

    def dense(self, vector: np.ndarray, n_chunks: int) -> list[DenseMatch]:
        """Papers of the nearest chunks, best chunk score first (cosine similarity)."""
        exact = self._exact_vectors()
        if exact is not None:
            return _by_paper(exact.nearest(vector, n_chunks))
        self._replay_chunks()
        # No count() first: Chroma returns what there is (none for an empty index), and
        # counting 434k chunks cost 21 ms of a 50 ms question at 100k papers.
        got = self._read(
            lambda store: store.chunks.query(
                query_embeddings=[vector],
                n_results=n_chunks,
                include=["documents", "metadatas", "distances"],
            )
        )
        return _by_paper(
            (
                str(meta["paper_id"]),
                1.0 - float(dist),
                doc if doc is not None else (int(meta["first"]), int(meta["last"])),
            )
            for doc, meta, dist in zip(
                got["documents"][0], got["metadatas"][0], got["distances"][0], strict=False
            )
        )

    def same_papers(self, papers: Sequence[Paper]) -> list[Paper]:
        """Stored papers that may be copies of `papers`: same id, DOI or arXiv id."""
        found: dict[str, Paper] = {}
        wanted = {
            "doi": sorted({p.doi for p in papers if p.doi}),
            "arxiv_id": sorted({p.arxiv_id for p in papers if p.arxiv_id}),
        }
        ids = [p.id for p in papers]
        for start in range(0, len(ids), _GET_PAGE):
            found.update(self.papers(ids[start : start + _GET_PAGE]))
        for key, values in wanted.items():
            for start in range(0, len(values), _GET_PAGE):
                got = self._papers.get(
                    where={key: {"$in": values[start : start + _GET_PAGE]}},
                    include=["documents", "metadatas"],
                )
                for pid, doc, meta in zip(
                    got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
                ):
                    found[pid] = _paper_from_record(pid, doc, meta or {})
        return list(found.values())

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        if not ids:
            return {}
        got = self._read(
            lambda store: store.papers.get(ids=list(ids), include=["documents", "metadatas"])
        )
        return {
            pid: _paper_from_record(pid, doc, dict(meta or {}))
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            )
        }

    def paper_vectors(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
        """Whole-abstract vector and title of each paper, in one read."""
        if not ids:
            return {}
        got = self._read(
            lambda store: store.papers.get(ids=list(ids), include=["embeddings", "metadatas"])
        )
        return {
            pid: (np.asarray(vec, dtype=np.float32), str((meta or {}).get("title", "")))
            for pid, vec, meta in zip(
                got["ids"], got["embeddings"], got["metadatas"] or [], strict=False
            )
        }
