"""One paper record from any source: limits, stable ids, content hashes and the checks every
reader applies (rag.corpus reads listing pages and JSON Lines; rag.bibtex, rag.ris,
rag.csljson and rag.arxiv_api read the other sources, all through make_paper)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import CorpusError
from rag.metadata import (
    arxiv_id_in_url,
    normalize_arxiv_id,
    normalize_doi,
    resolve_link,
    year_of,
)
from rag.text import describe_invalid, invalid_text_at
from rag.types import Paper

# Per-paper limits, checked while reading, before anything is indexed. Real abstracts are
# far shorter (the bundled corpus: at most 2,100 characters); a several-MB "abstract" is a
# mistake that would embed for minutes, and a very long title drowns every chunk's text.
MAX_TITLE_CHARS = 500
MAX_ABSTRACT_CHARS = 20_000


# Paper ids hash normalize_title since id scheme 2. Scheme 1 kept only [0-9a-z], so every
# title without ASCII letters or digits (Chinese, Greek, ...) got the same id. ASCII titles
# have the same id in both schemes; rag.ingest re-keys the others of an older index once.
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
    text = f"{paper.title}\n{paper.abstract}\n{paper.url}"
    metadata = (paper.authors, paper.date, paper.year, paper.venue, paper.doi, paper.arxiv_id)
    if any(metadata):
        # Only papers that carry metadata hash it (and their sources, which merges extend),
        # so indexes built before it existed stay current, while new metadata or a new
        # source for a stored paper (e.g. a DOI from a .bib) updates it.
        text += "\n" + json.dumps([*metadata, paper.source])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def make_paper(
    title: str,
    abstract: str,
    *,
    source: str,
    search_url_template: str,
    url: str = "",
    authors: Iterable[str] = (),
    date: str = "",
    year: str = "",
    venue: str = "",
    doi: str = "",
    arxiv_id: str = "",
    where: str = "",
) -> Paper:
    """A Paper whose link is the DOI, else the arXiv page, else `url`, else a title search;
    `where` (e.g. "file, line 3") places errors about it.

    A URL inside the abstract is not taken as the paper's link: it is usually code or a
    project page, not the paper.
    """
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
    doi = normalize_doi(doi)
    arxiv_id = normalize_arxiv_id(arxiv_id) or normalize_arxiv_id(doi) or arxiv_id_in_url(url)
    if normalize_arxiv_id(doi):
        doi = ""  # arXiv's own DOI names the preprint: the arXiv id says it, a journal DOI wins
    link, kind = resolve_link(title, doi, arxiv_id, url, search_url_template)
    return Paper(
        id=paper_id(title, where),
        title=title,
        abstract=abstract,
        url=link,
        source=source,
        authors=tuple(_clean(a) for a in authors if a.strip()),
        date=date.strip(),
        year=year_of(year) or year_of(date),
        venue=_clean(venue),
        doi=doi,
        arxiv_id=arxiv_id,
        link_kind=kind,
    )


@dataclass
class SourceRead:
    """What one file gave: its papers, the entries left out (one note each), its format."""

    papers: list[Paper]
    skipped: list[str] = field(default_factory=list)
    format: str = ""

    def keep(self, make: Callable[[], Paper], skip_bad: bool) -> None:
        """Adds the paper `make` builds. A record make_paper refuses (too long, no usable
        title, invalid text; named by its `where`) stops the file, or with --skip-bad is noted."""
        try:
            self.papers.append(make())
        except CorpusError as exc:
            if not skip_bad:
                raise
            self.skipped.append(skipped_refused(exc))


def skipped_without(path: Path, labels: list[str], noun: str, plural: str, what: str) -> str:
    """The note for entries a reader left out for lacking `what`, naming up to ten."""
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
    return (
        f"{path.name}: skipped {len(labels)} {noun if len(labels) == 1 else plural} "
        f"without {what}: {shown}"
    )


@dataclass
class Incomplete:
    """The entries a reader leaves out for lacking an abstract or (with one) a title."""

    noun: str
    plural: str
    without: dict[str, list[str]] = field(
        default_factory=lambda: {"an abstract": [], "a title": []}
    )

    def add(self, label: str, abstract: str) -> None:
        self.without["a title" if abstract else "an abstract"].append(label)

    def notes(self, path: Path) -> list[str]:
        return [
            skipped_without(path, labels, self.noun, self.plural, what)
            for what, labels in self.without.items()
            if labels
        ]


def skipped_refused(exc: CorpusError) -> str:
    """The --skip-bad note for a record make_paper refused (too long, no usable title,
    invalid text): its message up to the first full stop, which names the file and record."""
    return f"skipped {str(exc).split('. ')[0]}"
