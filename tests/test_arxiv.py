"""arXiv ingest against recorded API responses (tests/cassettes, written from the documented
Atom format); no test here reaches arXiv."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import vcr

from rag.arxiv_api import (
    ArxivNoResultsError,
    ArxivUnreachableError,
    fetch,
    parse_ids,
)
from rag.errors import InputError
from rag.settings import ArxivSettings, Settings

CASSETTES = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent / "cassettes"),
    record_mode="none",  # replay only: a request no cassette holds fails the test
    match_on=["method", "scheme", "host", "port", "path", "query"],
)
QUERY = "all:vision AND all:tokens"


def settings_for(tmp_path: Path, **arxiv: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", arxiv=ArxivSettings(delay_s=0, retries=0, **arxiv)
    )


def test_query_gives_papers_with_metadata_and_progress(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    with CASSETTES.use_cassette("arxiv_query.yaml") as cassette:
        got = fetch(
            settings_for(tmp_path), query=QUERY, max_results=3,
            on_progress=lambda d, t: progress.append((d, t)),
        )
        assert cassette.play_count == 1
    titles = [p.title for p in got.papers]
    assert titles[0] == (
        "LLaVA-Mini: Efficient Image and Video Large Multimodal Models with One Vision Token"
    )
    mini, beetles, waves = got.papers
    assert mini.authors == ("Shaolei Zhang", "Qingkai Fang", "Zhe Yang", "Yang Feng")
    assert (mini.year, mini.date, mini.arxiv_id) == ("2025", "2025-01-07", "2501.03895")
    assert (mini.url, mini.link_kind, mini.source) == (
        "https://arxiv.org/abs/2501.03895", "arxiv", "arXiv"
    )
    assert "\n" not in mini.abstract and mini.abstract.endswith("77% fewer FLOPs.")
    # A journal DOI is the better link; the journal is the venue.
    assert (beetles.doi, beetles.url) == ("10.5555/beetles.2024.7", "https://doi.org/10.5555/beetles.2024.7")
    assert beetles.venue.startswith("Journal of Field Entomology")
    assert beetles.authors == ("Ana García", "Jörg Müller")
    assert waves.arxiv_id == "2403.05678"
    assert progress[0] == (0, 3) and progress[-1] == (3, 3)
    # Fetched papers wait in the resume file until they are indexed.
    assert len(got.cache.read_text().splitlines()) == 3
    got.done()
    assert not got.cache.exists()


def test_interrupted_query_resumes_after_the_papers_it_has(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with CASSETTES.use_cassette("arxiv_query.yaml"):
        first = fetch(settings, query=QUERY, max_results=3)
    # As if the first run had been killed after its first paper.
    lines = first.cache.read_text().splitlines()
    first.cache.write_text(lines[0] + "\n" + lines[1][:25])  # and the second line cut off
    with CASSETTES.use_cassette("arxiv_query.yaml", allow_playback_repeats=False) as cassette:
        again = fetch(settings, query=QUERY, max_results=3)
        # Only the request that starts after the kept paper was made.
        assert cassette.play_count == 1
        assert "start=1" in cassette.requests[1].uri
        assert cassette.play_counts[1] == 1 and cassette.play_counts[0] == 0
    assert again.resumed == 1
    assert [p.arxiv_id for p in again.papers] == ["2501.03895", "2402.01234", "2403.05678"]


def test_ids_fetch_reports_ids_arxiv_does_not_know(tmp_path: Path) -> None:
    ids = parse_ids(["arXiv:2402.01234v2", "https://arxiv.org/abs/2409.99999"])
    assert ids == ["2402.01234", "2409.99999"]
    with CASSETTES.use_cassette("arxiv_ids.yaml"):
        got = fetch(settings_for(tmp_path), ids=ids)
    assert [p.arxiv_id for p in got.papers] == ["2402.01234"]
    assert got.missing == ["2409.99999"]


def test_bad_ids_are_named_before_any_request() -> None:
    with pytest.raises(InputError, match="Not arXiv ids: 12345, nonsense"):
        parse_ids(["2402.01234", "12345", "nonsense"])


def test_no_results_is_a_clear_message_and_leaves_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with CASSETTES.use_cassette("arxiv_empty.yaml"), pytest.raises(
        ArxivNoResultsError, match="arXiv found no papers for the query “ti:nosuchpaperanywhere”; nothing was changed"
    ):
        fetch(settings, query="ti:nosuchpaperanywhere", max_results=5)
    assert not any((tmp_path / "data" / "arxiv").glob("*.jsonl"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration  # a real refused connection on 127.0.0.1
def test_offline_says_unreachable_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.cli import main

    db = tmp_path / "db"
    # A fetch cut off after one paper of three (made before arXiv "goes away").
    with CASSETTES.use_cassette("arxiv_query.yaml"):
        first = fetch(Settings(), query=QUERY, max_results=3)
    first.cache.write_text(first.cache.read_text().splitlines()[0] + "\n")
    monkeypatch.setenv("PAPERCHAT_ARXIV_API_URL", f"http://127.0.0.1:{_closed_port()}/api/query")
    monkeypatch.setenv("PAPERCHAT_ARXIV_RETRIES", "0")
    monkeypatch.setenv("PAPERCHAT_ARXIV_DELAY_S", "0")
    code = main(["ingest", "--arxiv", "ti:llava", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2
    assert "The arXiv API is unreachable (ConnectionError); nothing was changed in the index." in err
    assert "needs network access" in err and "Traceback" not in err
    assert not db.exists()  # the index was never opened

    # The message says the paper fetched before is kept, and it stays kept.
    code = main(["ingest", "--arxiv", QUERY, "--max", "3", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and "The 1 paper fetched so far are kept; run the same command again" in err
    assert [json.loads(x)["arxiv_id"] for x in first.cache.read_text().splitlines()] == [
        "2501.03895"
    ]
    assert not db.exists()




def test_rejected_request_says_so_and_changes_nothing(tmp_path: Path) -> None:
    with CASSETTES.use_cassette("arxiv_bad_request.yaml"), pytest.raises(
        ArxivUnreachableError, match=r"rejected the request \(HTTP status 400\); nothing was changed"
    ):
        fetch(settings_for(tmp_path), ids=["2402.01234"])
