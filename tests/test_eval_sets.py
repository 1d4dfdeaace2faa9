"""Evaluation set loading: the shipped sets load; every kind of bad input names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.sets import QUESTION_TYPES, check_gold_titles, load_set, unknown_gold_titles
from rag.errors import EvalSetError
from rag.types import Turn

SETS = Path(__file__).resolve().parents[1] / "evals" / "sets"


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _q(**fields: object) -> str:
    record = {"id": "q1", "type": "keyword", "question": "What is X?", "gold_titles": ["X"]}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def test_shipped_dev_set_loads_with_all_types() -> None:
    dev = load_set(SETS / "dev.jsonl")
    assert len(dev.questions) == 30
    assert dev.types == [t for t in QUESTION_TYPES if t != "summary"]  # summary: ACLSum only
    followups = [q for q in dev.questions if q.type == "followup"]
    assert followups and all(q.history for q in followups)
    assert all(isinstance(t, Turn) for t in followups[0].history)
    assert all(not q.answerable for q in dev.questions if q.type == "unanswerable")
    assert dev.questions[0].line == 1


def test_shipped_hard_set_loads() -> None:
    hard = load_set(SETS / "dev_hard.jsonl")
    assert len(hard.questions) == 15
    assert hard.types == ["paraphrase", "unanswerable"]


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    loaded = load_set(_write(tmp_path, ["", _q(), "", _q(id="q2")]))
    assert [(q.id, q.line) for q in loaded.questions] == [("q1", 2), ("q2", 4)]
    assert loaded.name == "set"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="No evaluation set at .*nope.jsonl"):
        load_set(tmp_path / "nope.jsonl")


def test_not_json_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, [_q(), "[not json"])
    with pytest.raises(EvalSetError, match=r"set.jsonl, line 2: not valid JSON"):
        load_set(path)


def test_whole_json_array_is_not_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "set.json"
    path.write_text(json.dumps([json.loads(_q())], indent=2))
    with pytest.raises(EvalSetError, match="line 1"):
        load_set(path)


def test_line_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="line 1: expected a JSON object"):
        load_set(_write(tmp_path, ['"just a string"']))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_q(question=None), r"line 2: missing or empty \"question\""),
        (_q(question="  "), r"line 2: missing or empty \"question\""),
        (_q(type=None), r"line 2: missing \"type\""),
        (_q(type="trivia"), r"line 2: unknown type \"trivia\"; use one of paraphrase"),
        (_q(gold_titles="X"), r"line 2: \"gold_titles\" must be a list"),
        (_q(key_points=[1]), r"line 2: \"key_points\" must be a list"),
        (_q(type="unanswerable"), r"line 2: an \"unanswerable\" question must have empty"),
        (_q(history=[{"role": "bot", "content": "hi"}]), r"line 2: History item 1 must be"),
        (_q(history={"role": "user"}), r"line 2: History must be a JSON list"),
        (_q(id="q0"), r"line 2: duplicate id \"q0\" \(first used on line 1\)"),
    ],
)
def test_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(EvalSetError, match=message):
        load_set(_write(tmp_path, [_q(id="q0"), line]))


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="has no questions"):
        load_set(_write(tmp_path, ["", "  "]))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_bytes(b'{"question": "caf\xe9"}\n')
    with pytest.raises(EvalSetError, match="not UTF-8"):
        load_set(path)


def test_unknown_gold_titles_are_listed_with_their_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            _q(id="a", gold_titles=["Known Paper: V2"]),
            _q(id="b", gold_titles=["Known paper v2", "Missing One"]),
            _q(id="c", type="unanswerable", gold_titles=[]),
            _q(id="d", gold_titles=["Missing Two"]),
        ],
    )
    loaded = load_set(path)
    index = ["known paper - v2", "Other"]
    assert unknown_gold_titles(loaded, index) == [(2, "Missing One"), (4, "Missing Two")]
    with pytest.raises(EvalSetError) as info:
        check_gold_titles(loaded, index)
    text = str(info.value)
    assert "2 gold title(s) are not in the index" in text
    assert "line 2: 'Missing One'" in text and "line 4: 'Missing Two'" in text
    check_gold_titles(loaded.subset(["a", "c"]), index)  # no error when all are known
