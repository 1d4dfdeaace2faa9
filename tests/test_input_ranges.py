"""Numbers outside a setting's range and values of the wrong type are refused with the
setting's own bounds, never used silently (issue 12, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.cli import main
from rag.errors import InputError
from rag.pipeline import checked_k
from rag.settings import Settings
from ui.handlers import ChatService


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "0 is out of range; use 1 to 20"),
        ("-1", "-1 is out of range; use 1 to 20"),
        ("100000", "100000 is out of range; use 1 to 20"),
        ("five", "'five' is not a whole number"),
    ],
)
def test_ask_k_outside_the_setting_range_exits_2(
    value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["ask", "What is SeqDialN?", "--k", value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --k" in err and says in err


def test_serve_port_is_checked_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    # (eval --k has its own check: "--k 0: use a number of papers from 1 to 20".)
    with pytest.raises(SystemExit):
        main(["serve", "--port", "70000"])
    assert "70000 is out of range; use 1 to 65535" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        # --max 0 fetched the default 50 papers; -3 went to arXiv as it was.
        (["ingest", "--arxiv", "ti:llava", "--max", "0"], "argument --max: 0 is out of range; use 1 to 10000"),
        (["ingest", "--arxiv", "ti:llava", "--max", "-3"], "argument --max: -3 is out of range"),
        (["ingest", "--arxiv", "ti:llava", "--max", "20000"], "argument --max: 20000 is out of range"),
        # mcp --port 70000 printed a URL with that port and hung; -1 ended in uvicorn's error.
        (["mcp", "--http", "--port", "70000"], "argument --port: 70000 is out of range; use 1 to 65535"),
        (["mcp", "--http", "--port", "-1"], "argument --port: -1 is out of range"),
        # bench --rounds 0 failed only after building its corpora; negatives were taken as given.
        (["bench", "--rounds", "0"], "argument --rounds: 0 is too small; use at least 1"),
        (["bench", "--reuse-above", "-1"], "argument --reuse-above: -1 is too small"),
        (["bench", "--reference-papers", "-5"], "argument --reference-papers: -5 is too small"),
    ],
)  # fmt: skip
def test_other_numeric_flags_are_checked_the_same_way(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PAPERCHAT_RETRIEVAL_K", "50", "Input should be less than or equal to 20"),
        ("PAPERCHAT_ANSWER_PART_WORDS", "-3", "Input should be greater than or equal to 0"),
        ("PAPERCHAT_ANSWER_LINE_SENTENCES", "0", "Input should be greater than or equal to 1"),
        (
            "PAPERCHAT_RETRIEVAL_LEXICAL_COVERAGE_POWER",
            "-1",
            "Input should be greater than or equal to 0",
        ),
        ("PAPERCHAT_RETRIEVAL_DENSE_MARGIN_CAP", "3", "Input should be less than or equal to 2"),
        ("PAPERCHAT_ANSWER_MISSING_WORD_PULL", "2", "Input should be less than or equal to 1"),
    ],
)
def test_out_of_range_environment_setting_is_a_message(
    name: str,
    value: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["ask", "What is SeqDialN?", "--db", str(tmp_path / "db")]) == 2
    err = capsys.readouterr().err
    assert f"{name}: {says}" in err
    assert not (tmp_path / "db").exists()  # nothing was created or touched


@pytest.mark.parametrize("k", [0, -1, 21, 100000, 2.5, "5", True])
def test_pipeline_refuses_k_outside_the_range(k: Any) -> None:
    with pytest.raises(InputError, match="k \\(papers to use\\) must be a whole number from 1 to 20"):
        checked_k(k, Settings())
    assert checked_k(None, Settings()) == 5 and checked_k(20, Settings()) == 20


@pytest.mark.parametrize(
    ("question", "says"),
    [(42, "not a number"), (["a", "b"], "not a list"), ({"q": 1}, "not an object"),
     (True, "not true/false")],
)  # fmt: skip
def test_api_question_of_the_wrong_type(question: Any, says: str, tmp_path: Path) -> None:
    service = ChatService(Settings(data_dir=tmp_path), object())
    with pytest.raises(InputError, match=f"The question must be text, {says}"):
        service.ask_json(question, [])
    with pytest.raises(InputError, match="History must be a JSON list"):
        service.ask_json("fine?", "not a list")
