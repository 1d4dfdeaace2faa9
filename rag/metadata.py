"""Bibliographic metadata shared by every reader and front end: identifiers, links, names.

Pure functions over strings and Papers (no third-party imports), so the readers, the index,
the CLI and the web chat agree on what a DOI is, which link a paper gets and how its
authors are shown.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Sequence

from rag.types import Answer, Paper

# How a paper's link was found, best first: merging keeps the best one.
LINK_KINDS = ("doi", "arxiv", "source", "search")

_DOI = re.compile(r"\b(10\.\d{4,9}/\S+)", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.IGNORECASE)
# New-style ids (2401.12345, optional version) and old-style ones (hep-th/9901001).
_ARXIV_NEW = re.compile(r"(\d{4}\.\d{4,5})(v\d+)?")
_ARXIV_OLD = re.compile(r"([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?", re.IGNORECASE)
_YEAR = re.compile(r"\b(1[89]\d\d|2[01]\d\d)\b")
# Words a citation key skips when it takes the first word of the title.
_KEY_STOPWORDS = frozenset(
    ["a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "from", "by", "at", "is", "are", "do", "does", "towards", "toward", "via"]
)


def normalize_doi(raw: str) -> str:
    """`https://doi.org/10.1/ABC`, `doi:10.1/abc.` -> `10.1/abc` (DOIs are case-insensitive)."""
    text = urllib.parse.unquote((raw or "").strip())
    match = _DOI.search(text)
    if not match:
        return ""
    return match.group(1).rstrip(".,;)]}").lower()


def normalize_arxiv_id(raw: str) -> str:
    """`arXiv:2401.12345v2`, `https://arxiv.org/abs/2401.12345`, the arXiv DOI -> `2401.12345`.

    The version is dropped: every version is the same paper.
    """
    text = (raw or "").strip()
    doi = _ARXIV_DOI.match(normalize_doi(text))
    if doi:
        text = doi.group(1)
    text = re.sub(r"^(?:arxiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)", "", text,
                  flags=re.IGNORECASE)
    text = re.sub(r"\.pdf$", "", text)
    match = _ARXIV_NEW.fullmatch(text) or _ARXIV_OLD.fullmatch(text)
    return match.group(1) if match else ""


def arxiv_id_in_url(url: str) -> str:
    """The arXiv id of an arxiv.org abs/pdf link, else ''."""
    match = re.search(r"arxiv\.org/(?:abs|pdf)/([^\s?#]+)", url or "", re.IGNORECASE)
    return normalize_arxiv_id(match.group(1)) if match else ""


def year_of(text: str) -> str:
    """The first plausible year (1800-2199) in a date or citation string, else ''."""
    match = _YEAR.search(text or "")
    return match.group(1) if match else ""


def resolve_link(
    title: str, doi: str, arxiv_id: str, url: str, search_url_template: str
) -> tuple[str, str]:
    """(link, kind): the DOI, else the arXiv abstract page, else the source's url, else a
    search for the title. The kind lets front ends say "search" instead of pretending the
    search page is the paper."""
    if doi and not _ARXIV_DOI.match(doi):
        return f"https://doi.org/{doi}", "doi"
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}", "arxiv"
    if doi:
        return f"https://doi.org/{doi}", "doi"
    if url.strip().lower().startswith(("http://", "https://")):
        return url.strip(), "source"
    return search_url_template.format(query=urllib.parse.quote_plus(title)), "search"


# ---- names ---------------------------------------------------------------------------


def family_name(name: str) -> str:
    """`Lin, Xiaohan` -> `Lin`; `Xiaohan Lin` -> `Lin` (the last word when no comma)."""
    name = name.strip()
    if "," in name:
        return name.split(",", 1)[0].strip()
    parts = name.split()
    return parts[-1] if parts else ""


def display_name(name: str) -> str:
    """`Lin, Xiaohan` -> `Xiaohan Lin`; names without a comma stay as they are."""
    if "," in name:
        family, given = (part.strip() for part in name.split(",", 1))
        return f"{given} {family}".strip()
    return name.strip()


def author_line(authors: Sequence[str]) -> str:
    """`A`, `A and B`, or `A et al.` for three or more."""
    names = [display_name(a) for a in authors if a.strip()]
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


def byline(authors: Sequence[str], year: str) -> str:
    """`Xiaohan Lin et al., 2024`; either part may be missing; '' when both are."""
    return ", ".join(part for part in (author_line(authors), year) if part)


def ascii_word(text: str) -> str:
    """Letters and digits only, accents folded to ASCII, lower-case: for citation keys."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def citation_key(paper: Paper) -> str:
    """A stable key like `lin2024llavamini`: first author's family name, year, first
    significant title word (hyphenated words joined)."""
    author = ascii_word(family_name(paper.authors[0])) if paper.authors else ""
    words = [w for w in re.split(r"[\s:;,.!?()]+", paper.title) if w]
    first = next((w for w in words if w.lower() not in _KEY_STOPWORDS), words[0] if words else "")
    key = f"{author or 'anon'}{paper.year}{ascii_word(first)}"
    return key or f"paper{paper.id}"


# ---- merging duplicates --------------------------------------------------------------


def duplicate_keys(paper: Paper) -> list[str]:
    """What identifies a paper across sources, strongest first: DOI, arXiv id, title id."""
    keys = []
    if paper.doi:
        keys.append(f"doi:{paper.doi}")
    if paper.arxiv_id:
        keys.append(f"arxiv:{paper.arxiv_id}")
    keys.append(f"id:{paper.id}")
    return keys


def _link_rank(kind: str) -> int:
    return LINK_KINDS.index(kind) if kind in LINK_KINDS else len(LINK_KINDS)


def _joined_sources(first: str, second: str) -> str:
    names = [n for n in first.split(", ") if n]
    names += [n for n in second.split(", ") if n and n not in names]
    return ", ".join(names)


def merge_papers(first: Paper, other: Paper) -> Paper:
    """One paper from two copies: the first's id and title, every field the richer of the two
    (longer abstract, more authors, a DOI/arXiv link over a source url over a search)."""
    url, kind = first.url, first.link_kind
    if _link_rank(other.link_kind) < _link_rank(first.link_kind):
        url, kind = other.url, other.link_kind
    return Paper(
        id=first.id,
        title=first.title,
        abstract=first.abstract if len(first.abstract) >= len(other.abstract) else other.abstract,
        url=url,
        source=_joined_sources(first.source, other.source),
        authors=first.authors if len(first.authors) >= len(other.authors) else other.authors,
        date=first.date or other.date,
        year=first.year or other.year,
        venue=first.venue or other.venue,
        doi=first.doi or other.doi,
        arxiv_id=first.arxiv_id or other.arxiv_id,
        link_kind=kind,
    )


def cited_papers(answers: Iterable[Answer | None]) -> list[Paper]:
    """The papers the answers cite, each once, in order of first citation."""
    papers: dict[str, Paper] = {}
    for answer in answers:
        if answer is None:
            continue
        retrieved = {h.paper.id: h.paper for h in answer.retrieved}
        for citation in answer.citations:
            paper = retrieved.get(citation.paper_id)
            if paper is not None:
                papers.setdefault(paper.id, paper)
    return list(papers.values())
