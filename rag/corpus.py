"""Corpus readers: listing pages and JSON Lines -> Paper, with stable ids and merged duplicates."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.errors import CorpusError
from rag.text import describe_invalid, invalid_text_at
from rag.types import Paper

READABLE_SUFFIXES = (".txt", ".md", ".jsonl", ".json")
# Per-paper limits, checked while reading, before anything is indexed. Real abstracts are
# far shorter (the bundled corpus: at most 2,100 characters); a several-MB "abstract" is a
# mistake that would embed for minutes, and a very long title drowns every chunk's text.
MAX_TITLE_CHARS = 500
MAX_ABSTRACT_CHARS = 20_000
# Merge notes shown by an ingest, at most (the count covers all of them).
MAX_NOTES = 20
_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+")
_TITLE_MAX_CHARS = 400
_ABSTRACT_MIN_CHARS = 60
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


# Paper ids hash normalize_title since id scheme 2. Scheme 1 kept only [0-9a-z], so every
# title without ASCII letters or digits (Chinese, Greek, ...) got the same id. ASCII titles
# have the same id in both schemes; rag.index re-keys the others of an older index once.
ID_SCHEME = 2


def normalize_title(title: str) -> str:
    """NFKC, case-folded, letters, digits and marks of any script only: how titles are
    compared everywhere. For ASCII titles: lower-cased letters and digits."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LNM")


def paper_id(title: str, where: str = "") -> str:
    """A stable id from the normalised title; CorpusError for a title that normalises to
    nothing (it would share its id with every other such title). `where` (e.g. "file, line
    3") starts the message."""
    normalized = normalize_title(title)
    if not normalized:
        place = f"{where}: " if where else ""
        raise CorpusError(
            f"{place}the title {title[:80]!r} has no letters or digits, so it cannot identify "
            "a paper. Give the paper its real title."
        )
    return hashlib.sha1(normalized.encode("utf-8")).hexdigest()[:16]


def legacy_paper_id(title: str) -> str:
    """The id scheme-1 indexes stored (ASCII letters and digits only); for migrating them."""
    return hashlib.sha1(re.sub(r"[^0-9a-z]", "", title.lower()).encode()).hexdigest()[:16]


def content_hash(paper: Paper) -> str:
    return hashlib.sha1(f"{paper.title}\n{paper.abstract}\n{paper.url}".encode()).hexdigest()[:16]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def paper_link(title: str, abstract: str, search_url_template: str) -> str:
    """A URL the abstract gives (code or project page), else a search for the title."""
    match = _URL.search(abstract)
    if match:
        return match.group(0).rstrip(".,;:")
    return search_url_template.format(query=urllib.parse.quote_plus(title))


def make_paper(
    title: str,
    abstract: str,
    *,
    source: str,
    search_url_template: str,
    url: str = "",
    authors: Iterable[str] = (),
    date: str = "",
    where: str = "",
) -> Paper:
    """A Paper from one record; `where` (e.g. "file, line 3") places errors about it."""
    authors = tuple(authors)
    for name, value in (("title", title), ("abstract", abstract), ("url", url),
                         ("date", date), *(("authors", a) for a in authors)):  # fmt: skip
        at = invalid_text_at(value)
        if at is not None:
            place = f"{where}: " if where else ""
            raise CorpusError(
                f'{place}"{name}" holds {describe_invalid(value, at)} at character {at + 1}. '
                "Fix or remove it; nothing from this file was ingested."
            )
    title, abstract = _clean(title), _clean(abstract)
    place = f"{where}: " if where else ""
    if len(title) > MAX_TITLE_CHARS:
        raise CorpusError(
            f"{place}the title is {len(title):,} characters long; the limit is "
            f"{MAX_TITLE_CHARS}. Is the abstract in the title field? Nothing from this file "
            "was ingested."
        )
    if len(abstract) > MAX_ABSTRACT_CHARS:
        raise CorpusError(
            f"{place}the abstract is {len(abstract):,} characters long; the limit is "
            f"{MAX_ABSTRACT_CHARS:,}. Give the abstract, not the paper's full text. Nothing "
            "from this file was ingested."
        )
    return Paper(
        id=paper_id(title, where),
        title=title,
        abstract=abstract,
        url=url.strip() or paper_link(title, abstract, search_url_template),
        source=source,
        authors=tuple(a.strip() for a in authors if a.strip()),
        date=date.strip(),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text (byte {exc.start}). Convert it to UTF-8 and ingest again."
        ) from exc
    except OSError as exc:
        raise CorpusError(
            f"Cannot read {path}: {exc.strerror}. Check the path and permissions."
        ) from exc


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


