"""Storage and search in Chroma: the only module that imports chromadb.

It opens the store (a local directory or a Chroma server), reads and writes it, and turns
its known failures into StorageError with what to do. What to write and when is rag.ingest's
job; what is derived from the store (BM25, the exact-search copy) is rag.derived's.

Two collections: `<name>_chunks` (one vector per abstract chunk) and `<name>_papers` (one
record per paper, holding its abstract, link and content hash). A paper record is written
only after all of its chunks, so a record with the current hash means a complete paper;
an interrupted ingest simply redoes the papers it had not finished. The papers collection's
metadata also holds the index's stamps (the BM25 generation, the paper-id scheme).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import ChunkRef, chunk_id
from rag.errors import IndexMissingError, PaperchatError, StorageError
from rag.papers import content_hash
from rag.settings import Settings
from rag.types import Chunk, Paper

_GET_PAGE = 2000
# Disk use of one stored chunk with its share of the paper record, rounded up (1,682 papers
# in 2,285 chunks took 16 MB).
_BYTES_PER_CHUNK = 8 * 1024
# Held while a process opens the local store or writes vectors (see _vector_files_lock).
VECTOR_FILES_LOCK = ".vectors.lock"

# One chunk found by a search: its paper, its cosine similarity and what rag.chunking makes
# its text from.
ChunkHit = tuple[str, float, ChunkRef]
# One stored chunk with its vector: its paper and sentence span.
ChunkRow = tuple[str, tuple[int, int], np.ndarray]


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
    # Chroma's compactor names no cause when it cannot purge its log; on a full disk every
    # later open fails that way until there is room, so it counts only when the disk is full.
    compactor_stuck = "purging logs" in text and _nearly_full(location)
    if (
        "no space left" in text
        or "disk is full" in text
        or "error in compaction" in text
        or compactor_stuck
    ):
        return StorageError(
            f"The disk holding the index at {location} is full, or was during the last write "
            f"({exc}). Free some space, then run the same command again: the papers stored "
            "so far are kept, and questions are answered again once there is room."
        )
    return None


def _nearly_full(location: str) -> bool:
    """Whether the disk of a local index directory has less than 1 MiB free (False for a
    Chroma server: its disk is not ours to see)."""
    if "://" in location:
        return False
    path = Path(location)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < 2**20
    except OSError:
        return False


@contextlib.contextmanager
def storage_errors(location: str) -> Iterator[None]:
    """Known storage failures inside become StorageError with what to do."""
    try:
        yield
    except PaperchatError:
        raise
    except Exception as exc:
        failure = storage_failure(exc, location)
        if failure is None:
            raise
        raise failure from exc


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


def _page(store: _Opened, offset: int) -> Any:
    return store.papers.get(limit=_GET_PAGE, offset=offset, include=["documents", "metadatas"])


def _chunk_row(meta: Any, vector: Any) -> ChunkRow | None:
    """A stored chunk as (paper id, sentence span, vector); None for a chunk written before
    chunks recorded their sentences."""
    if not meta or "first" not in meta:
        return None
    span = (int(meta["first"]), int(meta["last"]))
    return str(meta["paper_id"]), span, np.asarray(vector, dtype=np.float32)


def _chunk_page(store: _Opened, offset: int) -> Any:
    return store.chunks.get(limit=_GET_PAGE, offset=offset, include=["embeddings", "metadatas"])


def _chunks_by_id(store: _Opened, ids: list[str]) -> Any:
    return store.chunks.get(ids=ids, include=["embeddings", "metadatas"])


@dataclass
class _Opened:
    """One Chroma client with its two collections, and the reads using it."""

    client: Any
    chunks: Any
    papers: Any
    system: Any = None  # the local Chroma instance, stopped when the store is retired
    chunks_replayed: bool = False  # see ChromaStore.replay_chunks
    users: int = 0
    retired: bool = False

    def close(self) -> None:
        if self.system is not None:
            with contextlib.suppress(Exception):  # best effort: it only frees memory
                self.system.stop()
            self.system = None


class ChromaStore:
    """The index's two Chroma collections, opened locally or over HTTP.

    Reads go through `_read` (retried once on a freshly opened store, failures named);
    an ingest's own reads and writes use the current collections directly.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        create: bool,
        opening: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        """Open the store; `create` makes what is missing. `opening` is held while the
        client and collections are created (a writer passes its lock)."""
        import chromadb

        self.settings = settings
        self._store_guard = threading.Lock()
        self._db: _Opened
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
            if create:
                self._ensure_writable(db)
        try:
            with opening if opening is not None else contextlib.nullcontext():
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

    # ---- opening -------------------------------------------------------------------

    def _connect(self, chromadb: Any, *, create: bool, fresh: bool = False) -> _Opened:
        """A client and the two collections. `fresh`: a new Chroma instance for the local
        directory, which reads the files as another process left them (chromadb shares one
        instance per path in a process, and an instance keeps the vectors it loaded)."""
        if self.settings.chroma_url:
            client = self._http_client(chromadb, self.settings.chroma_url)
            return self._collections(client, create=create, system=None)
        with self._vector_files():
            return self._connect_local(chromadb, create=create, fresh=fresh)

    def _connect_local(self, chromadb: Any, *, create: bool, fresh: bool) -> _Opened:
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
        # (replay_chunks): questions read the exact copy, so most readers never do.
        store.papers.count()
        return store

    def replay_chunks(self) -> None:
        """Replay the chunk collection's log once per opened store, inside the vector-files
        lock: before the first read of the chunks, and by an ingest before it writes."""
        store = self._db
        if not store.chunks_replayed:
            with self._vector_files():
                store.chunks.count()
            store.chunks_replayed = True

    def _vector_files(self) -> contextlib.AbstractContextManager[None]:
        if self.settings.chroma_url:
            return contextlib.nullcontext()  # a server serialises its own files
        return _vector_files_lock(self.settings.resolved_db_dir)

    def _collections(self, client: Any, *, create: bool, system: Any) -> _Opened:
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
        return _Opened(
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
    def _reading(self) -> Iterator[_Opened]:
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

    # ---- reading -------------------------------------------------------------------

    def _read(self, what: Callable[[_Opened], Any]) -> Any:
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

    def metadata(self) -> dict[str, Any]:
        """The papers collection's metadata, where the index keeps its stamps."""
        # Asked afresh every time: the stamp is how other processes' writes become visible.
        meta = self._read(
            lambda store: (
                store.client.get_collection(
                    name=store.papers.name, embedding_function=None
                ).metadata
            )
        )
        return dict(meta or {})

    def count(self) -> int:
        return int(self._read(lambda store: store.papers.count()))

    def all_papers(self) -> Iterator[Paper]:
        total = self.count()
        for offset in range(0, total, _GET_PAGE):
            got = self._read(functools.partial(_page, offset=offset))
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            ):
                yield _paper_from_record(pid, doc, dict(meta or {}))

    def chunk_vectors(self, limit: int) -> list[ChunkRow] | None:
        """Every chunk with its vector, read by id (not by graph search); None when there
        are more than `limit` chunks, or for an index whose chunks do not record their
        sentences (written before they did)."""
        self.replay_chunks()
        total = int(self._read(lambda store: store.chunks.count()))
        if total > limit:
            return None
        rows: list[ChunkRow] = []
        for offset in range(0, total, _GET_PAGE):
            got = self._read(functools.partial(_chunk_page, offset=offset))
            for meta, vector in zip(got["metadatas"] or [], got["embeddings"], strict=False):
                row = _chunk_row(meta, vector)
                if row is None:
                    return None
                rows.append(row)
        return rows

    def chunks_of(self, most: dict[str, int]) -> list[ChunkRow]:
        """The chunks of these papers with their vectors, read by id (a chunk's id is its
        paper's and its position; `most[paper]` bounds its positions): for the papers a
        nearest-chunk search missed, where there is no exact-search copy."""
        ids = [chunk_id(pid, n) for pid, count in most.items() for n in range(count)]
        rows: list[ChunkRow] = []
        for start in range(0, len(ids), _GET_PAGE):
            page = ids[start : start + _GET_PAGE]
            got = self._read(functools.partial(_chunks_by_id, ids=page))
            for meta, vector in zip(got["metadatas"] or [], got["embeddings"], strict=False):
                row = _chunk_row(meta, vector)
                if row is not None:
                    rows.append(row)
        return rows

    def nearest_chunks(self, vector: np.ndarray, n_chunks: int) -> list[ChunkHit]:
        """The nearest chunks by the chunk collection's graph, best first."""
        self.replay_chunks()
        # No count() first: Chroma returns what there is (none for an empty index), and
        # counting 434k chunks cost 21 ms of a 50 ms question at 100k papers.
        got = self._read(
            lambda store: store.chunks.query(
                query_embeddings=[vector],
                n_results=n_chunks,
                include=["documents", "metadatas", "distances"],
            )
        )
        return [
            (
                str(meta["paper_id"]),
                1.0 - float(dist),
                doc if doc is not None else (int(meta["first"]), int(meta["last"])),
            )
            for doc, meta, dist in zip(
                got["documents"][0], got["metadatas"][0], got["distances"][0], strict=False
            )
        ]

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

    # ---- an ingest's reads and writes (the current collections, directly) ----------

    def paper_count(self) -> int:
        return int(self._papers.count())

    def chunk_count(self) -> int:
        return int(self._chunks.count())

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _GET_PAGE):
            got = self._papers.get(ids=list(ids[start : start + _GET_PAGE]), include=["metadatas"])
            for pid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                found[pid] = str((meta or {}).get("hash", ""))
        return found

    def titles(self) -> Iterator[tuple[str, str, int]]:
        """Every stored paper's id, title and abstract length."""
        total = self._papers.count()
        for offset in range(0, total, _GET_PAGE):
            got = self._papers.get(
                limit=_GET_PAGE, offset=offset, include=["metadatas", "documents"]
            )
            for pid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=False
            ):
                yield pid, str((meta or {}).get("title", "")), len(doc or "")

    def update_metadata(self, **values: Any) -> None:
        # Merged, not replaced: the stamp and the id scheme live side by side.
        # (hnsw:* keys are configuration that modify() refuses to change.)
        kept = {k: v for k, v in self.metadata().items() if not k.startswith("hnsw:")}
        self._papers.modify(metadata={**kept, **values})

    def apply_ef_search(self) -> None:
        """Bring an index created with another HNSW search breadth to the configured one."""
        wanted = self.settings.index.ef_search
        current = (self._chunks.configuration or {}).get("hnsw") or {}
        if current.get("ef_search") != wanted:
            self._chunks.modify(configuration={"hnsw": {"ef_search": wanted}})

    def check_room(self, chunks: int) -> None:
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

    def write(
        self, papers: list[Paper], chunks: list[list[Chunk]], vectors: np.ndarray, stored: set[str]
    ) -> None:
        """Chunks first, then the paper records: a record means its chunks are all stored.

        Papers in `stored` lose their old chunks first. Takes the vector-files lock.
        """
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

    def move_paper(self, old: str, new: str, drop: list[str]) -> None:
        """Re-key a paper with its chunks and vectors (nothing re-embedded): the new copy is
        written before the records in `drop` are deleted. Takes the vector-files lock."""
        with self._vector_files():
            self._move_paper(old, new, drop)

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
