"""Corpus readers: listing pages and JSON Lines here, BibTeX, RIS and CSL-JSON in rag.bibtex,
rag.ris and rag.csljson (picked by read_source) -> Paper (built by rag.papers, which all
readers share), with duplicates merged on DOI, arXiv id or title."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.errors import CorpusError
from rag.metadata import (
    duplicate_keys,
    merge_papers,
)
from rag.papers import SourceRead, make_paper, normalize_title
from rag.textfiles import JsonLine, read_json_lines, read_utf8
from rag.types import Paper

READABLE_SUFFIXES = (".txt", ".md", ".jsonl", ".json", ".bib", ".bibtex", ".ris")
# What a listing page's title and abstract paragraphs look like.
_TITLE_MAX_CHARS = 400
_ABSTRACT_MIN_CHARS = 60
_SENTENCE_END = re.compile(r"[.!?](\s|$)")
_NOT_UTF8 = "Convert it to UTF-8 and ingest again."
_UNREADABLE = "Check the path and permissions."


def _read_text(path: Path) -> str:
    return read_utf8(path, CorpusError, not_utf8_hint=_NOT_UTF8, unreadable_hint=_UNREADABLE)


def _looks_like_title(paragraph: str) -> bool:
    return "\n" not in paragraph.strip() and len(paragraph) <= _TITLE_MAX_CHARS


def _looks_like_abstract(paragraph: str, title: str) -> bool:
    return (
        len(paragraph) >= _ABSTRACT_MIN_CHARS
        and len(paragraph) > len(title)
        and _SENTENCE_END.search(paragraph) is not None
    )


def _paragraphs(text: str) -> tuple[list[str], list[int]]:
    """Blank-line separated paragraphs, stripped, with the line each starts on."""
    paragraphs: list[str] = []
    lines: list[int] = []
    start = 0
    for match in itertools.chain(re.finditer(r"\n\s*\n", text), [None]):
        end = match.start() if match else len(text)
        chunk = text[start:end]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip())
            paragraphs.append(chunk.strip())
            lines.append(text.count("\n", 0, start + lead) + 1)
        if match:
            start = match.end()
    return paragraphs, lines


def read_listing(path: Path, search_url_template: str) -> list[Paper]:
    """A listing page: header lines, then title paragraph / abstract paragraph pairs.

    Paragraphs that do not start a (title, abstract) pair -- page headers, date lines --
    are skipped, so a page with separators between days still reads.
    """
    text = _read_text(path)
    paragraphs, lines = _paragraphs(text)
    papers: list[Paper] = []
    i = 0
    while i < len(paragraphs) - 1:
        title, abstract = paragraphs[i], paragraphs[i + 1]
        if _looks_like_title(title) and _looks_like_abstract(abstract, title):
            papers.append(
                make_paper(
                    title,
                    abstract,
                    source=path.name,
                    search_url_template=search_url_template,
                    where=f"{path}, line {lines[i]}",
                )
            )
            i += 2
        else:
            i += 1
    return papers


# Format name -> how the error for an unknown file describes it.
FORMATS = {
    "bibtex": "BibTeX (.bib)",
    "ris": "RIS (.ris)",
    "csl-json": "CSL-JSON (.json: Zotero or Better BibTeX export)",
    "jsonl": "JSON Lines (.jsonl: title, abstract, optional url, authors, date, doi, arxiv_id)",
    "listing": "listing page (.txt, .md: title paragraph, then abstract paragraph)",
}


def format_label(kind: str) -> str:
    """A format's name for people: "bibtex" -> "BibTeX", "csl-json" -> "CSL-JSON"."""
    return FORMATS[kind].split(" (")[0] if kind in FORMATS else ""


def _jsonl_paper(line: JsonLine, search_url_template: str) -> Paper:
    record = line.decode(CorpusError)
    where = line.where
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object with title and abstract.")
    title, abstract = record.get("title"), record.get("abstract")
    if not isinstance(title, str) or not title.strip():
        raise CorpusError(f'{where}: missing or empty "title" (a string).')
    if not isinstance(abstract, str) or not abstract.strip():
        raise CorpusError(f'{where}: missing or empty "abstract" (a string).')
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [a for a in re.split(r",|;| and ", authors)]
    if not isinstance(authors, list):
        raise CorpusError(f'{where}: "authors" must be a list of names or a string.')
    return make_paper(
        title,
        abstract,
        source=line.path.name,
        search_url_template=search_url_template,
        url=str(record.get("url") or ""),
        authors=[str(a) for a in authors],
        date=str(record.get("date") or ""),
        year=str(record.get("year") or ""),
        venue=str(record.get("venue") or ""),
        doi=str(record.get("doi") or ""),
        arxiv_id=str(record.get("arxiv_id") or ""),
        where=where,
    )


