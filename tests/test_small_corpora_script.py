"""scripts/small_corpora.py refuses a missing ACLSum file with a message, before any work."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "small_corpora.py"


def test_a_missing_aclsum_file_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("small_corpora", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    work = tmp_path / "work"
    missing = tmp_path / "aclsum" / "aclsum-corpus.jsonl"
    argv = ["small_corpora.py", "--aclsum-corpus", str(missing), "--work", str(work)]
    monkeypatch.setattr(sys, "argv", argv)
    assert module.main() == 2
    assert "make eval" in capsys.readouterr().err
    assert not work.exists()  # nothing built
