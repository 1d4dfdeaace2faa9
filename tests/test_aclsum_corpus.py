"""scripts/aclsum_corpus.py: the aclsum package's 250 papers as a corpus with metadata."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from rag.corpus import read_source

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "aclsum_corpus.py"


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("aclsum_corpus", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_years_and_venues_come_from_anthology_ids() -> None:
    script = load_script()
    assert script.year_and_venue("2020.acl-main.282") == ("2020", "Proceedings of ACL 2020")
    assert script.year_and_venue("P06-1112") == ("2006", "Proceedings of ACL 2006")
    assert script.year_and_venue("Q17-1001") == ("2017", "TACL")
    assert script.year_and_venue("odd") == ("", "")


def test_the_250_papers_read_as_a_corpus_with_authors(tmp_path: Path) -> None:
    records = load_script().records()
    assert len(records) == 250
    assert sum(1 for r in records if r["authors"]) >= 240 and all(r["year"] for r in records)
    path = tmp_path / "aclsum.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    papers = read_source(path, "https://s.example/?q={query}").papers
    foil = next(p for p in papers if p.title.startswith("FOIL it!"))
    assert (foil.year, foil.link_kind, foil.url) == (
        "2017", "source", "https://aclanthology.org/P17-1024/"
    )
    assert foil.authors[0] == "Shekhar, Ravi"