def read_jsonl(path: Path, search_url_template: str, *, skip_bad: bool = False) -> SourceRead:
    """JSON Lines with `title`, `abstract` and optional `url`, `authors`, `date`, `year`,
    `venue`, `doi`, `arxiv_id`.

    One malformed line rejects the whole file, so a file is ingested completely or not at
    all, unless `skip_bad`: then the other lines are read and the bad ones reported.
    """
    read = SourceRead([], format="jsonl")
    lines = read_json_lines(
        path, CorpusError, not_utf8_hint=_NOT_UTF8, unreadable_hint=_UNREADABLE
    )
    for line in lines:
        try:
            read.papers.append(_jsonl_paper(line, search_url_template))
        except CorpusError as exc:
            if not skip_bad:
                # The paper's own check may already say that nothing was ingested: once is enough.
                reason = re.sub(r"\s*nothing from this file was ingested\.$", "", str(exc), flags=re.I)
                raise CorpusError(
                    f"{reason} Fix that line, or ingest with --skip-bad to read the other lines; "
                    "nothing from this file was ingested."
                ) from exc
            read.skipped.append(f"{path.name}: skipped line {line.number} (malformed)")
    return read


_BIBTEX_START = re.compile(r"^\s*@\s*[A-Za-z]+\s*[{(]", re.MULTILINE)
_RIS_START = re.compile(r"^TY  - ", re.MULTILINE)


def detect_format(path: Path, text: str) -> str:
    """The reader for a file: by extension, and by content where the extension is generic
    (.txt, .json) or unknown."""
    suffix = path.suffix.lower()
    by_suffix = {".bib": "bibtex", ".bibtex": "bibtex", ".ris": "ris", ".jsonl": "jsonl"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    head = text.lstrip("\ufeff \t\r\n")
    if suffix == ".json":
        return "csl-json" if head.startswith("[") else "jsonl"
    if _RIS_START.search(text[:5000]):
        return "ris"
    if _BIBTEX_START.search(text[:20000]):
        return "bibtex"
    if suffix in (".txt", ".md"):
        return "listing"
    if head.startswith("["):
        return "csl-json"
    if head.startswith("{"):
        return "jsonl"
    supported = "; ".join(FORMATS.values())
    raise CorpusError(
        f"{path}: unknown format ({suffix or 'no extension'}, and the content is not one "
        f"paperchat reads). Supported: {supported}."
    )


def read_source(path: Path, search_url_template: str, *, skip_bad: bool = False) -> SourceRead:
    """Read one file in whichever format it is; raises CorpusError when it yields nothing."""
    text = _read_text(path)
    kind = detect_format(path, text)
    if kind == "bibtex":
        from rag.bibtex import read_bibtex

        read = read_bibtex(path, text, search_url_template, skip_bad=skip_bad)
    elif kind == "ris":
        from rag.ris import read_ris

        read = read_ris(path, text, search_url_template, skip_bad=skip_bad)
    elif kind == "csl-json":
        from rag.csljson import read_csl_json

        read = read_csl_json(path, text, search_url_template, skip_bad=skip_bad)
    elif kind == "jsonl":
        read = read_jsonl(path, search_url_template, skip_bad=skip_bad)
    else:
        read = SourceRead(read_listing(path, search_url_template), format="listing")
    if not read.papers:
        if kind == "listing":
            raise CorpusError(
                f"{path} yields no papers. Expected a listing page (title paragraph, then "
                "abstract paragraph, separated by blank lines) or JSON Lines with title and "
                "abstract."
            )
        skipped = f" ({'; '.join(read.skipped)})" if read.skipped else ""
        raise CorpusError(
            f"{path} ({FORMATS[kind].split(' (')[0]}) yields no papers with an abstract"
            f"{skipped}. paperchat answers from abstracts: export them with your references "
            "(e.g. in Zotero, the Abstract field) and ingest again."
        )
    return read


def read_file(path: Path, search_url_template: str) -> list[Paper]:
    return read_source(path, search_url_template).papers


def expand_paths(paths: Iterable[Path], notes: list[str] | None = None) -> list[Path]:
    """Files to read: each file as given, each directory's readable files sorted by name.

    Anything that is not a regular file (a FIFO, a device, a socket) is skipped, with a
    line in `notes`: reading a FIFO would wait forever for a writer.
    """
    files: list[Path] = []
    skipped = notes if notes is not None else []
    for path in paths:
        if not path.exists():
            raise CorpusError(f"{path} does not exist. Give a corpus file or a folder of them.")
        if path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.suffix.lower() in READABLE_SUFFIXES)
            found = [p for p in candidates if p.is_file()]
            skipped.extend(_not_regular(p) for p in candidates if not p.is_file() and not p.is_dir())
            if not found:
                raise CorpusError(
                    f"{path} holds no readable corpus files ({', '.join(READABLE_SUFFIXES)})."
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            skipped.append(_not_regular(path))
    if not files:
        raise CorpusError(
            f"Nothing to read: {'; '.join(skipped)}. Give corpus files or folders of them."
        )
    return files


def _not_regular(path: Path) -> str:
    return f"skipped {path}: not a regular file (a pipe, device or socket)"


def _quoted(title: str, limit: int = 80) -> str:
    short = title if len(title) <= limit else title[: limit - 1].rstrip() + "\u2026"
    return f"\u201c{short}\u201d"


def merge_note(paper: Paper, first: Paper, reason: str) -> str:
    """`merged “T” (b.bib) with the copy from a.txt: same title`, naming both titles when
    they differ, and saying which abstract was kept when the copies' abstracts differ (the
    merge keeps only the longest)."""
    if normalize_title(paper.title) == normalize_title(first.title):
        note = f"merged {_quoted(paper.title)} ({paper.source}) with the copy from {first.source}: {reason}"
    else:
        note = (
            f"merged {_quoted(paper.title)} ({paper.source}) into {_quoted(first.title)} "
            f"({first.source}): {reason}"
        )
    if paper.abstract != first.abstract:
        kept, dropped = sorted((first.abstract, paper.abstract), key=len, reverse=True)
        note += (
            f"; their abstracts differ: kept the longest ({len(kept):,} characters), dropped "
            f"one of {len(dropped):,}"
        )
    return note


class DuplicateMerger:
    """Folds copies of one paper together: same DOI, else same arXiv id, else same title.

    `add` returns the merged paper; `notes` says which copies were merged and why.
    """

    def __init__(self) -> None:
        self.papers: dict[str, Paper] = {}  # by the id of the first copy
        self._owner: dict[str, str] = {}  # duplicate key -> paper id
        self.merged = 0
        self.notes: list[str] = []

    def find(self, paper: Paper) -> tuple[str, str] | None:
        """(id of the paper `paper` duplicates, what matched), or None."""
        for key in duplicate_keys(paper):
            owner = self._owner.get(key)
            if owner is not None:
                return owner, {"doi": "same DOI", "arxiv": "same arXiv id"}.get(
                    key.split(":", 1)[0], "same title"
                )
        return None

    def add(self, paper: Paper, *, quiet: bool = False) -> Paper:
        found = self.find(paper)
        if found is None:
            result = paper
        else:
            owner, reason = found
            first = self.papers[owner]
            result = merge_papers(first, paper)
            self.merged += 1
            if not quiet:
                self.notes.append(merge_note(paper, first, reason))
        self.papers[result.id] = result
        for key in duplicate_keys(result):
            self._owner.setdefault(key, result.id)
        return result


def merge_duplicates(papers: Iterable[Paper]) -> list[Paper]:
    """One paper per DOI / arXiv id / title; later copies only enrich the first (order kept)."""
    merger = DuplicateMerger()
    for paper in papers:
        merger.add(paper)
    return list(merger.papers.values())


def bundled_corpus_paths() -> list[Path]:
    folder = resources.files("rag") / "data"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".txt"))


