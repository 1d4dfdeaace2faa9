"""The question-answering pipeline every entry point uses: validate, retrieve, answer.

`Assistant.stream` yields text pieces as they are ready and ends with the full Answer;
`Assistant.ask` returns just the Answer. The CLI, the web chat and the eval runner all go
through here, so what is measured is what users get.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag.answer import extractive_answer
from rag.corpus import DuplicateMerger, LoadedCorpus, load_sources
from rag.embeddings import LocalEmbeddings
from rag.errors import IndexMissingError, InputError, PaperchatError, StorageError
from rag.index import PaperIndex
from rag.inputs import validate_question
from rag.lexical import lexical_path
from rag.missing import missing_note, missing_terms, pulling_away
from rag.retrieve import HybridRetriever, Retrieval, asked_names
from rag.settings import Settings
from rag.types import Answer, IngestReport, Paper, Turn

StreamEvent = str | Answer


class Assistant:
    """Holds the model, the index and the retriever; safe to share between chat sessions."""

    def __init__(self, settings: Settings, index: PaperIndex) -> None:
        self.settings = settings
        self.index = index
        self.retriever = HybridRetriever(index, settings.retrieval)
        self._llm: Any = None

    @classmethod
    def create(cls, settings: Settings, embeddings: LocalEmbeddings | None = None) -> Assistant:
        """Open the index for writing, creating it if needed (nothing is ingested)."""
        embeddings = embeddings or _embeddings(settings)
        return cls(settings, PaperIndex(settings, embeddings, create=True))

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        build_if_missing: bool = False,
        embeddings: LocalEmbeddings | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Assistant:
        """Open the index; with build_if_missing, ingest the bundled corpus when it is empty."""
        embeddings = embeddings or _embeddings(settings)
        # Only a missing index is created: opening an existing one is reading, and a reader
        # never takes the writer's lock (serve must answer while `paperchat ingest` runs).
        try:
            index = PaperIndex(settings, embeddings, create=build_if_missing and _missing(settings))
        except IndexMissingError:
            if not build_if_missing:
                raise
            # A database file without paperchat's collections (a first ingest that failed).
            index = PaperIndex(settings, embeddings, create=True)
        assistant = cls(settings, index)
        if index.count() == 0:
            if not build_if_missing:
                raise IndexMissingError(
                    f"The index at {index.location} holds no papers yet. Ingest papers first: "
                    "`paperchat ingest PATH` (or `paperchat ingest` for the bundled corpus)."
                )
            assistant.ingest(None, on_progress=on_progress)
        _ = index.lexical  # load (or repair) BM25 now, not on the first question
        return assistant

    def ingest(
        self,
        paths: Sequence[Path] | None,
        on_progress: Callable[[int, int], None] | None = None,
        *,
        skip_bad: bool = False,
    ) -> IngestReport:
        """Read every file first (a bad file changes nothing), then index the papers."""
        return self.ingest_loaded(read_papers(paths, self.settings, skip_bad), paths, on_progress)

    def ingest_loaded(
        self,
        loaded: LoadedCorpus,
        paths: Sequence[Path | None] | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Index papers read from `paths` (None, or None in it: the bundled corpus), and
        record the paths so that `paperchat ingest --rebuild` can read them again."""
        report = self.ingest_papers(loaded.papers, on_progress)
        report.merged += loaded.merged
        report.skipped += loaded.skipped
        report.notes = [*loaded.notes, *report.notes]
        record_sources(self.settings, list(paths) if paths else [None], loaded.formats)
        return report

    def ingest_papers(
        self,
        papers: Sequence[Paper],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Index papers read elsewhere (files, arXiv), merged with stored copies of them."""
        papers, merged, notes = self._merge_with_index(papers)
        total = len(papers)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if on_progress:
                on_progress(done, total)

        report = self.index.ingest(papers, on_progress=step)
        report.merged, report.notes = merged, notes
        return report

    def _merge_with_index(self, papers: Sequence[Paper]) -> tuple[list[Paper], int, list[str]]:
        """A paper already stored from another source (same DOI, arXiv id or title) is merged
        into the stored one, keeping the richer metadata. A file ingested again replaces its
        own papers as before, so a corrected abstract still replaces the old one."""
        stored = self.index.same_papers(papers) if papers else []
        if not stored:
            return list(papers), 0, []
        merger = DuplicateMerger()
        for paper in stored:
            merger.add(paper, quiet=True)
        by_id = {p.id: p for p in stored}
        out: dict[str, Paper] = {}
        merged = 0
        notes: list[str] = []
        for paper in papers:
            found = merger.find(paper)
            old = by_id.get(found[0]) if found else None
            new_sources = set(paper.source.split(", "))
            if old is None or set(old.source.split(", ")) <= new_sources:
                # New, or the same file(s) again: this copy is the paper (under the stored id).
                kept = paper if old is None else replace(paper, id=old.id)
                out[kept.id] = kept
                continue
            before = len(merger.notes)
            result = merger.add(paper)
            out[result.id] = result
            if result != old:
                merged += 1
                notes.extend(merger.notes[before:])
        return list(out.values()), merged, notes

    def resolve_mode(self, mode: str | None) -> str:
        mode = mode or self.settings.answer.mode
        if mode == "llm" and not self.settings.llm.configured:
            raise InputError(
                "LLM mode needs a model: set PAPERCHAT_LLM_MODEL (and OPENAI_API_KEY / "
                "OPENAI_BASE_URL for your endpoint), or use --mode extractive."
            )
        if mode == "auto":
            return "llm" if self.settings.llm.configured else "extractive"
        return mode

    def retrieve(
        self, question: str, history: Sequence[Turn] = (), k: int | None = None
    ) -> Retrieval:
        question = validate_question(question, self.settings.answer.max_question_chars)
        self.index.maybe_refresh(self.settings.index.refresh_s)  # another process may write
        return self.retriever.retrieve(question, history, k)

    def extractive(
        self, question: str, retrieval: Retrieval, k: int, history: Sequence[Turn] = ()
    ) -> Answer:
        return extractive_answer(
            question,
            retrieval.query,
            retrieval.hits,
            self.index.lexical,
            self.settings.answer,
            self.settings.retrieval,
            k,
            names=retrieval.names,
            history=history,
            dense_margin=retrieval.dense_margin,
        )

    def stream(
        self,
        question: str,
        history: Sequence[Turn] = (),
        k: int | None = None,
        mode: str | None = None,
    ) -> Iterator[StreamEvent]:
        """Text pieces as they are ready, then the complete Answer."""
        start = time.perf_counter()
        k = checked_k(k, self.settings)
        resolved = self.resolve_mode(mode)
        question = validate_question(question, self.settings.answer.max_question_chars)
        self.index.maybe_refresh(self.settings.index.refresh_s)  # another process may write
        note = ""
        query, query_history = question, history
        rewrite_ms: dict[str, float] = {}
        if resolved == "llm" and history:
            # The LLM rewrites a follow-up into a standalone question before retrieval.
            try:
                rewritten = self._llm_answerer().standalone_question(question, history)
                if rewritten is not None:
                    query, query_history = rewritten, ()
                rewrite_ms["rewrite"] = (time.perf_counter() - start) * 1000
            except PaperchatError as exc:
                note = f"{exc} Showing the extractive answer instead."
                resolved = "extractive"
        t = time.perf_counter()
        retrieval = self.retriever.retrieve(query, query_history, k)
        timings = {**rewrite_ms, **retrieval.timings_ms}
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        answer: Answer | None = None
        if resolved == "llm":
            try:
                for event in self._llm_answerer().stream(question, history, retrieval, k):
                    if isinstance(event, Answer):
                        answer = event
                    else:
                        yield event
            except PaperchatError as exc:
                note = f"{exc} Showing the extractive answer instead."
        if answer is None:
            t = time.perf_counter()
            answer = self.extractive(question, retrieval, k, history)
            timings["answer"] = (time.perf_counter() - t) * 1000
            yield from _pieces(answer.text)
        # The names this question asks about: a follow-up's carried names (the conversation's
        # papers) found the paper; "the second one" is not asking about the first one's name.
        answer.missing_terms = missing_terms(
            question, asked_names(question, ()), answer, self._pulled(question, retrieval, answer)
        )
        if answer.missing_terms:
            note = " ".join([note, missing_note(answer)]).strip()
        answer.note = " ".join(x for x in (answer.note, note) if x)
        answer.timings_ms = {**timings, **answer.timings_ms}
        answer.timings_ms["total"] = (time.perf_counter() - start) * 1000
        yield answer

    def _pulled(self, question: str, retrieval: Retrieval, answer: Answer) -> dict[str, list[str]]:
        """Each cited paper's words of the question that pull it away (rag.missing.pulling_away)."""
        threshold = self.settings.answer.missing_word_pull
        if retrieval.question is None or not answer.citations:
            return {}
        vectors = self.index.paper_vectors([c.paper_id for c in answer.citations])
        papers = {hit.paper.id: hit.paper for hit in answer.retrieved}
        return {
            pid: pulling_away(question, retrieval.question, papers[pid], vector, threshold)
            for pid, (vector, _) in vectors.items()
            if pid in papers
        }

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        k: int | None = None,
        mode: str | None = None,
    ) -> Answer:
        answer = None
        for event in self.stream(question, history, k, mode):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def _llm_answerer(self) -> Any:
        if self._llm is None:
            from rag.llm import LLMAnswerer

            self._llm = LLMAnswerer(self.settings, self)
        return self._llm

    def as_retriever(self, k: int = 5) -> Any:
        """A langchain_core BaseRetriever over this index: one Document per paper, the abstract
        as page_content, title/url/paper_id/score/evidence in metadata (rag/retriever.py)."""
        from rag.retriever import PaperRetriever

        return PaperRetriever(assistant=self, k=k)


