"""Ingest edge cases (issue 12, item 6): non-regular files, oversized records, merges that
drop abstracts, and writes bigger than Chroma's largest batch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import HashEmbeddings

from rag.corpus import load_sources as read_corpus
from rag.errors import CorpusError
from rag.index import PaperIndex
from rag.papers import MAX_ABSTRACT_CHARS
from rag.pipeline import Assistant, read_papers
from rag.settings import IndexSettings, Settings

SEARCH = "https://papers.example/search?q={query}"
ABSTRACT = "We study a problem of some importance. We propose a method that works well."
BIN = Path(sys.executable).parent


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.timeout(60)  # a FIFO that is opened blocks until a writer comes: never here
def test_fifo_is_skipped_with_a_message(tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "good.jsonl", [{"title": "Good", "abstract": ABSTRACT}])
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    read = read_corpus([fifo, good], SEARCH)
    assert [p.title for p in read.papers] == ["Good"]
    assert read.notes == [f"skipped {fifo}: not a regular file (a pipe, device or socket)"]
    read = read_corpus([tmp_path], SEARCH)  # the same FIFO found in a folder
    assert [p.title for p in read.papers] == ["Good"] and "pipe.jsonl" in read.notes[0]
    with pytest.raises(CorpusError, match="Nothing to read: skipped .*pipe.jsonl"):
        read_corpus([fifo], SEARCH)


def test_several_mb_abstract_is_refused_with_its_line_before_any_work(tmp_path: Path) -> None:
    big = _jsonl(
        tmp_path / "big.jsonl",
        [{"title": "Fine", "abstract": ABSTRACT},
         {"title": "Huge", "abstract": "Words and more words. " * 150_000}],
    )  # fmt: skip
    with pytest.raises(
        CorpusError, match=r"big\.jsonl, line 2: the abstract is 3,299,999 characters long; "
        r"the limit is 20,000"
    ) as refused:
        read_corpus([big], SEARCH)
    # What happened to the file is said once, after what to do.
    assert str(refused.value).lower().count("nothing from this file was ingested") == 1
    db = tmp_path / "db"
    result = subprocess.run(
        [str(BIN / "paperchat"), "ingest", str(big), "--db", str(db)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "line 2: the abstract is" in result.stderr
    assert not db.exists()  # refused before the index was even opened
    ok = "A sentence of the abstract. " * (MAX_ABSTRACT_CHARS // 28)
    assert read_corpus([_jsonl(tmp_path / "ok.jsonl", [{"title": "T", "abstract": ok}])], SEARCH)


def test_ten_thousand_character_title_is_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [{"title": "Long " * 2000, "abstract": ABSTRACT}])
    with pytest.raises(CorpusError, match=r"t\.jsonl, line 1: the title is 9,999 characters"):
        read_corpus([path], SEARCH)


def test_merges_are_reported_with_a_count(tmp_path: Path) -> None:
    a = _jsonl(
        tmp_path / "a.jsonl",
        [{"title": "Shared Title", "abstract": ABSTRACT},
         {"title": "shared title!", "abstract": ABSTRACT + " A longer version of it."},
         {"title": "Other", "abstract": ABSTRACT}],
    )  # fmt: skip
    b = _jsonl(tmp_path / "b.jsonl", [{"title": "Shared  Title", "abstract": "A third, short."},
                                      {"title": "Other", "abstract": ABSTRACT}])  # fmt: skip
    read = read_papers([a, b], Settings())
    assert (len(read.papers), read.entries, read.merged) == (2, 5, 3)
    # Each merge is reported, naming the copies; "Other" repeats an identical abstract:
    # merged, counted, nothing lost. The longest abstract is the one kept.
    assert len(read.notes) == 3
    assert sum("“Shared Title”" in n or "“shared title!”" in n or "“Shared  Title”" in n
               or "“Shared Title”" in n for n in read.notes) >= 2  # fmt: skip
    assert all(n.startswith("merged ") and "same title" in n for n in read.notes)
    assert read.papers[0].abstract.endswith("A longer version of it.")
    # The merges that dropped a different abstract say so; the identical copy does not.
    longest = len(read.papers[0].abstract)
    dropped = [n for n in read.notes if "their abstracts differ" in n]
    assert len(dropped) == 2 and all(f"kept the longest ({longest:,} characters)" in n for n in dropped)
    assert any(n.endswith("dropped one of 15") for n in dropped)  # "A third, short."
    assert [n for n in read.notes if "differ" not in n] == [
        "merged “Other” (b.jsonl) with the copy from a.jsonl: same title"
    ]

    settings = Settings(db_dir=tmp_path / "db")
    report = Assistant.create(settings, HashEmbeddings()).ingest_loaded(read, [a, b])  # type: ignore[arg-type]
    assert report.to_json()["merged"] == 3 and report.to_json()["notes"] == read.notes
    assert "Merged 3 duplicates." in report.summary()


def test_writes_are_split_under_the_stores_largest_batch(tmp_path: Path) -> None:
    settings = Settings(db_dir=tmp_path / "db", index=IndexSettings(write_chunks=10_000))
    index = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
    papers = read_corpus(None, SEARCH).papers[:60]
    client = index.store._client
    sizes: list[int] = []
    for collection in (index.store._chunks, index.store._papers):
        original = collection.upsert

        def recording(original: Any = original, **columns: Any) -> Any:
            sizes.append(len(columns["ids"]))
            return original(**columns)

        object.__setattr__(collection, "upsert", recording)
    object.__setattr__(client, "get_max_batch_size", lambda: 50)  # Chroma's is 5,461 here
    report = index.ingest(papers)
    assert report.papers == 60 and report.chunks > 200
    assert max(sizes) == 50 and sum(sizes) == report.chunks + 60


_FINE = "A fine abstract that is long enough to be read as one."
_HUGE = "Words and more words. " * 1000


@pytest.mark.parametrize(
    ("name", "text", "place"),
    [
        ("refs.bib",
         f"@article{{a,\n title={{Fine paper}},\n abstract={{{_FINE}}}\n}}\n\n"
         f"@article{{b,\n title={{Huge}},\n abstract={{{_HUGE}}}\n}}\n",
         r"refs\.bib, entry b \(line 6\)"),
        ("refs.ris",
         f"TY  - JOUR\nTI  - Fine paper\nAB  - {_FINE}\nER  - \n\n"
         f"TY  - JOUR\nTI  - Huge\nAB  - {_HUGE}\nER  - \n",
         r"refs\.ris, record at line 6"),
        ("refs.json",
         json.dumps([{"title": "Fine paper", "abstract": _FINE}, {"title": "Huge", "abstract": _HUGE}]),
         r"refs\.json, item 2"),
    ],
)  # fmt: skip
def test_reference_manager_files_name_the_refused_record(
    tmp_path: Path, name: str, text: str, place: str
) -> None:
    """BibTeX, RIS and CSL-JSON records are held to the same limits as JSON Lines, and the
    message names the file and the record; --skip-bad reads the others."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=place + r": the abstract is 21,999 characters long"):
        read_corpus([path], SEARCH)
    read = read_corpus([path], SEARCH, skip_bad=True)
    assert [p.title for p in read.papers] == ["Fine paper"]
    assert read.skipped == 1 and re.search(place, read.notes[0]), read.notes


@pytest.mark.parametrize(
    ("name", "text", "place"),
    [
        ("refs.bib", f"@article{{k1,\n title={{!!! ???}},\n abstract={{{_FINE}}}\n}}\n",
         r"refs\.bib, entry k1 \(line 1\)"),
        ("refs.ris", f"TY  - JOUR\nTI  - ★ ☆\nAB  - {_FINE}\nER  - \n", r"refs\.ris, record at line 1"),
        ("refs.json", json.dumps([{"title": "—", "abstract": _FINE}]), r"refs\.json, item 1"),
        ("refs2.json", json.dumps([{"title": "T\ud800", "abstract": _FINE}]), r"refs2\.json, item 1"),
    ],
)  # fmt: skip
def test_reference_manager_files_name_a_record_without_a_usable_title(
    tmp_path: Path, name: str, text: str, place: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=place + ": "):
        read_corpus([path], SEARCH)
