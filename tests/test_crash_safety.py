"""Ingest survives kill -9 at any point; the BM25 file is atomic and never trusted blindly."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chroma_files import stored_papers
from fakes import HashEmbeddings

from rag.chunking import chunk_paper
from rag.corpus import load_corpus
from rag.derived import WRITING
from rag.index import PaperIndex
from rag.lexical import SUMMARY_FILE, LexicalIndex
from rag.papers import content_hash
from rag.settings import Settings

BIN = Path(sys.executable).parent


def _bundled(n: int | None = None) -> list:  # type: ignore[type-arg]
    papers, _ = load_corpus(None, Settings().corpus.search_url_template)
    return papers[:n] if n else papers


def _index(db: Path, create: bool = True) -> PaperIndex:
    return PaperIndex(Settings(db_dir=db), HashEmbeddings(), create=create)  # type: ignore[arg-type]


# ---- the lexical file ------------------------------------------------------------------


def test_corrupt_lexical_file_is_rebuilt(tmp_path: Path) -> None:
    _index(tmp_path / "db").ingest(_bundled(15))
    path = tmp_path / "db" / "lexical.pkl"
    path.write_bytes(path.read_bytes()[:100])  # a torn file, as a crash mid-write would leave
    reader = _index(tmp_path / "db", create=False)
    assert len(reader.lexical.ids) == 15
    assert LexicalIndex.load(path) is not None


def test_lexical_with_other_count_or_generation_is_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "db"
    writer = _index(db)
    writer.ingest(_bundled(15))
    generation = writer.derived.generation()
    stale = LexicalIndex.build(["x"], [("t", "some abstract text")], generation)
    stale.save(db / "lexical.pkl")
    assert len(_index(db, create=False).lexical.ids) == 15  # same stamp, other count
    other = LexicalIndex.build(
        [p.id for p in _bundled(15)], [(p.title, "") for p in _bundled(15)], "older-stamp"
    )
    other.save(db / "lexical.pkl")
    reader = _index(db, create=False)
    lexical = reader.lexical
    assert lexical.generation == generation  # rebuilt from Chroma, tagged with its stamp
    assert float(lexical.scores(_bundled(15)[3].abstract).max()) > 0
    assert reader.derived.generation() == generation  # a reader never re-stamps


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lexical.pkl"
    good = LexicalIndex.build(["a"], [("title", "an abstract about graphs")], "g1")
    good.save(path)
    before = path.read_bytes()
    summary_before = (tmp_path / SUMMARY_FILE).read_bytes()

    def torn(obj: object, handle, *args: object, **kwargs: object) -> None:  # type: ignore[no-untyped-def]
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pickle, "dump", torn)
    newer = LexicalIndex.build(["a", "b"], [("t", "x"), ("u", "y")], "g2")
    with pytest.raises(OSError):
        newer.save(path)
    assert path.read_bytes() == before
    assert (tmp_path / SUMMARY_FILE).read_bytes() == summary_before  # still the old pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lexical.pkl", SUMMARY_FILE]
    assert LexicalIndex.saved_summary(path).papers == 1  # type: ignore[union-attr]


def test_saved_summary_is_none_when_missing_or_damaged(tmp_path: Path) -> None:
    path = tmp_path / "lexical.pkl"
    assert LexicalIndex.saved_summary(path) is None
    for damaged in ("{not json", '{"papers": "many"}', "[]"):
        (tmp_path / SUMMARY_FILE).write_text(damaged)
        assert LexicalIndex.saved_summary(path) is None


def test_interrupted_writer_stamp_makes_next_ingest_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "db"
    writer = _index(db)
    writer.ingest(_bundled(10))
    writer.derived.set_generation(f"{WRITING}dead")  # what a killed ingest leaves behind
    report = _index(db).ingest(_bundled(10))
    assert report.new == report.updated == 0
    stamp = _index(db, create=False).derived.generation()
    assert not stamp.startswith(WRITING)
    assert LexicalIndex.load(db / "lexical.pkl").generation == stamp  # type: ignore[union-attr]


def test_refresh_is_cheap_throttled_and_sees_other_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "db"
    _index(db).ingest(_bundled(10))
    reader = _index(db, create=False)
    assert len(reader.lexical.ids) == 10
    assert reader.refresh() is False  # nothing changed: one metadata read
    calls: list[int] = []
    real = reader.derived.generation

    def counted() -> str:
        calls.append(1)
        return real()

    monkeypatch.setattr(reader.derived, "generation", counted)
    assert reader.maybe_refresh(max_age_s=3600) is False
    assert calls == []  # throttled: not even a metadata read
    _index(db).ingest(_bundled(14))
    assert reader.maybe_refresh(max_age_s=0) is True
    assert len(reader.lexical.ids) == 14


def test_reader_keeps_bm25_while_an_ingest_is_running(tmp_path: Path) -> None:
    db = tmp_path / "db"
    writer = _index(db)
    writer.ingest(_bundled(10))
    reader = _index(db, create=False)
    before = reader.lexical
    writer.derived.set_generation(f"{WRITING}now")
    assert reader.refresh() is False
    assert reader.lexical is before


# ---- kill -9 at several points ---------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def _ingest_and_kill(
    cmd: list[str], env: dict[str, str], db: Path, at_least: int, sig: int = signal.SIGKILL
) -> tuple[int, list[int], list[int]]:
    """Run an ingest and send it `sig` once `at_least` more papers are stored.

    Returns its exit code, its child processes (embedding workers) at the signal, and those
    still running 10 s after it.
    """
    start = max(0, stored_papers(db))
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # As from a terminal: SIGINT handled (a background job would inherit it ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600
    children: list[int] = []
    while proc.poll() is None and time.monotonic() < deadline:
        if stored_papers(db) >= start + at_least:
            children = _children(proc.pid)
            os.kill(proc.pid, sig)
            break
        time.sleep(0.01)
    try:  # Ctrl-C stops the workers rather than waiting for their batches
        proc.wait(timeout=60 if sig == signal.SIGKILL else 10)
    except subprocess.TimeoutExpired:
        proc.kill()  # a hung ingest must not outlive the test
        raise
    give_up = time.monotonic() + 10
    while any(map(_alive, children)) and time.monotonic() < give_up:
        time.sleep(0.1)
    return proc.returncode, children, [c for c in children if _alive(c)]


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_ingest_killed_repeatedly_then_resumed_has_no_duplicates_or_losses(
    tmp_path: Path, embeddings
) -> None:  # type: ignore[no-untyped-def]
    from evals.synthetic import synthetic_papers
    from rag.pipeline import Assistant

    corpus = tmp_path / "corpus.jsonl"
    records = synthetic_papers(240)
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    db = tmp_path / "db"
    # Small write groups, so a kill lands between groups as well as inside one.
    env = {
        **os.environ,
        "PAPERCHAT_DATA_DIR": str(tmp_path / "data"),
        "PAPERCHAT_INDEX_WRITE_CHUNKS": "128",
    }
    cmd = [str(BIN / "paperchat"), "ingest", str(corpus), "--db", str(db), "--json"]

    # At once (as soon as the store exists), after a group is stored, and well into the run.
    runs = [_ingest_and_kill(cmd, env, db, papers) for papers in (0, 1, 60)]
    codes = [code for code, _, _ in runs]
    assert codes.count(-signal.SIGKILL) >= 2, codes
    assert any(children for _, children, _ in runs)  # killed while workers embedded
    assert [left for _, _, left in runs] == [[], [], []]  # and they exit with their ingest
    # Ctrl-C: the same, with a message instead of a trace.
    code, children, left = _ingest_and_kill(cmd, env, db, 20, signal.SIGINT)
    assert (code, left) == (130, []) and children

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    papers = load_corpus([corpus], Settings().corpus.search_url_template)[0]
    expected_chunks = sum(len(chunk_paper(p, Settings().index.chunk_tokens)) for p in papers)
    assert report["papers"] == len(papers) == 240
    assert report["chunks"] == expected_chunks  # no duplicates, no orphans of other versions
    assert report["unchanged"] > 0  # the killed runs did real work that was kept

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert json.loads(again.stdout) == {**report, "new": 0, "updated": 0, "unchanged": 240}

    settings = Settings(db_dir=db, data_dir=tmp_path / "data")
    assistant = Assistant.open(settings, embeddings=embeddings)
    stored = assistant.index.stored_hashes([p.id for p in papers])
    assert stored == {p.id: content_hash(p) for p in papers}
    assert sorted(assistant.index.lexical.ids) == sorted(p.id for p in papers)
    answer = assistant.ask("What NDCG scores did SeqDialN achieve on VisDial v1.0?")
    assert answer.citations[0].title.startswith("SeqDialN")
