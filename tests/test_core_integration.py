"""Real Chroma in tmp_path, the real bundled model, the CLI end to end."""

import json
from pathlib import Path

import pytest

from rag import pipeline
from rag.cli import main
from rag.pipeline import Assistant
from rag.settings import Settings

pytestmark = pytest.mark.integration

PAPERS = [
    {
        "title": "Tiny Paper About Sparse Beetles",
        "abstract": "We count beetles with sparse cameras. The beetle counter reaches 91% accuracy "
        "on the BeetleSet benchmark. It runs on a phone.",
    },
    {
        "title": "Another Paper On Ocean Waves",
        "abstract": "We forecast ocean waves with a recurrent model. Forecasts improve by 12% on "
        "the WaveBench data. Buoys provide the inputs.",
    },
]


@pytest.fixture(autouse=True)
def shared_model(monkeypatch: pytest.MonkeyPatch, embeddings) -> None:  # type: ignore[no-untyped-def]
    # The CLI would load the model on every call; the session's copy is the same model.
    monkeypatch.setattr(pipeline, "_embeddings", lambda settings: embeddings)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bundled_index_holds_182_papers(bundled_db: Path, embeddings) -> None:  # type: ignore[no-untyped-def]
    assistant = Assistant.open(Settings(db_dir=bundled_db), embeddings=embeddings)
    assert assistant.index.count() == 182


def test_ingest_is_idempotent_and_replaces_changed_abstracts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db"
    corpus = write_jsonl(tmp_path / "mine.jsonl", PAPERS)
    code, out, _ = run(capsys, "ingest", str(corpus), "--db", str(db), "--json")
    assert code == 0
    first = json.loads(out)
    assert first == {
        "papers": 2, "new": 2, "updated": 0, "unchanged": 0, "chunks": first["chunks"],
        "migrated": 0, "merged": 0, "skipped": 0, "notes": [],
    }  # fmt: skip
    assert first["chunks"] >= 2

    code, out, _ = run(capsys, "ingest", str(corpus), "--db", str(db), "--json")
    assert json.loads(out) == {**first, "new": 0, "unchanged": 2}

    changed = [
        dict(
            PAPERS[0], abstract="We count beetles with drones now. Drones reach 97% on BeetleSet-2."
        ),
        PAPERS[1],
    ]
    write_jsonl(corpus, changed)
    code, out, _ = run(capsys, "ingest", str(corpus), "--db", str(db), "--json")
    report = json.loads(out)
    assert (report["papers"], report["new"], report["updated"], report["unchanged"]) == (2, 0, 1, 1)

    code, out, _ = run(
        capsys, "ask", "How accurate is the beetle counter with drones?", "--db", str(db), "--json"
    )
    answer = json.loads(out)
    assert answer["citations"][0]["title"] == "Tiny Paper About Sparse Beetles"
    assert "drones" in answer["answer"] and "phone" not in answer["answer"]


def test_a_running_assistant_answers_from_a_changed_abstract(tmp_path: Path, embeddings) -> None:  # type: ignore[no-untyped-def]
    """The records a reader keeps between questions (rag.read_cache) are read afresh after an
    ingest: its own, and another process's once it refreshes."""
    settings = Settings(db_dir=tmp_path / "db")
    corpus = write_jsonl(tmp_path / "mine.jsonl", PAPERS)
    Assistant.create(settings, embeddings=embeddings).ingest([corpus])
    server = Assistant.open(settings, embeddings=embeddings)
    question = "How accurate is the beetle counter?"
    assert "91%" in server.ask(question).text

    drones = "We count beetles with drones now. Drones reach 97% accuracy on BeetleSet-2."
    write_jsonl(corpus, [dict(PAPERS[0], abstract=drones), PAPERS[1]])
    server.ingest([corpus])  # its own ingest
    assert "97%" in server.ask(question).text

    write_jsonl(corpus, [dict(PAPERS[0], abstract=drones.replace("97%", "98%")), PAPERS[1]])
    Assistant.open(settings, embeddings=embeddings).ingest([corpus])  # another handle's
    assert server.index.refresh()
    assert "98%" in server.ask(question).text


