"""Progress reporting when stderr is not a terminal (logs, nohup, CI): plain lines."""

from __future__ import annotations

import pytest

from rag import progress


def test_log_lines_report_count_rate_and_time_left(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    update, close = progress.progress_bar("Indexing")  # capsys: stderr is no terminal
    for at, done in ((0, 1000), (10, 1400), (40, 2200), (50, 2500), (100, 4000)):
        now[0] = float(at)  # 1,000 papers were already stored (a resumed run); then 30/s
        update(done, 101000)
    close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "Indexing: 2,200/101,000 papers (30.0/s, 55 min left)",
        "Indexing: 4,000/101,000 papers (30.0/s, 54 min left)",
    ]


def test_nothing_is_printed_when_nothing_was_done(capsys: pytest.CaptureFixture[str]) -> None:
    update, close = progress.progress_bar("Indexing")
    update(182, 182)  # everything unchanged
    close()
    assert capsys.readouterr().err == ""
