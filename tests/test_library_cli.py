"""The library flags of `paperchat ingest` at their edges: --arxiv / --max values, a failed
arXiv fetch leaving no litter, and --rebuild of an index that was built with --skip-bad."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main

LIBRARY = Path(__file__).parent / "fixtures" / "library"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("value", ["0", "-5", "10001", "many"])
def test_max_outside_the_settings_range_is_refused_before_any_request(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--max -5` used to skip the request and say "arXiv found no papers for the query".
    with pytest.raises(SystemExit) as stop:
        main(["ingest", "--arxiv", "ti:llava", "--max", value, "--db", str(tmp_path / "db")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max:" in err
    assert "use 1 to 10000" in err if value != "many" else "'many' is not a whole number" in err
    assert "found no papers" not in err
    assert not (tmp_path / "db").exists()


def test_empty_arxiv_query_is_an_error_not_the_bundled_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--arxiv ""` (an unset shell variable) used to ingest the bundled corpus instead.
    db = tmp_path / "db"
    code, out, err = run(capsys, "ingest", "--arxiv", "", "--db", str(db))
    assert code == 2 and out == ""
    assert 'Give an arXiv query (--arxiv "...")' in err
    assert not db.exists()
    code, _, err = run(capsys, "ingest", "--arxiv", "", str(LIBRARY / "refs.bib"), "--db", str(db))
    assert code == 2 and "not two in one command" in err


def test_failed_fetch_leaves_no_empty_resume_file(tmp_path: Path) -> None:
    from rag.arxiv_api import ArxivUnreachableError, fetch
    from tests.test_arxiv import CASSETTES, settings_for

    settings = settings_for(tmp_path)
    with CASSETTES.use_cassette("arxiv_bad_request.yaml"), pytest.raises(ArxivUnreachableError):
        fetch(settings, ids=["2402.01234"])
    assert list((tmp_path / "data" / "arxiv").glob("*.jsonl")) == []


@pytest.mark.integration
def test_rebuild_of_an_index_ingested_with_skip_bad_takes_skip_bad(tmp_path: Path) -> None:
    # Separate processes, as a user runs them: the rebuild replaces the directory an
    # in-process Chroma client of the first ingest would still hold.
    def paperchat(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "paperchat"), *argv],
            capture_output=True, text=True, timeout=600, env=dict(os.environ),
        )  # fmt: skip

    bad = tmp_path / "bad.bib"
    shutil.copy(LIBRARY / "bad.bib", bad)
    db = tmp_path / "db"
    done = paperchat("ingest", str(bad), "--skip-bad", "--db", str(db))
    assert done.returncode == 0, done.stderr
    # The ingest records what it read, and as which format (the web chat's intro says it).
    record = json.loads((db / "sources.json").read_text(encoding="utf-8"))
    assert record == {"inputs": [str(bad.resolve())], "formats": {"bad.bib": "bibtex"}}
    # The file still has its broken entry: the rebuild says so and moves nothing ...
    done = paperchat("ingest", "--rebuild", "--db", str(db))
    assert done.returncode == 2
    assert "malformed entry broken2021" in done.stderr and "--skip-bad" in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("db.old-")] == []
    # ... and following its advice works (--rebuild used to ignore --skip-bad).
    done = paperchat("ingest", "--rebuild", "--skip-bad", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["papers"], report["new"], report["skipped"]) == (2, 2, 1)


@pytest.mark.integration
def test_rebuild_after_a_web_upload_reads_the_kept_copy(
    tmp_path: Path, embeddings,  # type: ignore[no-untyped-def]
) -> None:
    from rag.pipeline import Assistant
    from rag.settings import Settings
    from ui.handlers import ChatService

    db = tmp_path / "db"
    settings = Settings(data_dir=tmp_path / "data", db_dir=db)
    upload = tmp_path / "gradio-tmp" / "refs.ris"
    upload.parent.mkdir()
    shutil.copy(LIBRARY / "refs.ris", upload)
    service = ChatService(settings, Assistant.create(settings, embeddings))
    assert service.ingest(str(upload)).startswith("Added refs.ris: Indexed 2 papers")
    shutil.rmtree(upload.parent)  # gradio deletes its uploads after a day
    # Used to stop with "refs.ris does not exist": the record named the temporary upload.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "paperchat"), "ingest", "--rebuild", "--db", str(db),
         "--json"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PAPERCHAT_DATA_DIR": str(settings.data_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["papers"] == 2


@pytest.mark.integration
def test_rebuild_keeps_the_papers_fetched_from_arxiv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    embeddings,  # type: ignore[no-untyped-def]
) -> None:
    from rag import pipeline
    from rag.settings import Settings
    from tests.test_arxiv import CASSETTES, QUERY

    monkeypatch.setattr(pipeline, "_embeddings", lambda settings: embeddings)
    monkeypatch.setenv("PAPERCHAT_ARXIV_DELAY_S", "0")
    db = tmp_path / "db"
    bib = tmp_path / "refs.bib"
    shutil.copy(LIBRARY / "refs.bib", bib)
    assert run(capsys, "ingest", str(bib), "--db", str(db))[0] == 0
    with CASSETTES.use_cassette("arxiv_query.yaml"):
        code, out, err = run(capsys, "ingest", "--arxiv", QUERY, "--max", "3", "--db", str(db))
    assert code == 0, err
    # LLaVA-Mini is in refs.bib too (same arXiv id): 5 + 2 papers.
    assert out.startswith("Indexed 7 papers (2 new, 1 updated")
    record = json.loads((db / "sources.json").read_text(encoding="utf-8"))
    [kept] = record["arxiv"]
    assert Path(kept).parent == pipeline.arxiv_folder(Settings(db_dir=db))
    assert record["inputs"] == [str(bib.resolve())]

    # A rebuild used to read refs.bib only: the two arXiv-only papers were gone.
    paperchat = str(Path(sys.executable).parent / "paperchat")
    env = dict(os.environ)
    done = subprocess.run([paperchat, "ingest", "--rebuild", "--db", str(db), "--json"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["papers"], report["new"], report["merged"]) == (7, 7, 1)
    assert any("(arXiv) with the copy from refs.bib: same arXiv id" in n for n in report["notes"])
    done = subprocess.run(
        [paperchat, "ask", "How are beetles counted with phone cameras?", "--db", str(db),
         "--json"], capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cited = json.loads(done.stdout)["citations"][0]
    assert (cited["title"], cited["url"]) == (
        "Counting Sparse Beetles with Phone Cameras", "https://doi.org/10.5555/beetles.2024.7"
    )
    # And the rebuilt index's record still names the kept fetch, for the next rebuild.
    assert json.loads((db / "sources.json").read_text(encoding="utf-8"))["arxiv"] == [kept]