def test_ask_json_has_exactly_the_documented_fields(
    bundled_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "ask",
        "What NDCG scores did SeqDialN achieve on VisDial v1.0?",
        "--db",
        str(bundled_db),
        "--json",
        "--k",
        "3",
    )
    assert code == 0
    answer = json.loads(out)
    assert set(answer) == {
        "answer",
        "abstained",
        "citations",
        "retrieved",
        "mode",
        "timings_ms",
        "query",
        "missing_terms",
    }
    assert answer["query"].startswith("What NDCG") and answer["missing_terms"] == []
    assert answer["mode"] == "extractive" and answer["abstained"] is False
    assert set(answer["citations"][0]) == {
        "n", "paper_id", "title", "url", "evidence", "authors", "year", "doi", "arxiv_id",
        "link_kind",
    }
    assert answer["citations"][0]["title"].startswith("SeqDialN")
    assert "62.54% NDCG" in answer["answer"]
    assert len(answer["retrieved"]) == 3
    assert {"paper_id", "title", "score"} == set(answer["retrieved"][0])
    scores = [r["score"] for r in answer["retrieved"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["timings_ms"]["total"] > 0


def test_plain_output_lists_sources(bundled_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "ask",
        "Which papers use deep neural network representations to predict human brain recordings?",
        "--db",
        str(bundled_db),
    )
    assert code == 0
    assert "[1]" in out and "[2]" in out
    assert "Sources:\n[1] " in out and " — http" in out


def test_follow_up_uses_history(
    bundled_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.json"
    history.write_text(
        json.dumps(
            [
                {
                    "role": "user",
                    "content": "Which paper learns a compact representation for single-stage image retrieval?",
                },
                {
                    "role": "assistant",
                    "content": "'Coarse-to-Fine: Learning Compact Discriminative Representation for Single-Stage Image Retrieval' (CFCD).",
                },
            ]
        )
    )
    code, out, _ = run(
        capsys,
        "ask",
        "What loss does it use?",
        "--db",
        str(bundled_db),
        "--history",
        str(history),
        "--json",
    )
    assert json.loads(out)["citations"][0]["title"].startswith("Coarse-to-Fine")


QUESTION_NO_PAPER_ANSWERS = "Which paper proposes a model for 3D segmentation of organs in CT scans?"


def test_unanswerable_question_abstains(
    bundled_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ask", QUESTION_NO_PAPER_ANSWERS, "--db", str(bundled_db), "--json")
    answer = json.loads(out)
    assert code == 0 and answer["abstained"] is True and answer["citations"] == []
    # In plain text the refusal lists the papers it came closest to, as the web chat does,
    # so a reader can check them; a question that asks nothing lists none.
    code, out, _ = run(capsys, "ask", QUESTION_NO_PAPER_ANSWERS, "--db", str(bundled_db))
    closest = out.split("Closest papers (none clearly answers it):\n", 1)[1].splitlines()
    assert code == 0 and len(closest) == 3
    assert closest[0].startswith("- " + answer["retrieved"][0]["title"] + " — ")
    code, out, _ = run(capsys, "ask", "What is 2+2?", "--db", str(bundled_db))
    assert code == 0 and "names nothing to look up" in out and "Closest papers" not in out


@pytest.mark.parametrize(
    ("question", "message"),
    [("   ", "The question is empty"), ("x" * 2001, "limit is 2000")],
)
def test_bad_questions_exit_non_zero(
    bundled_db: Path, capsys: pytest.CaptureFixture[str], question: str, message: str
) -> None:
    code, out, err = run(capsys, "ask", question, "--db", str(bundled_db))
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_bad_corpus_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db"
    good = write_jsonl(tmp_path / "good.jsonl", PAPERS[:1])
    assert run(capsys, "ingest", str(good), "--db", str(db))[0] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PAPERS[1]) + "\n{oops\n")
    code, _, err = run(capsys, "ingest", str(bad), "--db", str(db))
    assert code == 2 and "line 2" in err
    code, _, err = run(capsys, "ingest", str(tmp_path / "nope.txt"), "--db", str(db))
    assert code == 2 and "does not exist" in err
    code, out, _ = run(capsys, "ingest", str(good), "--db", str(db), "--json")
    assert json.loads(out)["papers"] == 1


def test_unusable_locations_have_clear_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ask", "anything?", "--db", str(tmp_path / "none"))
    assert code == 2 and "paperchat ingest" in err
    assert not (tmp_path / "none").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    good = write_jsonl(tmp_path / "good.jsonl", PAPERS[:1])
    code, _, err = run(capsys, "ingest", str(good), "--db", str(blocker / "db"))
    assert code == 2 and "Cannot write to the index directory" in err


def test_first_open_builds_the_bundled_index_with_progress(bundled_db: Path) -> None:
    # bundled_db was built by Assistant.open(build_if_missing=True), as `make chat` does.
    progress = json.loads((bundled_db.parent / "progress.json").read_text())
    assert progress[-1] == [182, 182]
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