@dataclass
class LoadedCorpus:
    """Every file read (nothing written yet): unique papers, entries read, what was merged
    or left out."""

    papers: list[Paper]
    entries: int
    merged: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: int = 0
    formats: dict[str, str] = field(default_factory=dict)  # file name -> the format read


def load_sources(
    paths: Iterable[Path | None] | None, search_url_template: str, *, skip_bad: bool = False
) -> LoadedCorpus:
    """Read every file (all of them before anything is written) and merge duplicates. No
    paths, or None among them, stands for the bundled corpus."""
    given = list(paths) if paths else [None]
    not_files: list[str] = []  # FIFOs and the like, skipped unread
    named = [p for p in given if p is not None]
    files = [
        *(bundled_corpus_paths() if None in given else []),
        *(expand_paths(named, not_files) if named else []),
    ]
    merger = DuplicateMerger()
    entries = 0
    notes: list[str] = []
    formats: dict[str, str] = {}
    for file in files:
        read = read_source(file, search_url_template, skip_bad=skip_bad)
        formats[file.name] = read.format
        entries += len(read.papers)
        notes.extend(read.skipped)
        for paper in read.papers:
            merger.add(paper)
    return LoadedCorpus(
        list(merger.papers.values()),
        entries,
        merger.merged,
        [*merger.notes, *notes, *not_files],
        len(notes),
        formats,
    )


def load_corpus(paths: Iterable[Path] | None, search_url_template: str) -> tuple[list[Paper], int]:
    """Read every file (all of them before anything is written) -> (unique papers, entries read)."""
    loaded = load_sources(paths, search_url_template)
    return loaded.papers, loaded.entries
