"""Invalid text (bytes that are not UTF-8, lone surrogates) gives a message naming the
place, never a traceback (issue 12, item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.corpus import read_file
from rag.errors import CorpusError, InputError
from rag.inputs import load_history, parse_history, validate_question
from rag.settings import Settings
from ui.handlers import ChatService

SEARCH = "https://papers.example/search?q={query}"
ABSTRACT = "We study a problem of some importance. We propose a method that works well."
BIN = Path(sys.executable).parent


def test_question_with_an_escaped_byte_or_a_lone_surrogate() -> None:
    # What Python makes of `paperchat ask $'visual dialog \xff'`:
    argv = os.fsdecode(b"visual dialog \xff")
    with pytest.raises(InputError, match=r"the byte 0xff, which is not valid UTF-8, at character 15"):
        validate_question(argv, 2000)
    with pytest.raises(InputError, match=r"U\+D800 .* at character 3\. Retype it"):
        validate_question("ab\ud800", 2000)


def test_history_with_a_lone_surrogate_names_the_item_and_the_file(tmp_path: Path) -> None:
    turns = [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "x\ud83d y"}]
    with pytest.raises(InputError, match=r'History item 2: "content" holds U\+D83D'):
        parse_history(turns)
    path = tmp_path / "history.json"
    path.write_text(json.dumps(turns), encoding="utf-8")  # ASCII JSON with a \ud83d escape
    with pytest.raises(InputError, match=r"history\.json: History item 2"):
        load_history(path)
    path.write_bytes(b'[{"role": "user", "content": "caf\xe9"}]')
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 33\)"):
        load_history(path)


@pytest.mark.parametrize("field", ["title", "abstract", "url", "date"])
def test_jsonl_paper_with_a_lone_surrogate_names_file_line_and_field(
    tmp_path: Path, field: str
) -> None:
    record = {"title": "Good title", "abstract": ABSTRACT, "url": "https://x.example", "date": "2024"}
    bad = {**record, field: record[field] + "\udfff"}
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf'papers\.jsonl, line 2: "{field}" holds U\+DFFF'):
        read_file(path, SEARCH)


def test_jsonl_authors_with_a_lone_surrogate(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl"
    path.write_text(
        json.dumps({"title": "T", "abstract": ABSTRACT, "authors": ["A. One", "B\ud800"]}) + "\n"
    )
    with pytest.raises(CorpusError, match=r'line 1: "authors" holds U\+D800'):
        read_file(path, SEARCH)


def test_web_upload_and_api_get_the_message(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    class Unused:
        def ingest(self, paths: list[Path]) -> None:
            from rag.pipeline import read_papers

            read_papers(paths, settings)
            raise AssertionError("a bad file must be refused while it is read")

        def ask(self, *args: object) -> None:
            raise AssertionError("an invalid question must be refused before answering")

    service = ChatService(settings, Unused())
    upload = tmp_path / "upload" / "mine.jsonl"
    upload.parent.mkdir()
    upload.write_text(json.dumps({"title": "T\ud800", "abstract": ABSTRACT}) + "\n")
    message = service.ingest(str(upload))
    assert message.startswith("⚠️ mine.jsonl, line 1:") and "U+D800" in message
    with pytest.raises(InputError, match=r"U\+D800"):
        service.ask_json("what about \ud800?", [])
    with pytest.raises(InputError, match=r"History item 1"):
        service.ask_json("fine?", [{"role": "user", "content": "\udcff"}])


@pytest.mark.integration
def test_cli_invalid_bytes_in_question_and_history(bundled_db: Path, tmp_path: Path) -> None:
    question = b"visual dialog \xff"
    result = subprocess.run(
        [os.fsencode(BIN / "paperchat"), b"ask", question, b"--db", os.fsencode(bundled_db)],
        capture_output=True, timeout=300,
    )  # fmt: skip
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, err
    assert "the byte 0xff, which is not valid UTF-8" in err and "Traceback" not in err
    history = tmp_path / "h.json"
    history.write_text('[{"role": "user", "content": "\\ud800"}]')
    result = subprocess.run(
        [str(BIN / "paperchat"), "ask", "And then?", "--history", str(history),
         "--db", str(bundled_db)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "h.json: History item 1" in result.stderr and "Traceback" not in result.stderr
