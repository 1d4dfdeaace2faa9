"""Storage failures end in exit 2 and a message saying what to do, never a traceback
(issue 12, item 3). Real CLI processes over real Chroma files.

A read-only directory and a full disk are made with a private mount namespace (`unshare
-m`: a read-only bind mount, a small tmpfs), since root ignores file permissions. Where
`unshare` is not allowed those two tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
PAPERCHAT = str(BIN / "paperchat")
QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAPERCHAT, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def _shell(script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`script` as root in a private mount namespace (mounts vanish with it)."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", script],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _can_mount(), reason="needs `unshare -m` and mount (root in a sandbox that allows it)"
)


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


@pytest.fixture
def db(bundled_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "db"
    shutil.copytree(bundled_db, copy)
    return copy


def test_mistyped_first_ingest_creates_nothing_and_an_empty_index_says_so(tmp_path: Path) -> None:
    db = tmp_path / "new-db"
    result = _run("ingest", str(tmp_path / "no-such-file.jsonl"), "--db", str(db))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not db.exists()  # nothing created, so `ask` says there is no index
    result = _run("ask", QUESTION, "--db", str(db))
    assert result.returncode == 2 and "No index at" in result.stderr
    _no_traceback(result)

    # An empty index as older versions left it: a clear message, not AttributeError.
    from fakes import HashEmbeddings

    from rag.index import PaperIndex

    PaperIndex(Settings(db_dir=db), HashEmbeddings(), create=True)  # type: ignore[arg-type]
    result = _run("ask", QUESTION, "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert "holds no papers yet. Ingest papers first" in result.stderr
    _no_traceback(result)


def test_damaged_database_says_rebuild_and_rebuild_restores_it(db: Path, tmp_path: Path) -> None:
    # The bundled index records its inputs (the bundled corpus) when built.
    assert json.loads((db / "sources.json").read_text())["inputs"] == [None]
    with (db / "chroma.sqlite3").open("r+b") as handle:
        handle.seek(4096 * 3)
        handle.write(os.urandom(4096 * 20))
    result = _run("ask", QUESTION, "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert "is damaged" in result.stderr and "paperchat ingest --rebuild" in result.stderr
    _no_traceback(result)

    rebuilt = _run("ingest", "--rebuild", "--db", str(db), "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert (report["papers"], report["new"]) == (182, 182)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("db.old-")]
    assert len(aside) == 1 and (aside[0] / "chroma.sqlite3").exists()  # kept, not deleted
    assert str(aside[0]) in rebuilt.stderr
    answer = _run("ask", QUESTION, "--db", str(db), "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["citations"][0]["title"].startswith("SeqDialN")


def test_rebuild_without_a_record_names_what_to_do(tmp_path: Path) -> None:
    from fakes import HashEmbeddings

    from rag.index import PaperIndex

    db = tmp_path / "db"
    PaperIndex(Settings(db_dir=db), HashEmbeddings(), create=True)  # type: ignore[arg-type]
    result = _run("ingest", "--rebuild", "--db", str(db))
    assert result.returncode == 2
    assert "no record of the files it was built from" in result.stderr
    assert (db / "chroma.sqlite3").exists()  # nothing moved


@needs_mounts
def test_read_only_index_directory(db: Path, tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    result = _shell(
        f"mount --bind {db} {mount}; mount -o remount,ro,bind {mount}; "
        f"{PAPERCHAT} ask '{QUESTION}' --db {mount}"
    )
    assert result.returncode == 2, result.stderr
    assert "is read-only" in result.stderr and "copy it" in result.stderr
    _no_traceback(result)


@needs_mounts
def test_full_disk_says_so_and_the_index_works_again_with_room(db: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "more.jsonl"
    corpus.write_text(
        "".join(
            json.dumps(
                {
                    "title": f"Synthetic study {n} of imaginary crystals",
                    "abstract": f"We introduce method {n} for imaginary crystals. It predicts "
                    f"lattice energy {n} from spectra. Held-out crystals show it works well.",
                }
            )
            + "\n"
            for n in range(1500)
        )
    )
    disk = tmp_path / "disk"
    disk.mkdir()
    # Room for the index and 20 MiB more: the ingest needs ~12 MiB, plus a reserve of 16.
    size_mb = sum(p.stat().st_size for p in db.rglob("*") if p.is_file()) // 2**20 + 20
    result = _shell(
        f"mount -t tmpfs -o size={size_mb}m tmpfs {disk}; cp -a {db} {disk}/db; "
        f"if PAPERCHAT_INDEX_MIN_FREE_MB=16 {PAPERCHAT} ingest {corpus} --db {disk}/db > {tmp_path}/full.out 2> {tmp_path}/full.err; "
        "then echo INGEST-OK; fi; "
        f"mount -o remount,size=200m {disk}; "
        f"{PAPERCHAT} ask '{QUESTION}' --db {disk}/db --json > {tmp_path}/ask.json; "
        f"{PAPERCHAT} ingest {corpus} --db {disk}/db --json > {tmp_path}/again.json"
    )
    full_err = (tmp_path / "full.err").read_text()
    assert "INGEST-OK" not in result.stdout, "the disk did not fill up"
    assert "disk holding the index" in full_err and "nearly full" in full_err, full_err
    assert "Traceback" not in full_err
    assert result.returncode == 0, result.stderr
    # With room again: questions are answered and the same ingest finishes the job.
    answer = json.loads((tmp_path / "ask.json").read_text())
    assert answer["citations"][0]["title"].startswith("SeqDialN")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["papers"] == 182 + 1500


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("error returned from database: (code: 8) attempt to write a readonly database", "read-only"),
        ("[Errno 30] Read-only file system: 'lexical.pkl'", "read-only"),
        ("error returned from database: (code: 11) database disk image is malformed", "damaged"),
        ("error returned from database: (code: 26) file is not a database", "damaged"),
        ("Error creating hnsw segment reader: Error deserializing pickle file", "damaged"),
        ("Error in compaction: Failed to apply logs to the metadata segment", "is full"),
        ("[Errno 28] No space left on device", "is full"),
    ],
)
def test_known_storage_failures_are_named(raw: str, says: str) -> None:
    from rag.store import storage_failure

    failure = storage_failure(RuntimeError(raw), "/data/db")
    assert failure is not None and says in str(failure) and "/data/db" in str(failure)
    assert storage_failure(RuntimeError("something else"), "/data/db") is None


def test_a_stuck_compactor_on_a_full_disk_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After a write filled the disk, every open fails in Chroma's compactor without naming
    the cause (seen with a tmpfs filled by an ingest with PAPERCHAT_INDEX_MIN_FREE_MB=0):
    `ask` said 'Cannot open the index ... If it is damaged, rebuild it', which needs more
    room still. Named as a full disk only while the disk is full."""
    import shutil as shutil_module

    from rag.store import storage_failure

    raw = RuntimeError(
        "Error executing plan: Error sending backfill request to compactor: Error purging logs"
    )
    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage._replace(free=4096))
    failure = storage_failure(raw, str(tmp_path / "db"))  # the directory need not exist
    assert failure is not None and "is full" in str(failure) and "Free some space" in str(failure)
    assert storage_failure(raw, "http://127.0.0.1:8000") is None  # a server's disk: unknown
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage._replace(free=2**30))
    assert storage_failure(raw, str(tmp_path / "db")) is None
