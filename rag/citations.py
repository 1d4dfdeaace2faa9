"""Citation markers: parsing, renumbering, evidence spans and the printed source list."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag.text import split_sentences, stems
from rag.types import Citation, Hit

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def marker_numbers(text: str) -> list[int]:
    """Every source number cited in `text`, in order of first use."""
    seen: list[int] = []
    for match in MARKER.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def renumber(text: str, mapping: dict[int, int]) -> str:
    """Rewrite markers through `mapping`; numbers missing from it are dropped."""

    def replace(match: re.Match[str]) -> str:
        kept = []
        for part in match.group(1).split(","):
            new = mapping.get(int(part))
            if new is not None and new not in kept:
                kept.append(new)
        return "".join(f"[{n}]" for n in kept)

    cleaned = MARKER.sub(replace, text)
    return re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()


def best_evidence(claim: str, abstract: str) -> tuple[str, float]:
    """The abstract sentence sharing most stems with `claim`, and the share of claim stems it has."""
    wanted = set(stems(claim))
    best, best_share = "", 0.0
    for sentence in split_sentences(abstract):
        have = set(stems(sentence))
        share = len(wanted & have) / len(wanted) if wanted else 0.0
        if share > best_share or not best:
            best, best_share = sentence, share
    return best, best_share


def citation_for(n: int, hit: Hit, evidence: str, supported: bool = True) -> Citation:
    return Citation(
        n=n,
        paper_id=hit.paper.id,
        title=hit.paper.title,
        url=hit.paper.url,
        evidence=evidence,
        supported=supported,
    )


def format_sources(citations: Sequence[Citation], link: Callable[[Citation], str] | None = None) -> str:
    """The source list printed under an answer: `[1] Title — link`."""
    return "\n".join(
        f"[{c.n}] {c.title} — {link(c) if link else c.url}" for c in citations
    )