def checked_k(k: Any, settings: Settings) -> int:
    """`k` as given (None: the setting), within the bounds RetrievalSettings.k declares."""
    if k is None:
        return settings.retrieval.k
    field = type(settings.retrieval).model_fields["k"]
    low = next(m.ge for m in field.metadata if getattr(m, "ge", None) is not None)
    high = next(m.le for m in field.metadata if getattr(m, "le", None) is not None)
    if isinstance(k, bool) or not isinstance(k, int) or not low <= k <= high:
        raise InputError(f"k (papers to use) must be a whole number from {low} to {high}, not {k!r}.")
    return k


def read_papers(
    paths: Sequence[Path | None] | None, settings: Settings, skip_bad: bool = False
) -> LoadedCorpus:
    """Every file read and checked: call before creating or changing an index. None in
    `paths` stands for the bundled corpus."""
    return load_sources(paths, settings.corpus.search_url_template, skip_bad=skip_bad)


# ---- what an index was built from, for `paperchat ingest --rebuild` ----------------------

SOURCES_FILE = "sources.json"


def _sources_path(settings: Settings) -> Path:
    return lexical_path(settings).with_name(SOURCES_FILE)


def _record(settings: Settings) -> Any:
    """The index's record (sources.json) as parsed, or None when it is missing or unreadable."""
    try:
        return json.loads(_sources_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _inputs(record: Any) -> list[Path | None] | None:
    try:
        return [None if item is None else Path(str(item)) for item in record["inputs"]]
    except (KeyError, TypeError):
        return None


def _formats(record: Any) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in dict(record.get("formats") or {}).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _fetches(record: Any) -> list[Path]:
    try:
        return [Path(str(item)) for item in record.get("arxiv") or []]
    except (TypeError, AttributeError):
        return []


def recorded_sources(settings: Settings) -> list[Path | None] | None:
    """The inputs of every ingest into this index (None stands for the bundled corpus), or
    None when nothing was recorded (an index built before paperchat kept this record)."""
    return _inputs(_record(settings))


def recorded_formats(settings: Settings) -> dict[str, str]:
    """The format each ingested file was read as, by file name ("zotero.json": "csl-json"):
    what the web chat's intro calls it. Empty when nothing was recorded."""
    return _formats(_record(settings))


def recorded_arxiv(settings: Settings) -> list[Path]:
    """The kept arXiv fetches of this index (see arxiv_folder), for `ingest --rebuild`."""
    return _fetches(_record(settings))


def arxiv_folder(settings: Settings) -> Path:
    """Where this index's arXiv fetches are kept once indexed: under DATA_DIR, not in the
    index directory, which a rebuild moves aside."""
    key = hashlib.sha1(str(_sources_path(settings).parent.resolve()).encode()).hexdigest()[:12]
    return Path(settings.data_dir) / "arxiv" / "kept" / key


def record_sources(
    settings: Settings,
    inputs: Sequence[Path | None],
    formats: dict[str, str] | None = None,
    arxiv: Sequence[Path] = (),
) -> None:
    """Add `inputs` (None: the bundled corpus), the `formats` they were read as and the
    kept `arxiv` fetches to the index's record; best effort."""
    old = _record(settings)  # read once for all three parts
    new = [None if p is None else p.resolve() for p in inputs]
    inputs = list(dict.fromkeys([*(_inputs(old) or []), *new]))
    known = {**_formats(old), **(formats or {})}
    fetches = list(dict.fromkeys(str(p) for p in [*_fetches(old), *arxiv]))
    path = _sources_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SOURCES_FILE}.{os.getpid()}")
        record: dict[str, Any] = {
            "inputs": [None if p is None else str(p) for p in inputs],
            "formats": known,
        }
        if fetches:
            record["arxiv"] = fetches
        text = json.dumps(record, indent=1, ensure_ascii=False)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # only --rebuild needs it, and it says so when it is missing


