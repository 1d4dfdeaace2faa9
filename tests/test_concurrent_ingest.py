"""One writer per local index: a second ingest stops with a clear message, nothing changes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import HashEmbeddings

from rag.corpus import load_corpus
from rag.errors import IndexBusyError
from rag.index import PaperIndex
from rag.settings import Settings

BIN = Path(sys.executable).parent


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _papers(n: int) -> list:  # type: ignore[type-arg]
    papers, _ = load_corpus(None, Settings().corpus.search_url_template)
    return papers[:n]


def test_lock_is_taken_before_the_client_writes_anything(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    holder = (db / ".ingest.lock").open("a+")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.write("pid 4242")
    holder.flush()
    try:
        with pytest.raises(
            IndexBusyError, match=r"Another ingest \(pid 4242\).*nothing was changed"
        ):
            PaperIndex(Settings(db_dir=db), HashEmbeddings(), create=True)  # type: ignore[arg-type]
        assert not (db / "chroma.sqlite3").exists()
    finally:
        holder.close()


def test_second_writer_in_another_handle_is_refused_and_index_unchanged(tmp_path: Path) -> None:
    settings = Settings(db_dir=tmp_path / "db")
    first = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
    first.ingest(_papers(12))
    before = _snapshot(tmp_path / "db")
    with first.writer_lock():
        with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
            PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
        with first.writer_lock():  # re-entrant for its own holder
            pass
        # A reader's handle (what a second process opening the index has) cannot write either.
        other = PaperIndex(settings, HashEmbeddings(), create=False)  # type: ignore[arg-type]
        with pytest.raises(IndexBusyError):
            other.ingest(_papers(20))
    after = _snapshot(tmp_path / "db")
    changed = {k for k in before if k in after and before[k] != after[k]}
    # Only the lock file itself may be touched (the holder's own pid rewrite).
    assert changed <= {".ingest.lock"}
    assert set(after) - set(before) == set()
    reader = PaperIndex(settings, HashEmbeddings(), create=False)  # type: ignore[arg-type]
    assert reader.count() == 12
    # Lock released: the next writer goes ahead.
    report = PaperIndex(settings, HashEmbeddings(), create=True).ingest(_papers(20))  # type: ignore[arg-type]
    assert (report.papers, report.new, report.unchanged) == (20, 8, 12)


def _holds_flock(pid: int, path: Path) -> bool:
    """Whether `pid` holds a flock on `path`, read from /proc/locks (no lock taken here)."""
    try:
        inode = path.stat().st_ino
        locks = Path("/proc/locks").read_text()
    except OSError:
        return False
    for line in locks.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"
        if (
            len(fields) >= 6
            and fields[1] == "FLOCK"
            and fields[4] == str(pid)
            and fields[5].rsplit(":", 1)[-1] == str(inode)
        ):
            return True
    return False


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_two_ingest_processes_second_stops_with_clear_message(tmp_path: Path, embeddings) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    corpus = tmp_path / "corpus.jsonl"
    papers = _papers(40)
    corpus.write_text(
        "".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in papers)
    )
    db = tmp_path / "db"
    env = {**os.environ, "PAPERCHAT_DATA_DIR": str(tmp_path / "data")}
    cmd = [str(BIN / "paperchat"), "ingest", str(corpus), "--db", str(db), "--json"]
    first = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lock = db / ".ingest.lock"
        deadline = time.monotonic() + 300
        # Freeze the first ingest while it holds the lock, so the race is certain.
        while True:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first ingest never took the lock"
            if _holds_flock(first.pid, lock):
                os.kill(first.pid, signal.SIGSTOP)
                if _holds_flock(first.pid, lock):
                    break
                os.kill(first.pid, signal.SIGCONT)
            time.sleep(0.02)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert f"Another ingest (pid {first.pid}) is writing to {db}" in second.stderr
        assert "nothing was changed" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert json.loads(out)["papers"] == 40

    from rag.pipeline import Assistant

    assistant = Assistant.open(
        Settings(db_dir=db, data_dir=tmp_path / "data"), embeddings=embeddings
    )
    assert assistant.index.count() == 40
    assert len(assistant.index.lexical.ids) == 40
    target = papers[7]
    answer = assistant.ask(f"{target.title}?", mode="extractive")
    assert answer.citations[0].title == target.title
