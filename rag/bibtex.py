"""BibTeX in and out: the only module that imports bibtexparser (2.x).

Reading: entries with an abstract become papers; LaTeX accents and braces are decoded; entries
without an abstract are reported by key and skipped; a malformed entry names its key and line
and, unless the user asked to skip bad entries, stops the whole file.

Writing: the cited papers as entries with stable keys (lin2024llavamini), text fields LaTeX-
encoded so `&`, `%`, `_` or accents cannot break a LaTeX build, and `@misc` with `eprint` for
papers known only from arXiv.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import bibtexparser
from bibtexparser.library import Library
from bibtexparser.middlewares import (
    LatexDecodingMiddleware,
    LatexEncodingMiddleware,
    SeparateCoAuthors,
    SplitNameParts,
)
from bibtexparser.model import DuplicateBlockKeyBlock, Entry, Field
from pylatexenc.latex2text import LatexNodes2Text

from rag.errors import CorpusError
from rag.metadata import citation_key
from rag.papers import Incomplete, SourceRead, make_paper
from rag.types import Paper

_KEY = re.compile(r"@\s*\w+\s*[{(]\s*([^,\s]+)")
# Where an entry's venue may be, best first.
_VENUE_FIELDS = ("journal", "journaltitle", "booktitle", "publisher", "howpublished", "school")
# Written as they are: LaTeX-encoding would break a URL or DOI ("_" -> "\_").
_VERBATIM_FIELDS = ("doi", "url", "eprint", "archiveprefix", "primaryclass")


_LATEX = LatexNodes2Text()


def _decoded(words: Sequence[str]) -> str:
    # Names are split before decoding (so `{Barnes and Noble}` stays one name), and the
    # decoding middleware does not reach split names: decode each part here.
    return " ".join(_LATEX.latex_to_text(w) for w in words).strip()


def _name(parts: Any) -> str:
    """bibtexparser NameParts -> `von Last, Jr, First` (the family name before the comma)."""
    if isinstance(parts, str):
        return _decoded([parts])
    family = _decoded([*parts.von, *parts.last])
    given = _decoded(parts.first)
    junior = _decoded(parts.jr)
    if not family:
        return given
    return ", ".join(p for p in (family, junior, given) if p)


def _text(value: Any) -> str:
    """A decoded field value as plain text; braces a decoder left (e.g. `{}`) go too."""
    return re.sub(r"\s+", " ", str(value).replace("{", "").replace("}", "")).strip()


def _failed_entry(block: Any) -> str:
    raw = block.raw or ""
    match = _KEY.search(raw)
    key = match.group(1) if match else "(no key)"
    line = (block.start_line or 0) + 1
    if isinstance(block, DuplicateBlockKeyBlock):
        reason = "its key is used by an earlier entry"
    else:
        error = block.error
        reason = getattr(error, "abort_reason", "") or getattr(error, "message", "") or str(error)
        reason = " ".join(str(reason).split()) or type(error).__name__
    return f"entry {key} (line {line}): {reason}"


@contextlib.contextmanager
def _quiet_parser() -> Iterator[None]:
    """bibtexparser logs each malformed block; the CorpusError (or skip note) says it once."""
    logger = logging.getLogger("bibtexparser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_bibtex(
    path: Path, text: str, search_url_template: str, *, skip_bad: bool = False
) -> SourceRead:
    """Papers of a .bib file; entries without an abstract are listed in `skipped`."""
    with _quiet_parser():
        library = bibtexparser.parse_string(
            text,
            append_middleware=[SeparateCoAuthors(), SplitNameParts(), LatexDecodingMiddleware()],
        )
    read = SourceRead([], format="bibtex")
    failed = [_failed_entry(block) for block in library.failed_blocks]
    if failed and not skip_bad:
        raise CorpusError(
            f"{path}: malformed {failed[0]}"
            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
            + ". Fix it, or ingest with --skip-bad to read the other entries; nothing from "
            "this file was ingested."
        )
    read.skipped.extend(f"{path.name}: skipped malformed {f}" for f in failed)
    incomplete = Incomplete("entry", "entries")
    for entry in library.entries:
        fields = {f.key.lower(): f.value for f in entry.fields}
        title, abstract = _text(fields.get("title", "")), _text(fields.get("abstract", ""))
        if not title or not abstract:
            incomplete.add(entry.key, abstract)
            continue
        authors = fields.get("author") or fields.get("editor") or []
        if not isinstance(authors, list):
            authors = [authors]
        eprint = _text(fields.get("eprint", ""))
        prefix = _text(fields.get("archiveprefix") or fields.get("eprinttype") or "").lower()
        venue = next((_text(fields[k]) for k in _VENUE_FIELDS if fields.get(k)), "")
        where = f"{path}, entry {entry.key} (line {(entry.start_line or 0) + 1})"
        read.keep(
            partial(
                make_paper,
                title,
                abstract,
                source=path.name,
                search_url_template=search_url_template,
                url=_text(fields.get("url", "")),
                authors=[_name(a) for a in authors],
                date=_text(fields.get("date", "")),
                year=_text(fields.get("year", "")),
                venue=venue,
                doi=_text(fields.get("doi", "")),
                arxiv_id=eprint if prefix == "arxiv" or not prefix else "",
                where=where,
            ),
            skip_bad,
        )
    read.skipped.extend(incomplete.notes(path))
    return read


# ---- writing ---------------------------------------------------------------------------


_PROCEEDINGS = re.compile(r"proceedings|conference|workshop|symposium|findings|meeting", re.I)


def _entry_type(paper: Paper) -> str:
    """@inproceedings or @article when a venue is known, else @misc (arXiv-only papers)."""
    if not paper.venue or paper.venue.lower().startswith("arxiv"):
        return "misc"
    return "inproceedings" if _PROCEEDINGS.search(paper.venue) else "article"


def _entry(paper: Paper, key: str) -> tuple[Entry, list[Field]]:
    """(entry with the text fields, verbatim fields added after LaTeX encoding)."""
    kind = _entry_type(paper)
    text: list[Field] = [Field("title", paper.title)]
    if paper.authors:
        text.append(Field("author", " and ".join(paper.authors)))
    if paper.year:
        text.append(Field("year", paper.year))
    if kind != "misc":
        text.append(Field("journal" if kind == "article" else "booktitle", paper.venue))
    text.append(Field("abstract", paper.abstract))
    verbatim: list[Field] = []
    if paper.doi:
        verbatim.append(Field("doi", paper.doi))
    if paper.arxiv_id:
        verbatim += [Field("eprint", paper.arxiv_id), Field("archiveprefix", "arXiv")]
    if paper.url and paper.link_kind != "search":
        verbatim.append(Field("url", paper.url))
    return Entry(kind, key, text), verbatim


def unique_keys(papers: Sequence[Paper]) -> list[str]:
    """Stable keys, with b, c, ... appended where two papers would share one."""
    keys: list[str] = []
    for paper in papers:
        base = citation_key(paper)
        key, n = base, 0
        while key in keys:
            n += 1
            key = f"{base}{chr(ord('a') + n)}"
        keys.append(key)
    return keys


def bibtex_entries(papers: Iterable[Paper]) -> str:
    """BibTeX for `papers` (each once, in order); '' when there are none."""
    unique: dict[str, Paper] = {}
    for paper in papers:
        unique.setdefault(paper.id, paper)
    if not unique:
        return ""
    library = Library()
    verbatim: dict[str, list[Field]] = {}
    for paper, key in zip(unique.values(), unique_keys(list(unique.values())), strict=True):
        entry, fields = _entry(paper, key)
        library.add(entry)
        verbatim[key] = fields
    library = LatexEncodingMiddleware(keep_math=True, enclose_urls=False).transform(library)
    for entry in library.entries:
        for field in verbatim[entry.key]:
            entry.set_field(field)
    return str(bibtexparser.write_string(library))


def parse_bibtex_string(text: str) -> list[dict[str, Any]]:
    """Entries of a BibTeX string as dicts (ENTRYTYPE, ID, decoded fields): for checking
    what bibtex_entries wrote."""
    with _quiet_parser():
        library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    if library.failed_blocks:
        raise CorpusError(f"BibTeX does not parse: {_failed_entry(library.failed_blocks[0])}")
    return [
        {"ENTRYTYPE": e.entry_type, "ID": e.key, **{f.key: f.value for f in e.fields}}
        for e in library.entries
    ]
