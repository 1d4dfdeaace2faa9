"""`paperchat serve` keeps answering while `paperchat ingest` writes to its index (issue 12,
item 2), and answers from the new papers afterwards without a restart.

Two real servers over a copy of the bundled index: A has opened its index before the ingest
starts, B is started while the ingest is writing (it opens lazily). A client asks both in a
loop through /ask while another process ingests 3,000 papers; no question may fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chroma_files import stored_papers
from process_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

BIN = Path(sys.executable).parent
PAPERS = 3000
QUESTIONS = (
    "What NDCG scores did SeqDialN achieve on VisDial v1.0?",
    "How does averaging the weights of fine-tuned models improve accuracy?",
    "Which dataset records biological experiments from several camera viewpoints?",
)
_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "ta", "ve", "zu", "gra", "bex")


def _name(n: int) -> str:
    """A made-up word unique to paper n, so a question about it has one right answer."""
    digits = []
    for _ in range(4):
        n, d = divmod(n, len(_SYLLABLES))
        digits.append(_SYLLABLES[d])
    return "Quor" + "".join(digits)


def _synthetic(path: Path) -> None:
    rows = []
    for n in range(PAPERS):
        name = _name(n)
        rows.append(
            {
                "title": f"{name}: a synthetic study number {n}",
                "abstract": f"We introduce {name}, a method for synthetic benchmark {n}. "
                f"{name} predicts the lattice energy of imaginary crystals from their "
                "spectra. Experiments on held-out crystals show that it is accurate.",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


class Server:
    """`paperchat serve` in its own process on a free loopback port."""

    def __init__(self, db: Path, data: Path, log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        self._log = log.open("wb")
        env = {
            **os.environ,
            "PAPERCHAT_DB_DIR": str(db),
            "PAPERCHAT_DATA_DIR": str(data),
            "PAPERCHAT_INDEX_REFRESH_S": "1",
            "PYTHONFAULTHANDLER": "1",  # a crash in native code leaves its stack in the log
        }
        self.proc = subprocess.Popen(
            [str(BIN / "paperchat"), "serve", "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}/"

    def wait_ready(self) -> Any:
        from gradio_client import Client

        deadline = time.monotonic() + 300
        while "serving on" not in self.log_path.read_text(errors="replace"):
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.5)
        return Client(self.url, verbose=False, download_files=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _server_report(servers: list[Server], failures: list[str]) -> str:
    """What a failed run needs to be diagnosed: distinct errors, exit codes and log tails."""
    lines = [f"{len(failures)} failed questions; distinct errors: {sorted(set(failures))[:5]}"]
    for server in servers:
        lines.append(f"--- {server.log_path.name}: exit code {server.proc.poll()}")
        lines.append(server.log_path.read_text(errors="replace")[-4000:])
    return "\n".join(lines)


def _ask(client: Any, question: str) -> tuple[dict[str, Any] | None, str]:
    try:
        return client.predict(question=question, history=[], api_name="/ask"), ""
    except Exception as exc:  # every failure is recorded, whatever its type
        return None, f"{type(exc).__name__}: {exc}"


def test_serve_answers_every_question_while_an_ingest_writes_and_sees_the_new_papers(
    bundled_db: Path, tmp_path: Path, servers: list[Server]
) -> None:
    db = tmp_path / "db"
    shutil.copytree(bundled_db, db)
    before = stored_papers(db)
    corpus = tmp_path / "synthetic.jsonl"
    _synthetic(corpus)

    first = Server(db, tmp_path / "data-a", tmp_path / "serve-a.log")
    servers.append(first)
    client_a = first.wait_ready()
    answer, error = _ask(client_a, QUESTIONS[0])  # A has its index open before the ingest
    assert answer is not None, error

    ingest_log = (tmp_path / "ingest.log").open("wb")
    ingest = subprocess.Popen(
        [str(BIN / "paperchat"), "ingest", str(corpus), "--db", str(db), "--json"],
        stdout=ingest_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while stored_papers(db) <= before:  # the ingest is writing
            assert ingest.poll() is None, (tmp_path / "ingest.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # B starts while the ingest holds the writer's lock, and opens its index lazily.
        second = Server(db, tmp_path / "data-b", tmp_path / "serve-b.log")
        servers.append(second)
        client_b = second.wait_ready()

        failures: list[str] = []
        asked_during = 0
        n = 0
        while ingest.poll() is None:
            for client in (client_a, client_b):
                answer, error = _ask(client, QUESTIONS[n % len(QUESTIONS)])
                n += 1
                asked_during += ingest.poll() is None
                if answer is None:
                    failures.append(error)
                elif QUESTIONS[0] == QUESTIONS[(n - 1) % len(QUESTIONS)]:
                    cited = [c["title"] for c in answer["citations"]]
                    assert cited and cited[0].startswith("SeqDialN"), json.dumps(answer)[:4000]
        assert ingest.wait() == 0, (tmp_path / "ingest.log").read_text()[-3000:]
    finally:
        if ingest.poll() is None:
            ingest.kill()
            ingest.wait()
        ingest_log.close()
    report = json.loads((tmp_path / "ingest.log").read_text().strip().splitlines()[-1])
    assert report["new"] == PAPERS and report["papers"] == 182 + PAPERS

    # Without a restart, both servers answer from the new papers (each notices the new
    # generation at its next check, one second apart here).
    target = PAPERS - 7
    question = f"What does {_name(target)} predict?"
    found = {}
    deadline = time.monotonic() + 300
    while len(found) < 2 and time.monotonic() < deadline:
        for label, client in (("a", client_a), ("b", client_b)):
            answer, error = _ask(client, question)
            if answer is None:
                failures.append(error)
            elif answer["citations"] and answer["citations"][0]["title"].startswith(_name(target)):
                found[label] = answer
        time.sleep(0.5)
    assert failures == [], _server_report(servers, failures)
    assert asked_during >= 4, "the ingest finished before the servers were asked anything"
    assert sorted(found) == ["a", "b"], "the new papers are not answerable without a restart"
    assert "Traceback" not in (tmp_path / "serve-a.log").read_text(errors="replace")
    assert "Traceback" not in (tmp_path / "serve-b.log").read_text(errors="replace")
