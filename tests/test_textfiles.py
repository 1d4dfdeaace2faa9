"""One reader for users' UTF-8 and JSON Lines files: each caller's error class and advice,
the file named, the first bad byte or the line (blank lines counted) named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import CorpusError, InputError
from rag.textfiles import read_json_lines, read_utf8


def test_not_utf8_names_the_byte_and_ends_with_the_callers_advice(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(CorpusError, match=r"notes\.json is not UTF-8 text \(byte 10\)\.$"):
        read_utf8(path, CorpusError)
    with pytest.raises(
        InputError, match=r"^The history file .*notes\.json is not UTF-8 text \(byte 10\)\. Save it"
    ):
        read_utf8(path, InputError, what="the history file", not_utf8_hint="Save it as UTF-8.")


def test_unreadable_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(
        CorpusError, match=r"^Cannot read .*gone\.jsonl: No such file or directory\. Check it\.$"
    ):
        read_json_lines(tmp_path / "gone.jsonl", CorpusError, unreadable_hint="Check it.")


def test_json_lines_skip_blanks_keep_numbers_and_decode_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"n": 1}\n\n   \n{oops\n[2]\n', encoding="utf-8")
    lines = read_json_lines(path, CorpusError)
    assert [line.number for line in lines] == [1, 4, 5]
    assert lines[0].decode(CorpusError) == {"n": 1} and lines[2].decode(CorpusError) == [2]
    assert lines[1].where == f"{path}, line 4"
    with pytest.raises(CorpusError, match=r"set\.jsonl, line 4: not valid JSON \(.+\)\. Fix it\.$"):
        lines[1].decode(CorpusError, "Fix it.")
