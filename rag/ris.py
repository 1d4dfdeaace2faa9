"""RIS (.ris, the export of EndNote, Mendeley, Zotero, JabRef): the only module that imports
rispy.

rispy reads whatever it can and silently drops what it cannot (a record without `ER  -`,
text outside records), so records are delimited and checked here first: a malformed record
is reported by its line (and ID or title when it has one) instead of vanishing.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import rispy

from rag.errors import CorpusError
from rag.papers import Incomplete, SourceRead, make_paper

_TAG = re.compile(r"^([A-Z][A-Z0-9])  -( |$)")


def _records(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(first line number, record text) for every TY..ER record; problems found on the way."""
    records: list[tuple[int, str]] = []
    problems: list[str] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.rstrip()
        tag = _TAG.match(line)
        if tag and tag.group(1) == "TY":
            if current:
                problems.append(f"record at line {start} ({_label(current)}) has no `ER  -` end")
            current, start = [line], number
        elif tag and tag.group(1) == "ER":
            if not current:
                problems.append(f"line {number}: `ER  -` without a record (`TY  -`) before it")
                continue
            current.append(line)
            records.append((start, "\n".join(current)))
            current = []
        elif current:
            current.append(line)
        elif line.strip():
            problems.append(f"line {number}: text outside any record (each starts `TY  -`)")
    if current:
        problems.append(f"record at line {start} ({_label(current)}) has no `ER  -` end")
    return records, problems


def _label(lines: list[str]) -> str:
    for tag in ("ID", "TI", "T1"):
        for line in lines:
            if line.startswith(f"{tag}  - "):
                return f"{tag} {line[6:].strip()[:60]}"
    return "no ID or title"


def _first(record: dict[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, list):
            value = value[0] if value else ""
        if value:
            return str(value).strip()
    return ""


def read_ris(
    path: Path, text: str, search_url_template: str, *, skip_bad: bool = False
) -> SourceRead:
    """Papers of a .ris file; records without an abstract are listed in `skipped`."""
    records, problems = _records(text)
    if problems and not skip_bad:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorpusError(
            f"{path}: malformed RIS, {problems[0]}{more}. Fix it, or ingest with --skip-bad "
            "to read the other records; nothing from this file was ingested."
        )
    read = SourceRead([], [f"{path.name}: skipped {p}" for p in problems], format="ris")
    incomplete = Incomplete("record", "records")
    for line, record_text in records:
        parsed = rispy.loads(record_text)
        record = parsed[0] if parsed else {}
        title = _first(record, "title", "primary_title", "translated_title")
        abstract = _first(record, "abstract", "notes_abstract")
        if not title or not abstract:
            incomplete.add(_first(record, "id") or f"line {line}", abstract)
            continue
        authors = record.get("authors") or record.get("first_authors") or []
        read.keep(
            partial(
                make_paper,
                title,
                abstract,
                source=path.name,
                search_url_template=search_url_template,
                url=_first(record, "urls", "url"),
                authors=[str(a) for a in authors],
                date=_first(record, "date", "publication_year", "year"),
                year=_first(record, "year", "publication_year"),
                venue=_first(
                    record, "journal_name", "secondary_title", "alternate_title1", "publisher"
                ),
                doi=_first(record, "doi"),
                where=f"{path}, record at line {line}",
            ),
            skip_bad,
        )
    read.skipped.extend(incomplete.notes(path))
    return read
