"""The web chat's side of imported libraries: intro wording, upload messages, .bib export."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from rag.bibtex import parse_bibtex_string
from rag.citations import citation_for
from rag.corpus import read_source
from rag.errors import CorpusError
from rag.settings import Settings
from rag.types import Answer, CorpusSummary, Hit, IngestReport
from ui import render
from ui.handlers import ChatService, sources_phrase
from ui.render import Exchange

LIBRARY = Path(__file__).parent / "fixtures" / "library"
BUNDLED = ("000_c23ffdfbf418029a.txt", "001_e112e7a2b63268c1.txt")


class UploadingAssistant:
    def __init__(self, report: IngestReport | None = None, error: Exception | None = None) -> None:
        self.report, self.error = report, error
        self.ingested: list[list[Path]] = []

    def ingest(self, paths: list[Path]) -> IngestReport:
        self.ingested.append(paths)
        if self.error:
            raise self.error
        assert self.report is not None
        return self.report


def test_sources_are_named_for_people() -> None:
    bundled = CorpusSummary(182, Counter({BUNDLED[0]: 96, BUNDLED[1]: 95}))
    assert sources_phrase(bundled) == "two Hugging Face daily-papers pages"
    mixed = CorpusSummary(
        190, Counter({BUNDLED[0]: 96, BUNDLED[1]: 95, "refs.bib": 5, "arXiv": 3, "z.json": 1})
    )
    assert sources_phrase(mixed) == (
        "two Hugging Face daily-papers pages, refs.bib (BibTeX, 5 papers), the arXiv API "
        "(3 papers) and z.json (JSON (CSL-JSON or JSON Lines), 1 paper)"
    )
    assert sources_phrase(CorpusSummary(1, Counter({"mine.ris": 1}))) == "mine.ris (RIS, 1 paper)"


def test_upload_lists_merges_and_skips_or_names_the_formats(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    report = IngestReport(
        papers=185, new=3, updated=2, merged=2, skipped=1,
        notes=["merged “A” (refs.bib) into “A” (page.txt): same title",
               "refs.bib: skipped 1 entry without an abstract: noabstract2020"],
    )
    service = ChatService(settings, UploadingAssistant(report), summary=CorpusSummary())
    message = service.ingest(str(tmp_path / "refs.bib"))
    assert message.startswith("Added refs.bib: Indexed 185 papers (3 new, 2 updated")
    assert "Merged 2 duplicates. Skipped 1 entry." in message
    assert "\n- refs.bib: skipped 1 entry without an abstract: noabstract2020" in message

    odd = service.ingest(str(tmp_path / "paper.pdf"))
    assert odd.startswith("⚠️ paper.pdf: not a format paperchat reads. Supported: BibTeX .bib")
    failing = UploadingAssistant(error=CorpusError(f"{tmp_path}/bad.bib: malformed entry x (line 3)."))
    message = ChatService(settings, failing, summary=CorpusSummary()).ingest(str(tmp_path / "bad.bib"))
    assert message == "⚠️ bad.bib: malformed entry x (line 3)."


def test_bibtex_export_has_every_cited_paper_once(tmp_path: Path) -> None:
    papers = read_source(LIBRARY / "refs.bib", "https://s.example/?q={query}").papers
    hits = [Hit(p, score=1.0) for p in papers]

    def answer(*numbers: int) -> Answer:
        cited = [citation_for(i + 1, hits[n], "") for i, n in enumerate(numbers)]
        return Answer("text", cited, hits, False, "extractive")

    exchanges = [
        Exchange("q1", answer=answer(0, 2)),
        Exchange("q2", error="busy"),
        Exchange("q3", answer=answer(2, 1)),
    ]
    service = ChatService(Settings(data_dir=tmp_path / "d"), object(), export_dir=tmp_path / "x")
    path = service.write_bibtex_export(exchanges)
    assert path is not None and path.name == "paperchat-citations.bib"
    keys = [e["ID"] for e in parse_bibtex_string(path.read_text(encoding="utf-8"))]
    assert keys == ["garcia2023tidal", "zhang2025llavamini", "okafor2022glacier"]
    assert service.write_bibtex_export([Exchange("q", error="x")]) is None
    md = render.export_markdown(exchanges[:1])
    assert "(Ana García et al., 2023)" in md


def test_chat_links_keep_working_for_indexes_built_before_link_kinds(tmp_path: Path) -> None:
    # A record from an older index has no link_kind: shown as before, no "search" label.
    paper = read_source(LIBRARY / "refs.ris", "{query}").papers[0]
    from dataclasses import replace

    old = replace(paper, link_kind="", authors=(), year="")
    cite: Any = citation_for(1, Hit(old, 1.0), "")
    html = render.sources_html(Answer("x [1]", [cite], [Hit(old, 1.0)], False, "extractive"))
    assert "pc-search" not in html and "pc-byline" not in html


def test_intro_names_the_format_each_file_was_read_as(tmp_path: Path) -> None:
    import shutil

    from rag.corpus import load_sources
    from rag.pipeline import record_sources

    # A Zotero export is a .json, and Mendeley's RIS export may be a .txt: the extension
    # alone said "JSON (CSL-JSON or JSON Lines)" and "listing page".
    zotero, mendeley = tmp_path / "zotero.json", tmp_path / "mendeley.txt"
    shutil.copy(LIBRARY / "zotero.json", zotero)
    shutil.copy(LIBRARY / "refs.ris", mendeley)
    loaded = load_sources([zotero, mendeley], "https://s.example/?q={query}")
    settings = Settings(data_dir=tmp_path / "data")
    record_sources(settings, [zotero, mendeley], loaded.formats)
    service = ChatService(settings, object(), summary=CorpusSummary.of(loaded.papers))
    intro = service.intro_markdown()
    assert "from zotero.json (CSL-JSON, 3 papers) and mendeley.txt (RIS, 2 papers)." in intro
    # A later ingest adds to the record instead of replacing it.
    record_sources(settings, [None], {"000_c23ffdfbf418029a.txt": "listing"})
    assert ChatService(settings, object(), summary=CorpusSummary.of(loaded.papers)).recorded_formats() == {
        "zotero.json": "csl-json", "mendeley.txt": "ris", "000_c23ffdfbf418029a.txt": "listing"
    }


def test_answer_marker_of_a_title_search_says_so_on_hover() -> None:
    glacier, maps = read_source(LIBRARY / "refs.ris", "https://s.example/?q={query}").papers
    hits = [Hit(glacier, 1.0), Hit(maps, 1.0)]
    cites = [citation_for(1, hits[0], "Glacier melt."), citation_for(2, hits[1], "Maps.")]
    text = render.answer_markdown(Answer("Melt [1]. Maps [2].", cites, hits, False, "extractive"))
    doi, search = re.findall(r'\]\]\((\S+) "([^"]*)"\)', text)
    assert doi == ("https://doi.org/10.5555/glacier.2022.7", f"{glacier.title} — Glacier melt.")
    assert search[1] == f"{maps.title} (link: title search) — Maps."


def test_upload_is_kept_under_the_data_dir_and_a_failed_one_is_not(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upload = tmp_path / "gradio-tmp" / "refs.bib"
    upload.parent.mkdir()
    upload.write_bytes((LIBRARY / "refs.bib").read_bytes())
    assistant = UploadingAssistant(IngestReport(papers=5, new=5))
    message = ChatService(settings, assistant, summary=CorpusSummary()).ingest(str(upload))
    assert message.startswith("Added refs.bib: Indexed 5 papers")
    kept = assistant.ingested[0][0]
    # The ingest records the copy's path, which outlives gradio's upload folder.
    assert (kept.parent.parent, kept.name) == (settings.data_dir / "uploads", "refs.bib")
    assert kept.read_bytes() == upload.read_bytes()

    class Refusing(UploadingAssistant):
        def ingest(self, paths: list[Path]) -> IngestReport:
            self.ingested.append(paths)
            raise CorpusError(f"{paths[0]}: malformed entry x (line 3).")

    # The same file again is the same recorded input; a failure keeps the earlier copy.
    refusing = Refusing()
    message = ChatService(settings, refusing, summary=CorpusSummary()).ingest(str(upload))
    assert message == "⚠️ refs.bib: malformed entry x (line 3)."
    assert refusing.ingested[0][0] == kept and kept.exists()
    # A failed new file leaves no copy.
    other = upload.with_name("other.bib")
    other.write_text("@article{x,\n", encoding="utf-8")
    message = ChatService(settings, refusing, summary=CorpusSummary()).ingest(str(other))
    assert message == "⚠️ other.bib: malformed entry x (line 3)."
    assert not refusing.ingested[1][0].exists()
    assert [p.name for p in (settings.data_dir / "uploads").iterdir()] == [kept.parent.name]
