"""Papers from the arXiv API: the only module that imports `arxiv`.

Needs network access (everything else in paperchat runs offline). The `arxiv` client pages
through results and waits `delay_s` between requests, as arXiv's API terms ask.

A fetch is resumable: every result is appended to a JSON Lines file under
DATA_DIR/arxiv/ as it arrives, so an interrupted or failed fetch starts where it stopped on
the next run; once its papers are indexed the file moves to the index's kept fetches
(`ArxivFetch.keep`), which `ingest --rebuild` reads again. Nothing touches the index until
the whole fetch has succeeded, so a failure never leaves half a query ingested.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arxiv

from rag.errors import InputError, PaperchatError
from rag.metadata import normalize_arxiv_id
from rag.papers import make_paper
from rag.settings import Settings
from rag.types import Paper

SOURCE = "arXiv"


class ArxivUnreachableError(PaperchatError):
    """The arXiv API could not be reached or answered with an error."""


class ArxivNoResultsError(PaperchatError):
    """The arXiv API found nothing for the query or ids."""


@dataclass
class ArxivFetch:
    """Papers fetched for one query or id list, and where they are kept until indexed."""

    papers: list[Paper]
    cache: Path
    resumed: int = 0  # papers taken from an earlier, interrupted run
    missing: list[str] = field(default_factory=list)  # ids arXiv does not know

    def done(self) -> None:
        """The papers are indexed: forget the resume file."""
        with contextlib.suppress(OSError):
            self.cache.unlink()

    def keep(self, folder: Path) -> Path | None:
        """The papers are indexed: move the resume file into `folder` (the fetches of one
        index), where `ingest --rebuild` reads them again. None when it cannot be moved
        (it is then forgotten, as `done` does)."""
        kept = folder / self.cache.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(self.cache, kept)
        except OSError:
            self.done()
            return None
        return kept


def read_kept(path: Path, search_url_template: str) -> list[Paper]:
    """The papers of a fetch `ArxivFetch.keep` kept, as they were indexed."""
    return [_paper(r, search_url_template) for r in _read_cache(path)]


def parse_ids(raw: Sequence[str]) -> list[str]:
    """Ids as users write them (2401.12345, arXiv:2401.12345v2, abs URLs) -> bare ids."""
    ids: list[str] = []
    bad: list[str] = []
    for item in raw:
        for part in item.replace(",", " ").split():
            found = normalize_arxiv_id(part)
            if not found:
                bad.append(part)
            elif found not in ids:
                ids.append(found)
    if bad:
        raise InputError(
            f"Not arXiv ids: {', '.join(bad)}. Give ids like 2401.12345 or hep-th/9901001."
        )
    return ids


def _record(result: Any) -> dict[str, Any]:
    return {
        "title": result.title,
        "abstract": result.summary,
        "authors": [author.name for author in result.authors],
        "date": result.published.date().isoformat() if result.published else "",
        "venue": result.journal_ref or "",
        "doi": result.doi or "",
        "arxiv_id": normalize_arxiv_id(result.get_short_id()),
        "url": result.entry_id,
    }


def _paper(record: dict[str, Any], search_url_template: str) -> Paper:
    return make_paper(
        record["title"],
        record["abstract"],
        source=SOURCE,
        search_url_template=search_url_template,
        url=record.get("url", ""),
        authors=record.get("authors", []),
        date=record.get("date", ""),
        venue=record.get("venue", ""),
        doi=record.get("doi", ""),
        arxiv_id=record.get("arxiv_id", ""),
    )


def _cache_path(settings: Settings, query: str, ids: Sequence[str], limit: int) -> Path:
    key = json.dumps({"query": query, "ids": list(ids), "max": limit}, sort_keys=True)
    name = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(settings.data_dir) / "arxiv" / f"{name}.jsonl"


def _read_cache(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut off by a kill: fetch it again
    return records


def fetch(
    settings: Settings,
    *,
    query: str = "",
    ids: Sequence[str] = (),
    max_results: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ArxivFetch:
    """Fetch `query`'s first `max_results` papers, or the papers `ids`, from the arXiv API."""
    query = query.strip()
    if not query and not ids:
        raise InputError("Give an arXiv query (--arxiv \"...\") or ids (--arxiv-id 2401.12345).")
    config = settings.arxiv
    limit = len(ids) if ids else (max_results or config.max_results)
    cache = _cache_path(settings, query, ids, limit)
    records = _read_cache(cache)
    resumed = len(records)
    have = {r.get("arxiv_id") for r in records}
    todo_ids = [i for i in ids if i not in have]
    client = arxiv.Client(
        page_size=min(config.page_size, limit), delay_seconds=config.delay_s,
        num_retries=config.retries,
    )
    client.query_url_format = config.api_url.rstrip("?") + "?{}"
    if ids:
        search = arxiv.Search(id_list=todo_ids, max_results=len(todo_ids))
        offset = 0
    else:
        search = arxiv.Search(query=query, max_results=limit)
        offset = resumed
    if on_progress:
        on_progress(resumed, limit)
    cache.parent.mkdir(parents=True, exist_ok=True)
    if (todo_ids or not ids) and offset < limit:
        # The library logs each retry at debug level and its own warnings; the error says it.
        logging.getLogger("arxiv").setLevel(logging.ERROR)
        try:
            with cache.open("a", encoding="utf-8") as out:
                for result in client.results(search, offset=offset):
                    record = _record(result)
                    if not record["title"] or not record["abstract"]:
                        continue
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
                    records.append(record)
                    if on_progress:
                        on_progress(len(records), limit)
        except (arxiv.ArxivError, OSError) as exc:
            if not records:
                cache.unlink(missing_ok=True)  # an empty resume file is only litter
            if isinstance(exc, arxiv.HTTPError) and 400 <= exc.status < 500 and exc.status != 429:
                raise ArxivUnreachableError(
                    f"The arXiv API rejected the request (HTTP status {exc.status}); nothing was "
                    "changed. Check the query syntax (e.g. ti:llava AND cat:cs.CV) or the ids."
                ) from exc
            raise ArxivUnreachableError(_unreachable(exc, len(records))) from exc
    what = f"the query \u201c{query}\u201d" if query else "those ids"
    if not records:
        cache.unlink(missing_ok=True)
        raise ArxivNoResultsError(
            f"arXiv found no papers for {what}; nothing was changed. Check the spelling, or "
            "try arXiv's query syntax, e.g. ti:llava AND cat:cs.CV."
        )
    found = {r.get("arxiv_id") for r in records}
    missing = [i for i in ids if i not in found]
    papers = [_paper(r, settings.corpus.search_url_template) for r in records]
    return ArxivFetch(papers, cache, resumed=resumed, missing=missing)


def _unreachable(exc: BaseException, fetched: int) -> str:
    kept = (
        f" The {fetched} paper{'s' if fetched != 1 else ''} fetched so far are kept; run the "
        "same command again to resume."
        if fetched
        else ""
    )
    return (
        f"The arXiv API is unreachable ({_reason(exc)}); nothing was changed in the index.{kept} "
        "Fetching from arXiv needs network access."
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, arxiv.HTTPError):
        return f"HTTP status {exc.status}"
    return type(exc).__name__
