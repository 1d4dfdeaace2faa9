"""Reference-manager formats in (BibTeX, RIS, CSL-JSON), duplicates across them, BibTeX out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.bibtex import bibtex_entries, parse_bibtex_string
from rag.citations import citation_for, format_sources
from rag.corpus import detect_format, load_sources, read_source
from rag.errors import CorpusError
from rag.metadata import (
    author_line,
    citation_key,
    normalize_arxiv_id,
    normalize_doi,
)
from rag.papers import make_paper, paper_id
from rag.types import Answer, Hit
from ui import render

LIBRARY = Path(__file__).parent / "fixtures" / "library"
SEARCH = "https://papers.example/search?q={query}"


def copy(tmp_path: Path, name: str, as_name: str | None = None) -> Path:
    target = tmp_path / (as_name or name)
    shutil.copy(LIBRARY / name, target)
    return target


# ---- BibTeX ------------------------------------------------------------------------------


def test_bibtex_decodes_accents_latex_and_braces() -> None:
    read = read_source(LIBRARY / "refs.bib", SEARCH)
    assert read.format == "bibtex"
    by_title = {p.title: p for p in read.papers}
    tidal = by_title["Tidal Memory: Long-Context Retrieval for Étude & Café Dialogues"]
    assert tidal.authors == ("García, Ana", "Müller, Jörg", "van der Berg, Piet")
    assert "CaféChat benchmark it answers 64% of long-range questions" in tidal.abstract
    # @string macros resolve; the DOI loses its resolver prefix and case.
    assert tidal.venue.startswith("Proceedings of the Annual Meeting")
    assert (tidal.year, tidal.doi) == ("2023", "10.5555/tidal.2023.42")
    assert (tidal.url, tidal.link_kind) == ("https://doi.org/10.5555/tidal.2023.42", "doi")
    assert by_title["Acoustic Monitoring of Honeybee Colonies with Low-Power Microphones"].authors == (
        "Novák, Tomáš",
    )
    mini = by_title[
        "LLaVA-Mini: Efficient Image and Video Large Multimodal Models with One Vision Token"
    ]
    assert (mini.arxiv_id, mini.url, mini.link_kind) == (
        "2501.03895", "https://arxiv.org/abs/2501.03895", "arxiv"
    )
    assert read.papers[0].source == "refs.bib"


def test_bibtex_entries_without_abstract_are_named_and_skipped() -> None:
    read = read_source(LIBRARY / "refs.bib", SEARCH)
    assert len(read.papers) == 5
    assert read.skipped == ["refs.bib: skipped 1 entry without an abstract: noabstract2020"]


def test_entries_without_a_title_are_named_apart_from_those_without_an_abstract(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.bib"
    path.write_text(
        "@article{ok1, title={Kept}, abstract={We keep this one.}}\n"
        "@article{notitle1, abstract={An abstract whose entry lost its title.}}\n"
        "@article{noabs1, title={No abstract}}\n",
        encoding="utf-8",
    )
    read = read_source(path, SEARCH)
    assert [p.title for p in read.papers] == ["Kept"]
    assert read.skipped == [
        "mixed.bib: skipped 1 entry without an abstract: noabs1",
        "mixed.bib: skipped 1 entry without a title: notitle1",
    ]


def test_bibtex_with_no_abstract_at_all_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bare.bib"
    path.write_text("@article{a1, title={One}}\n@book{b2, title={Two}}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bare.bib \(BibTeX\) yields no papers with an abstract.*a1, b2"):
        read_source(path, SEARCH)


def test_malformed_bibtex_names_entry_and_line_and_ingests_nothing(tmp_path: Path) -> None:
    bad = copy(tmp_path, "bad.bib")
    with pytest.raises(CorpusError) as error:
        load_sources([copy(tmp_path, "refs.bib"), bad], SEARCH)
    message = str(error.value)
    assert "bad.bib: malformed entry broken2021 (line 8)" in message
    assert "--skip-bad" in message and "nothing from this file was ingested" in message


def test_skip_bad_reads_the_other_bibtex_entries(tmp_path: Path) -> None:
    loaded = load_sources([copy(tmp_path, "bad.bib")], SEARCH, skip_bad=True)
    assert [p.title for p in loaded.papers] == ["A Good Entry", "An Entry After the Broken One"]
    assert loaded.skipped == 1
    assert loaded.notes[0].startswith("bad.bib: skipped malformed entry broken2021 (line 8): ")


# ---- RIS and CSL-JSON -----------------------------------------------------------------


def test_ris_reader_keeps_metadata_and_names_records_without_abstract() -> None:
    read = read_source(LIBRARY / "refs.ris", SEARCH)
    glacier, maps = read.papers
    assert glacier.authors == ("Okafor, Chidi", "Lindqvist, Sven")
    assert glacier.abstract.endswith("missing passes with a physics-informed network.")
    assert (glacier.year, glacier.venue, glacier.doi) == (
        "2022", "Journal of Remote Sensing Letters", "10.5555/glacier.2022.7"
    )
    assert (maps.year, maps.url, maps.link_kind) == (
        "2019", "https://papers.example/search?q=Drawing+Transit+Maps+with+Integer+Programs",
        "search",
    )
    assert read.skipped == ["refs.ris: skipped 1 record without an abstract: no-abstract"]


def test_malformed_ris_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.ris"
    good = (LIBRARY / "refs.ris").read_text(encoding="utf-8").split("\n\n")[0]
    path.write_text(good + "\n\nTY  - JOUR\nTI  - Cut off\nAB  - No end tag.\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"cut.ris: malformed RIS, record at line 14 \(TI Cut off\) has no `ER  -` end"):
        read_source(path, SEARCH)
    read = read_source(path, SEARCH, skip_bad=True)
    assert [p.title for p in read.papers] == ["Glacier melt prediction from sparse satellite passes"]


def test_csl_json_from_zotero_schema() -> None:
    read = read_source(LIBRARY / "zotero.json", SEARCH)
    assert read.format == "csl-json"
    bees, mini, waves = read.papers
    assert bees.authors == ("Novák, Tomáš",)
    assert (bees.date, bees.year, bees.doi) == ("2021-05-03", "2021", "10.5555/bees.2021.3")
    assert bees.venue == "Computers and Electronics in Agriculture"
    assert mini.authors == ("Zhang, Shaolei", "Fang, Qingkai", "The LLaVA-Mini Team")
    assert (mini.arxiv_id, mini.link_kind) == ("2501.03895", "arxiv")
    assert waves.authors == ("van der Berg, Piet",)
    assert (waves.year, waves.venue) == ("2024", "Ocean Sciences Meeting")
    assert read.skipped == ["zotero.json: skipped 1 item without an abstract: no-abstract-item"]


def test_malformed_csl_json_item_is_named(tmp_path: Path) -> None:
    items = json.loads((LIBRARY / "zotero.json").read_text(encoding="utf-8"))
    items[1]["author"] = "Zhang, Shaolei"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"malformed CSL-JSON item 2 \(zhang2025llavamini\): \"author\" is not a list"):
        read_source(path, SEARCH)
    assert len(read_source(path, SEARCH, skip_bad=True).papers) == 2


def test_format_is_picked_by_extension_then_content(tmp_path: Path) -> None:
    ris_as_txt = copy(tmp_path, "refs.ris", "mendeley-export.txt")
    assert read_source(ris_as_txt, SEARCH).format == "ris"
    bib_no_ext = copy(tmp_path, "refs.bib", "library")
    assert detect_format(bib_no_ext, bib_no_ext.read_text()) == "bibtex"
    jsonl = tmp_path / "papers.json"
    jsonl.write_text(json.dumps({"title": "T", "abstract": "An abstract."}) + "\n")
    assert read_source(jsonl, SEARCH).format == "jsonl"
    odd = tmp_path / "paper.xml"
    odd.write_text("<xml>not a paper list</xml>")
    with pytest.raises(CorpusError) as error:
        read_source(odd, SEARCH)
    for kind in ("BibTeX (.bib)", "RIS (.ris)", "CSL-JSON (.json", "JSON Lines (.jsonl", "listing page"):
        assert kind in str(error.value)


# ---- duplicates ----------------------------------------------------------------------


def test_duplicate_dois_across_files_become_one_paper_with_the_richest_metadata(
    tmp_path: Path,
) -> None:
    loaded = load_sources(
        [copy(tmp_path, "refs.bib"), copy(tmp_path, "refs.ris"), copy(tmp_path, "zotero.json")],
        SEARCH,
    )
    titles = [p.title for p in loaded.papers]
    # refs.bib 5 + refs.ris 2 + zotero.json 3 entries; glacier (DOI), LLaVA-Mini (arXiv id)
    # and the bee paper (title) are the same papers.
    assert loaded.entries == 10 and len(titles) == 7
    glacier = next(p for p in loaded.papers if p.doi == "10.5555/glacier.2022.7")
    assert glacier.title == "Glacier Melt Prediction from Sparse Satellite Passes"  # first kept
    assert glacier.source == "refs.bib, refs.ris"
    assert glacier.url == "https://doi.org/10.5555/glacier.2022.7"
    bees = next(p for p in loaded.papers if "Honeybee" in p.title)
    assert bees.doi == "10.5555/bees.2021.3"  # only the Zotero copy had the DOI
    assert bees.link_kind == "doi" and bees.date == "2021-05-03"
    mini = next(p for p in loaded.papers if p.arxiv_id == "2501.03895")
    assert mini.abstract.endswith("77% fewer FLOPs.")  # the longer abstract
    assert loaded.merged == 3
    assert any("refs.ris" in n and "same DOI" in n for n in loaded.notes)
    assert any("zotero.json" in n and "same arXiv id" in n for n in loaded.notes)
    assert any("zotero.json" in n and "same title" in n for n in loaded.notes)


# ---- BibTeX out ----------------------------------------------------------------------


def test_bibtex_output_round_trips_through_bibtexparser() -> None:
    papers = read_source(LIBRARY / "refs.bib", SEARCH).papers
    text = bibtex_entries(papers)
    entries = {e["ID"]: e for e in parse_bibtex_string(text)}
    assert list(entries) == [
        "garcia2023tidal", "okafor2022glacier", "zhang2025llavamini", "novak2021acoustic",
        "lee2024finecliper",
    ]
    for paper, entry in zip(papers, entries.values(), strict=True):
        assert entry["title"] == paper.title
        assert entry["abstract"] == paper.abstract
        assert entry["author"] == " and ".join(paper.authors)
        assert entry.get("year") == paper.year
        assert entry.get("doi", "") == paper.doi
    assert entries["garcia2023tidal"]["ENTRYTYPE"] == "inproceedings"
    assert entries["okafor2022glacier"]["ENTRYTYPE"] == "article"
    # arXiv-only: @misc with eprint.
    mini = entries["zhang2025llavamini"]
    assert (mini["ENTRYTYPE"], mini["eprint"], mini["archiveprefix"]) == ("misc", "2501.03895", "arXiv")
    # Escaped for LaTeX: & % and accents cannot break a build.
    assert r"\'Etude \& Caf\'e" in text and r"64\%" in text and r"Garc{\'\i}a" in text
    assert "https://doi.org/10.5555/tidal.2023.42" in text  # URLs are not LaTeX-escaped


def test_bibtex_keys_are_stable_and_unique() -> None:
    def paper(title: str, authors: tuple[str, ...], year: str = "2024") -> object:
        return make_paper(title, "An abstract.", source="t", search_url_template=SEARCH,
                          authors=authors, year=year)

    a = paper("LLaVA-Mini: Efficient Models", ("Lin, Xiaohan",))
    b = paper("The LLaVA-Mini Follow-up", ("Xiaohan Lin", "Other One"))
    assert citation_key(a) == citation_key(b) == "lin2024llavamini"  # type: ignore[arg-type]
    text = bibtex_entries([a, b, a])  # type: ignore[list-item]
    assert [e["ID"] for e in parse_bibtex_string(text)] == ["lin2024llavamini", "lin2024llavaminib"]
    assert bibtex_entries([]) == ""


# ---- metadata in answers -------------------------------------------------------------


def test_identifiers_and_author_lines() -> None:
    assert normalize_doi("https://doi.org/10.1000/ABC.1.") == "10.1000/abc.1"
    assert normalize_doi("no doi here") == ""
    assert normalize_arxiv_id("arXiv:2401.12345v3") == "2401.12345"
    assert normalize_arxiv_id("https://arxiv.org/pdf/hep-th/9901001v1") == "hep-th/9901001"
    assert normalize_arxiv_id("10.48550/arXiv.2401.12345") == "2401.12345"
    assert author_line(["Lin, Xiaohan"]) == "Xiaohan Lin"
    assert author_line(["Lin, Xiaohan", "Wei Zhang"]) == "Xiaohan Lin and Wei Zhang"
    assert author_line(["A B", "C D", "E F"]) == "A B et al."
    assert paper_id("Hello, World!") == paper_id("hello world")


def test_sources_show_authors_year_and_say_search() -> None:
    papers = read_source(LIBRARY / "refs.ris", SEARCH).papers
    hits = [Hit(p, score=1.0) for p in papers]
    citations = [citation_for(n, h, h.paper.abstract.split(". ")[0]) for n, h in enumerate(hits, 1)]
    listed = format_sources(citations)
    assert listed.splitlines() == [
        "[1] Glacier melt prediction from sparse satellite passes (Chidi Okafor and Sven "
        "Lindqvist, 2022) — https://doi.org/10.5555/glacier.2022.7",
        "[2] Drawing Transit Maps with Integer Programs (Elena Ruiz, 2019) — "
        "https://papers.example/search?q=Drawing+Transit+Maps+with+Integer+Programs (search)",
    ]
    data = citations[0].to_json()
    assert (data["authors"], data["year"], data["doi"]) == (
        ["Okafor, Chidi", "Lindqvist, Sven"], "2022", "10.5555/glacier.2022.7"
    )
    answer = Answer("Glaciers [1]. Maps [2].", citations, hits, False, "extractive")
    panel = render.sources_html(answer)
    assert '<span class="pc-byline">Chidi Okafor and Sven Lindqvist, 2022</span>' in panel
    assert panel.count('class="pc-search"') == 1


def test_llm_sources_name_authors_and_year_only_when_known() -> None:
    from rag.llm import _sources_block

    glacier, maps = read_source(LIBRARY / "refs.ris", SEARCH).papers
    bare = make_paper("Bare Title", "An abstract.", source="t", search_url_template=SEARCH)
    block = _sources_block([Hit(glacier, 1.0), Hit(bare, 1.0)])
    assert "title: Glacier melt prediction from sparse satellite passes\nby: Chidi Okafor and Sven Lindqvist, 2022\nabstract:" in block
    assert "title: Bare Title\nabstract: An abstract." in block  # as before for bare papers


def test_duplicate_bibtex_keys_and_broken_json_are_named(tmp_path: Path) -> None:
    twice = tmp_path / "twice.bib"
    entry = "@article{same2020,\n  title = {T},\n  abstract = {An abstract here.},\n}\n\n"
    twice.write_text(entry + entry, encoding="utf-8")
    with pytest.raises(CorpusError, match=r"malformed entry same2020 \(line 6\): its key is used by an earlier entry"):
        read_source(twice, SEARCH)
    broken = tmp_path / "zotero.json"
    broken.write_text('[\n  {"title": "T",\n   "abstract": "A"\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"zotero.json, line 4: not valid JSON"):
        read_source(broken, SEARCH)


def test_link_prefers_doi_then_arxiv_then_the_source_url_then_a_labelled_search() -> None:
    def link(**fields: str) -> tuple[str, str]:
        paper = make_paper("A Title", "An abstract.", source="t", search_url_template=SEARCH,
                           **fields)  # fmt: skip
        return paper.url, paper.link_kind

    url = "https://example.org/paper"
    assert link(doi="10.1000/X", arxiv_id="2401.12345", url=url) == (
        "https://doi.org/10.1000/x", "doi"
    )
    assert link(arxiv_id="2401.12345", url=url) == ("https://arxiv.org/abs/2401.12345", "arxiv")
    # arXiv's own DOI names the preprint: it links to the abstract page, not a DOI resolver.
    assert link(doi="10.48550/arXiv.2401.12345") == ("https://arxiv.org/abs/2401.12345", "arxiv")
    assert link(url=url) == (url, "source")
    assert link(url="ftp://example.org/x") == ("https://papers.example/search?q=A+Title", "search")
