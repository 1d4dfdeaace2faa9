"""Questions about a paper's record rather than its content: who wrote it, when, where.

An abstract rarely says who wrote it or when it appeared, so quoting its sentences answers
nothing. The answer is the record's field (BibTeX, RIS, CSL JSON and arXiv records carry
authors, dates and venues), or a plain statement that the record lacks it: the bundled
listing pages give titles and abstracts only.
"""

from __future__ import annotations

import re

from rag.metadata import display_name
from rag.types import Paper

# "Who wrote it?", "Who are the authors of X?", "List its authors". Not "What do the authors
# propose?" (the content), nor "Who proposed X?" (which paper did: its contribution answers).
_AUTHORS = re.compile(
    r"^\W*(who\s+(wrote|authored|writes)\b|who\s+(is|are|were|was)\s+(the\s+|its\s+|their\s+)?"
    r"authors?\b|(list|name|give( me)?|show( me)?)\s+(the\s+|its\s+|their\s+)?authors\b|"
    r"(what|which)\s+are\s+(the\s+|its\s+|their\s+)?(names\s+of\s+the\s+)?authors\b)",
    re.IGNORECASE,
)
# "When was it published?", "What year is X from?", "Which venue did it appear at?". Not
# "When searching a gallery ...": a question about the record opens with "when was/did".
_DATE = re.compile(
    r"^\W*(when\s+(was|were|did|is|has|had)\b.{0,60}\b(published|released|appear(ed)?|"
    r"came out|come out|presented)\b|(what|which)\s+year\b|(what|which)\s+is\s+(the|its)\s+"
    r"(publication\s+)?(date|year)\b)",
    re.IGNORECASE,
)
_VENUE = re.compile(
    r"\b(which|what)\s+(venue|conference|journal|workshop)\b|^\W*where\b.{0,60}\bpublished\b",
    re.IGNORECASE,
)


def _every_author(authors: tuple[str, ...]) -> str:
    """`A`, `A and B`, `A, B and C`: each name as it is written ("Lin, Xiaohan" -> "Xiaohan
    Lin"); '' when there is none."""
    names = [display_name(a) for a in authors if a.strip()]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def record_fields(question: str) -> list[str]:
    """The record fields a question asks for: any of "authors", "date", "venue"."""
    asked = [("authors", _AUTHORS), ("date", _DATE), ("venue", _VENUE)]
    return [name for name, pattern in asked if pattern.search(question)]


def record_answer(fields: list[str], paper: Paper, n: int = 1) -> str:
    """One sentence per asked field: the record's value, or that the record lacks it."""
    title = paper.title
    lines = []
    if "authors" in fields:
        authors = _every_author(paper.authors)
        lines.append(
            f"{title} is by {authors} [{n}]."
            if authors
            else f"The index has no author list for {title} [{n}]."
        )
    if "date" in fields:
        when = paper.date or paper.year
        lines.append(
            f"{title} is dated {when} [{n}]."
            if when
            else f"The index has no publication date for {title} [{n}]."
        )
    if "venue" in fields:
        lines.append(
            f"{title} appeared in {paper.venue} [{n}]."
            if paper.venue
            else f"The index has no venue for {title} [{n}]."
        )
    return " ".join(lines)