def read_jsonl(path: Path, search_url_template: str) -> list[Paper]:
    """JSON Lines with `title`, `abstract` and optional `url`, `authors`, `date`.

    One malformed line rejects the whole file, so a file is ingested completely or not at all.
    """
    papers: list[Paper] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"{path}, line {number}: not valid JSON ({exc.msg}). Fix that line; "
                "nothing from this file was ingested."
            ) from exc
        if not isinstance(record, dict):
            raise CorpusError(
                f"{path}, line {number}: expected a JSON object with title and abstract."
            )
        title, abstract = record.get("title"), record.get("abstract")
        if not isinstance(title, str) or not title.strip():
            raise CorpusError(f'{path}, line {number}: missing or empty "title" (a string).')
        if not isinstance(abstract, str) or not abstract.strip():
            raise CorpusError(f'{path}, line {number}: missing or empty "abstract" (a string).')
        authors = record.get("authors") or []
        if isinstance(authors, str):
            authors = [a for a in re.split(r",|;| and ", authors)]
        if not isinstance(authors, list):
            raise CorpusError(
                f'{path}, line {number}: "authors" must be a list of names or a string.'
            )
        papers.append(
            make_paper(
                title,
                abstract,
                source=path.name,
                search_url_template=search_url_template,
                url=str(record.get("url") or ""),
                authors=[str(a) for a in authors],
                date=str(record.get("date") or ""),
                where=f"{path}, line {number}",
            )
        )
    return papers


def read_file(path: Path, search_url_template: str) -> list[Paper]:
    if path.suffix.lower() in (".jsonl", ".json"):
        papers = read_jsonl(path, search_url_template)
    else:
        papers = read_listing(path, search_url_template)
    if not papers:
        raise CorpusError(
            f"{path} yields no papers. Expected a listing page (title paragraph, then abstract "
            "paragraph, separated by blank lines) or JSON Lines with title and abstract."
        )
    return papers


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


@dataclass
class CorpusRead:
    """What reading the inputs gave: unique papers, and what the user should know."""

    papers: list[Paper]
    entries: int = 0  # records read, duplicates included
    merged: int = 0  # records folded into an earlier one with the same title
    notes: list[str] = field(default_factory=list)  # merges that dropped text, skipped files


def merge_notes(papers: Sequence[Paper]) -> tuple[int, list[str]]:
    """(records merged into another, one note per title whose records had different
    abstracts: merging keeps only the longest of them)."""
    groups: dict[str, list[Paper]] = {}
    for paper in papers:
        groups.setdefault(paper.id, []).append(paper)
    merged = sum(len(g) - 1 for g in groups.values())
    notes = []
    for group in groups.values():
        abstracts = {p.abstract for p in group}
        if len(abstracts) > 1:
            notes.append(
                f"{len(group)} records share the title “{group[0].title[:120]}” "
                f"({', '.join(sorted({p.source for p in group}))}) with {len(abstracts)} "
                "different abstracts; kept the longest abstract."
            )
    if len(notes) > MAX_NOTES:
        notes = [*notes[:MAX_NOTES], f"... and {len(notes) - MAX_NOTES} more such titles."]
    return merged, notes


def merge_duplicates(papers: Iterable[Paper]) -> list[Paper]:
    """One paper per id; a later copy only fills what the first lacks (order kept)."""
    merged: dict[str, Paper] = {}
    for paper in papers:
        first = merged.get(paper.id)
        if first is None:
            merged[paper.id] = paper
            continue
        merged[paper.id] = Paper(
            id=first.id,
            title=first.title,
            abstract=first.abstract
            if len(first.abstract) >= len(paper.abstract)
            else paper.abstract,
            url=first.url,
            source=first.source
            if paper.source in first.source.split(", ")
            else f"{first.source}, {paper.source}",
            authors=first.authors or paper.authors,
            date=first.date or paper.date,
        )
    return list(merged.values())


def bundled_corpus_paths() -> list[Path]:
    folder = resources.files("rag") / "data"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".txt"))


def read_corpus(paths: Iterable[Path] | None, search_url_template: str) -> CorpusRead:
    """Read every file (all of them before anything is written), merging duplicates."""
    notes: list[str] = []
    files = expand_paths(paths, notes) if paths else bundled_corpus_paths()
    entries: list[Paper] = []
    for file in files:
        entries.extend(read_file(file, search_url_template))
    merged, merge_text = merge_notes(entries)
    return CorpusRead(merge_duplicates(entries), len(entries), merged, [*notes, *merge_text])


def load_corpus(paths: Iterable[Path] | None, search_url_template: str) -> tuple[list[Paper], int]:
    """Read every file (all of them before anything is written) -> (unique papers, entries read)."""
    read = read_corpus(paths, search_url_template)
    return read.papers, read.entries
