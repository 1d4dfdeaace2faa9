"""A reference-manager library on top of the bundled corpus, end to end: real Chroma, the
real bundled model, the CLI and the web chat's service."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag import pipeline
from rag.bibtex import parse_bibtex_string
from rag.cli import main
from rag.pipeline import Assistant
from rag.settings import Settings
from ui.handlers import ChatService

pytestmark = pytest.mark.integration

LIBRARY = Path(__file__).parent / "fixtures" / "library"
TIDAL = "Tidal Memory: Long-Context Retrieval for Étude & Café Dialogues"
FINECLIPER = (
    "FineCLIPER: Multi-modal Fine-grained CLIP for Dynamic Facial Expression Recognition "
    "with AdaptERs"
)


@pytest.fixture(autouse=True)
def shared_model(monkeypatch: pytest.MonkeyPatch, embeddings) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pipeline, "_embeddings", lambda settings: embeddings)


@pytest.fixture
def library_db(bundled_db: Path, tmp_path: Path) -> Path:
    """A copy of the bundled corpus's index (182 papers) to import into."""
    db = tmp_path / "db"
    shutil.copytree(bundled_db, db)
    return db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bib_on_top_of_bundled_corpus_answers_with_authors_year_and_doi(
    library_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], embeddings
) -> None:  # type: ignore[no-untyped-def]
    bib = tmp_path / "refs.bib"
    shutil.copy(LIBRARY / "refs.bib", bib)
    code, out, _ = run(capsys, "ingest", str(bib), "--db", str(library_db))
    assert code == 0
    # Three new papers; FineCLIPER and LLaVA-Mini were already there (bundled pages) and
    # gain the .bib's metadata.
    assert out.startswith("Indexed 185 papers (3 new, 2 updated, 0 unchanged;")
    assert "Merged 2 duplicates. Skipped 1 entry." in out
    short = FINECLIPER[:79] + "…"
    assert f"merged “{short}” (refs.bib) with the copy from 000_c23ffdfbf418029a.txt: same title" in out
    assert "refs.bib: skipped 1 entry without an abstract: noabstract2020" in out

    code, out, _ = run(capsys, "ingest", str(bib), "--db", str(library_db), "--json")
    again = json.loads(out)
    assert (again["new"], again["updated"], again["unchanged"], again["merged"]) == (0, 0, 5, 0)

    # Stored papers are found by DOI and by arXiv id even when the titles differ.
    more = tmp_path / "more.jsonl"
    more.write_text(
        json.dumps({"title": "Predicting glacier melt (preprint version)", "doi": "doi:10.5555/GLACIER.2022.7",
                    "abstract": "Short preprint abstract about glacier melt."}) + "\n"
        + json.dumps({"title": "LLaVA Mini", "arxiv_id": "arXiv:2501.03895v2",
                      "abstract": "One vision token is enough.", "date": "2025-01-07"}) + "\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "ingest", str(more), "--db", str(library_db), "--json")
    report = json.loads(out)
    assert (report["papers"], report["new"], report["updated"], report["merged"]) == (185, 0, 2, 2)
    assert any("same DOI" in n and "Glacier Melt Prediction" in n for n in report["notes"])
    assert any("same arXiv id" in n and "“LLaVA Mini” (more.jsonl)" in n for n in report["notes"])

    question = "How does Tidal Memory let dialogue models recall conversations from weeks earlier?"
    code, out, _ = run(capsys, "ask", question, "--db", str(library_db), "--json", "--bibtex")
    assert code == 0
    data = json.loads(out)
    cited = data["citations"][0]
    assert cited["title"] == TIDAL
    assert cited["authors"] == ["García, Ana", "Müller, Jörg", "van der Berg, Piet"]
    assert cited["year"] == "2023"
    assert (cited["doi"], cited["url"], cited["link_kind"]) == (
        "10.5555/tidal.2023.42", "https://doi.org/10.5555/tidal.2023.42", "doi"
    )
    entries = parse_bibtex_string(data["bibtex"])
    assert entries[0]["ID"] == "garcia2023tidal" and entries[0]["title"] == TIDAL

    code, out, _ = run(capsys, "ask", question, "--db", str(library_db))
    assert (
        f"[1] {TIDAL} (Ana García et al., 2023) — https://doi.org/10.5555/tidal.2023.42" in out
    )
    code, out, _ = run(capsys, "ask", question, "--db", str(library_db), "--bibtex")
    assert out.startswith("@inproceedings{garcia2023tidal,")

    # The merged bundled paper keeps its longer abstract and links to its DOI now.
    assistant = Assistant.open(Settings(db_dir=library_db), embeddings=embeddings)
    merged = next(p for p in assistant.index.all_papers() if p.title == FINECLIPER)
    assert merged.doi == "10.5555/fineclip.2024.1" and merged.link_kind == "doi"
    assert merged.authors == ("Lee, Min-Jun", "Park, Soo-Ah") and merged.year == "2024"
    assert merged.source.endswith(", refs.bib") and len(merged.abstract) > 500
    mini = next(p for p in assistant.index.all_papers() if p.title.startswith("LLaVA-Mini:"))
    assert (mini.url, mini.link_kind) == ("https://arxiv.org/abs/2501.03895", "arxiv")

    # The web chat names the sources and answers /ask with the same citation and BibTeX.
    service = ChatService(assistant.settings, assistant)
    intro = service.intro_markdown()
    assert (
        "**185 papers** from two Hugging Face daily-papers pages, refs.bib (BibTeX, 5 papers) "
        "and more.jsonl (JSON Lines, 2 papers)."
    ) in intro
    result = service.ask_json(question, [])
    assert result["citations"][0]["doi"] == "10.5555/tidal.2023.42"
    assert result["bibtex"].startswith("@inproceedings{garcia2023tidal,")


def test_bad_bib_changes_nothing_and_skip_bad_reads_the_rest(
    library_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.bib"
    shutil.copy(LIBRARY / "bad.bib", bad)
    code, _, err = run(capsys, "ingest", str(bad), "--db", str(library_db))
    assert code == 2
    assert "bad.bib: malformed entry broken2021 (line 8)" in err and "--skip-bad" in err
    code, out, _ = run(capsys, "ingest", str(bad), "--db", str(library_db), "--skip-bad", "--json")
    report = json.loads(out)
    assert (report["papers"], report["new"], report["skipped"]) == (184, 2, 1)
    assert report["notes"][0].startswith("bad.bib: skipped malformed entry broken2021 (line 8)")


def test_arxiv_ingest_merges_with_the_bundled_copy_and_is_idempotent(
    library_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    embeddings,  # type: ignore[no-untyped-def]
) -> None:
    from tests.test_arxiv import CASSETTES, QUERY

    monkeypatch.setenv("PAPERCHAT_ARXIV_DELAY_S", "0")
    argv = ["ingest", "--arxiv", QUERY, "--max", "3", "--db", str(library_db)]
    with CASSETTES.use_cassette("arxiv_query.yaml"):
        code, out, err = run(capsys, *argv)
    assert code == 0, err
    # LLaVA-Mini is on a bundled page: one paper, now with its arXiv link and authors.
    assert out.startswith("Indexed 184 papers (2 new, 1 updated, 0 unchanged;")
    assert "Merged 1 duplicate." in out and "(arXiv) with the copy from 001_e112e7a2b63268c1.txt: same title" in out
    assert "Fetching from arXiv: 3/3 papers" in err  # progress (log lines when not a terminal)
    with CASSETTES.use_cassette("arxiv_query.yaml"):
        code, out, _ = run(capsys, *argv, "--json")
    report = json.loads(out)
    assert (report["papers"], report["new"], report["updated"], report["unchanged"]) == (184, 0, 0, 3)

    assistant = Assistant.open(Settings(db_dir=library_db), embeddings=embeddings)
    mini = next(p for p in assistant.index.all_papers() if p.arxiv_id == "2501.03895")
    assert mini.title.startswith("LLaVA-Mini:") and mini.source == "001_e112e7a2b63268c1.txt, arXiv"
    assert mini.authors[0] == "Shaolei Zhang" and mini.year == "2025"
    assert not list((Settings().data_dir / "arxiv").glob("*.jsonl"))  # resume file gone
