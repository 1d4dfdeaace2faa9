"""CSL-JSON (.json): the export of Zotero ("CSL JSON") and of Better BibTeX ("Better CSL
JSON"). Plain JSON, read with the standard library.

The schema (citation-style-language/schema, csl-data.json): an array of items with `type`,
`title`, `abstract`, `author` (a list of {family, given} or {literal}), `issued`
({date-parts: [[year, month, day]]}, or {raw} / {literal}), `container-title`, `DOI`,
`URL`, and for preprints `number` (e.g. "arXiv:2401.12345") or `archive_location`.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from rag.errors import CorpusError
from rag.metadata import normalize_arxiv_id
from rag.papers import Incomplete, SourceRead, make_paper


def _name(person: Any) -> str:
    if not isinstance(person, dict):
        raise ValueError("an author is not an object with family/given or literal")
    if person.get("literal"):
        return str(person["literal"])
    family = " ".join(str(person.get(k) or "") for k in ("non-dropping-particle", "family")).strip()
    given = str(person.get("given") or "").strip()
    return f"{family}, {given}" if family and given else family or given


def _date(issued: Any) -> str:
    """`issued` as text: `2024-01-05`, `2024`, or the raw / literal form."""
    if issued in (None, ""):
        return ""
    if not isinstance(issued, dict):
        raise ValueError('"issued" is not an object like {"date-parts": [[2024]]}')
    parts = issued.get("date-parts")
    if parts:
        if not isinstance(parts, list) or not isinstance(parts[0], list):
            raise ValueError('"issued.date-parts" is not a list of lists like [[2024, 1, 5]]')
        return "-".join(str(p).zfill(2) for p in parts[0] if p not in (None, ""))
    return str(issued.get("raw") or issued.get("literal") or "")


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ValueError(f'"{key}" is not text')
    return str(value).strip()


def read_csl_json(
    path: Path, text: str, search_url_template: str, *, skip_bad: bool = False
) -> SourceRead:
    """Papers of a CSL-JSON array; items without an abstract are listed in `skipped`."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(
            f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}). Fix the file; nothing from "
            "it was ingested."
        ) from exc
    if not isinstance(items, list):
        raise CorpusError(
            f"{path}: expected a CSL-JSON array of items (Zotero: Export Collection > CSL JSON)."
        )
    read = SourceRead([], format="csl-json")
    incomplete = Incomplete("item", "items")
    for number, item in enumerate(items, start=1):
        label = f"item {number}"
        try:
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            label = f"item {number} ({item.get('id') or _text(item, 'title')[:60] or 'no id'})"
            title, abstract = _text(item, "title"), _text(item, "abstract")
            if not title or not abstract:
                incomplete.add(str(item.get("id") or f"item {number}"), abstract)
                continue
            authors = item.get("author") or []
            if not isinstance(authors, list):
                raise ValueError('"author" is not a list')
            arxiv_id = next(
                (
                    found
                    for key in ("number", "archive_location", "URL", "note")
                    if (found := normalize_arxiv_id(_text(item, key)))
                ),
                "",
            )
            read.keep(
                partial(
                    make_paper,
                    title,
                    abstract,
                    source=path.name,
                    search_url_template=search_url_template,
                    url=_text(item, "URL"),
                    authors=[_name(a) for a in authors],
                    date=_date(item.get("issued")),
                    venue=_text(item, "container-title")
                    or _text(item, "event-title")
                    or _text(item, "publisher"),
                    doi=_text(item, "DOI"),
                    arxiv_id=arxiv_id,
                    where=f"{path}, item {number}",  # not the label: the title may be invalid text
                ),
                skip_bad,
            )
        except ValueError as exc:
            problem = f"{label}: {exc}"
            if not skip_bad:
                raise CorpusError(
                    f"{path}: malformed CSL-JSON {problem}. Fix it, or ingest with --skip-bad "
                    "to read the other items; nothing from this file was ingested."
                ) from exc
            read.skipped.append(f"{path.name}: skipped malformed {problem}")
    read.skipped.extend(incomplete.notes(path))
    return read