def rebuild(
    settings: Settings,
    extra: Sequence[Path] = (),
    on_progress: Callable[[int, int], None] | None = None,
    embeddings: LocalEmbeddings | None = None,
    *,
    skip_bad: bool = False,
) -> tuple[IngestReport, Path]:
    """A fresh local index from the files the old one recorded (plus `extra`); the old
    directory is moved aside, not deleted. -> (report, where the old one went). `skip_bad`
    as for ingest: a file first ingested with --skip-bad still holds its bad entries."""
    if settings.chroma_url:
        raise InputError(
            "--rebuild works on a local index. For a Chroma server, ingest your files into a "
            "new collection (PAPERCHAT_INDEX_COLLECTION) instead."
        )
    db = settings.resolved_db_dir
    recorded = recorded_sources(settings)
    fetches = recorded_arxiv(settings)
    if recorded is None and not extra and not fetches:
        raise StorageError(
            f"The index at {db} has no record of the files it was built from (indexes built "
            "before this version keep none). Name them: `paperchat ingest --rebuild PATH...`."
        )
    inputs = list(dict.fromkeys([*(recorded or []), *extra]))
    # All read before anything moves. No inputs but arXiv fetches: read no file (an empty
    # list would mean the bundled corpus).
    read = read_papers(inputs, settings, skip_bad) if inputs else LoadedCorpus([], 0)
    read, kept = _with_arxiv_fetches(read, fetches, settings)
    aside = db.with_name(f"{db.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    if db.exists():
        try:
            db.rename(aside)
        except OSError as exc:
            raise StorageError(f"Cannot move {db} aside to rebuild it ({exc.strerror}).") from exc
    assistant = Assistant.create(settings, embeddings)
    if inputs:
        report = assistant.ingest_loaded(read, inputs, on_progress)
    else:
        report = assistant.ingest_papers(read.papers, on_progress)
        report.merged += read.merged
        report.notes = [*read.notes, *report.notes]
    if kept:
        record_sources(settings, [], arxiv=kept)
    return report, aside


def _with_arxiv_fetches(
    read: LoadedCorpus, fetches: Sequence[Path], settings: Settings
) -> tuple[LoadedCorpus, list[Path]]:
    """`read` plus the papers of the kept arXiv fetches, merged as an ingest merges them;
    -> (papers, the fetches found). A fetch whose file is gone is named in the notes."""
    if not fetches:
        return read, []
    from rag.arxiv_api import read_kept

    merger = DuplicateMerger()
    for paper in read.papers:
        merger.add(paper, quiet=True)
    first_merge = merger.merged
    found: list[Path] = []
    gone: list[str] = []
    for path in fetches:
        if not path.is_file():
            gone.append(
                f"the arXiv papers kept in {path} are gone: fetch them again with "
                "`paperchat ingest --arxiv ...`"
            )
            continue
        found.append(path)
        for paper in read_kept(path, settings.corpus.search_url_template):
            merger.add(paper)
    return (
        replace(
            read,
            papers=list(merger.papers.values()),
            merged=read.merged + merger.merged - first_merge,
            notes=[*read.notes, *merger.notes, *gone],
        ),
        found,
    )


def _missing(settings: Settings) -> bool:
    if settings.chroma_url:
        return True  # get-or-create on a server takes no lock
    return not (settings.resolved_db_dir / "chroma.sqlite3").exists()


def _embeddings(settings: Settings) -> LocalEmbeddings:
    return LocalEmbeddings.from_settings(settings.embedding)


def _pieces(text: str) -> Iterator[str]:
    """Extractive text in sentence-sized pieces, so every interface streams the same way."""
    start = 0
    for index, char in enumerate(text):
        if char == "]" and (index + 1 == len(text) or text[index + 1] in " \n"):
            yield text[start : index + 1]
            start = index + 1
    if start < len(text):
        yield text[start:]
