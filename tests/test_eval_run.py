"""`paperchat eval` end to end: runner, report files, CLI options and exit codes.

Unit tests drive the runner with scripted configs (no model, no index); integration tests
run real subsets of the dev set through every config on the bundled index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.baselines import BASELINES, Outcome, parse_compare
from evals.cli import parse_fail_under
from evals.metrics import METRIC_HELP, METRIC_KEYS
from evals.report import markdown, write_report
from evals.runner import run_configs, run_eval
from evals.sets import EvalQuestion, EvalSet, load_set
from rag.cli import build_parser, main
from rag.errors import InputError

SETS = Path(__file__).resolve().parents[1] / "evals" / "sets"
METRIC_SET = {*METRIC_KEYS, "n"}
QUESTION_FIELDS = {
    "id",
    "type",
    "config",
    "retrieved_titles",
    "cited_titles",
    "abstained",
    "answer",
    "metrics",
    "latency_ms",
}


class Scripted:
    """A config that answers from a table: question id -> Outcome."""

    def __init__(self, name: str, outcomes: dict[str, Outcome]) -> None:
        self.name, self.outcomes = name, outcomes

    def run(self, question: EvalQuestion) -> Outcome:
        return self.outcomes[question.id]


def _tiny_set() -> EvalSet:
    return EvalSet(
        "tiny",
        Path("tiny.jsonl"),
        (
            EvalQuestion("k1", "keyword", "What is A?", ("Paper A",), ("alpha beta",), line=1),
            EvalQuestion("m1", "multi", "Which do B and C?", ("Paper B", "Paper C"), line=2),
            EvalQuestion("u1", "unanswerable", "What about Z?", line=3),
        ),
    )


def _out(titles: list[str], cited: list[str], abstained: bool = False, ms: float = 10.0) -> Outcome:
    return Outcome(titles, cited, abstained, "alpha beta [1]" if cited else "none", ms)


def _scripted_report() -> dict[str, Any]:
    good = Scripted(
        "default",
        {
            "k1": _out(["Paper A", "Paper B"], ["Paper A"]),
            "m1": _out(["Paper B", "Paper C"], ["Paper B", "Paper C"]),
            "u1": _out(["Paper A"], [], abstained=True),
        },
    )
    weak = Scripted(
        "bm25",
        {
            "k1": _out(["Paper B", "Paper A"], ["Paper B"], ms=2.0),
            "m1": _out(["Paper B", "Paper D"], ["Paper B"], ms=2.0),
            "u1": _out(["Paper A"], ["Paper A"], ms=2.0),
        },
    )
    summaries, records = run_configs([good, weak], _tiny_set())
    return {
        "set": "tiny.jsonl",
        "n": 3,
        "mode": "extractive",
        "k": 5,
        "index": "memory",
        "created": "now",
        "runtime_s": 0.1,
        "configs": summaries,
        "questions": records,
    }


def test_runner_scores_each_config_overall_and_by_type() -> None:
    report = _scripted_report()
    default, bm25 = report["configs"]["default"], report["configs"]["bm25"]
    assert set(default) == {"overall", "by_type", "latency_ms"}
    assert set(default["overall"]) == METRIC_SET
    assert list(default["by_type"]) == ["keyword", "multi", "unanswerable"]
    assert default["overall"]["recall@1"] == 0.75  # k1: 1, m1: 1/2
    assert default["overall"]["abstention_accuracy"] == 1.0
    assert bm25["overall"]["mrr"] == 0.75  # k1: 1/2, m1: 1
    assert bm25["overall"]["citation_recall"] == 0.25  # k1: 0, m1: 1/2
    assert bm25["by_type"]["unanswerable"]["abstention_accuracy"] == 0.0
    assert bm25["by_type"]["keyword"]["abstention_accuracy"] is None
    assert bm25["latency_ms"] == {"p50": 2.0, "p95": 2.0}
    assert len(report["questions"]) == 6
    assert all(set(q) >= QUESTION_FIELDS for q in report["questions"])
    wrong = {(q["config"], q["id"]): q["wrong"] for q in report["questions"]}
    assert wrong[("default", "k1")] == []
    assert wrong[("bm25", "u1")] == ["answered an unanswerable question"]


def test_report_files(tmp_path: Path) -> None:
    report = _scripted_report()
    paths = write_report(report, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "report.json",
        "report.md",
        "report.png",
    }
    assert json.loads(paths["json"].read_text()) == report
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["md"].read_text()
    assert "| scope | metric | default | bm25 |" in text
    assert "| overall | mrr | **1.000** | 0.750 |" in text
    assert "| keyword | recall@1 | **1.000** | 0.000 |" in text
    # Lower is better for latency; a row a type lacks is left out, "n" is never bold.
    assert "| overall | latency p50 (ms) | 10.0 | **2.0** |" in text
    assert "| keyword | abstention_accuracy" not in text
    assert "| overall | n | 3 | 3 |" in text
    assert "### default: 0 of 3" in text
    assert "### bm25: 3 of 3" in text
    assert "- `m1` (multi): did not cite: Paper C (first gold paper ranked 1)" in text
    assert (
        "- `k1` (keyword): did not cite: Paper A; cited non-gold: Paper B "
        "(first gold paper ranked 2)" in text
    )


def test_markdown_ties_are_all_marked() -> None:
    text = markdown(_scripted_report())
    assert "| multi | recall@1 | **0.500** | **0.500** |" in text


def test_eval_help_explains_every_metric(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    out = capsys.readouterr().out
    for key, line in METRIC_HELP.items():
        assert f"  {key} " in out and line in out
    for option in ("--mode", "--compare", "--out", "--k", "--fail-under", "--db", "--chroma-url"):
        assert option in out


def test_eval_parser_defaults() -> None:
    args = build_parser().parse_args(["eval", "set.jsonl", "--fail-under", "mrr=0.9"])
    assert args.set_file == "set.jsonl"
    assert args.fail_under == ["mrr=0.9"]
    assert args.compare is None and args.k is None and args.mode is None
    assert callable(args.func)


def test_parse_fail_under() -> None:
    assert parse_fail_under(["recall@5=0.97", "false_abstention_rate=0.05"]) == {
        "recall@5": 0.97,
        "false_abstention_rate": 0.05,
    }
    for bad in ("recall@5", "recall@7=0.9", "mrr=high", "=1"):
        with pytest.raises(InputError, match="METRIC=VALUE"):
            parse_fail_under([bad])


def test_parse_compare() -> None:
    assert parse_compare(None) == list(BASELINES)
    assert parse_compare("none") == []
    assert parse_compare("dense, bm25,dense") == ["dense", "bm25"]
    assert parse_compare("default,langchain_basic") == ["langchain_basic"]
    with pytest.raises(InputError, match="unknown rerank"):
        parse_compare("bm25,rerank")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "missing.jsonl"], "No evaluation set at missing.jsonl"),
        (["eval", "x.jsonl", "--compare", "magic"], "--compare: unknown magic"),
        (["eval", "x.jsonl", "--fail-under", "speed=1"], "--fail-under 'speed=1'"),
        (["eval", "x.jsonl", "--k", "0"], "--k 0: use a number of papers from 1 to 20"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_set_line_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "What?", "type": "keyword"}\n{"question": "Why?"}\n')
    assert main(["eval", str(path)]) == 2
    assert 'bad.jsonl, line 2: missing "type"' in capsys.readouterr().err


# ---- real index, real model -------------------------------------------------------------

SUBSET = ["d01", "d11", "d17", "d22", "d26", "d27"]  # every type, two follow-ups


@pytest.mark.integration
def test_subset_through_every_config(assistant: Any, tmp_path: Path) -> None:
    dev = load_set(SETS / "dev.jsonl").subset(SUBSET)
    progress: list[tuple[str, int, int]] = []
    report = run_eval(
        assistant,
        dev,
        compare=list(BASELINES),
        k=5,
        mode="extractive",
        on_progress=lambda *step: progress.append(step),
    )
    paths = write_report(report, tmp_path / "report")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    saved = json.loads(paths["json"].read_text())
    assert saved["set"] == "dev.jsonl" and saved["n"] == 6 and saved["mode"] == "extractive"
    assert list(saved["configs"]) == ["default", *BASELINES]
    for config in saved["configs"].values():
        assert set(config["overall"]) == METRIC_SET and config["overall"]["n"] == 6
        assert set(config["by_type"]) == {
            "paraphrase",
            "keyword",
            "multi",
            "unanswerable",
            "followup",
        }
        assert all(set(m) == METRIC_SET for m in config["by_type"].values())
        assert set(config["latency_ms"]) == {"p50", "p95"}
    assert len(saved["questions"]) == 6 * 4
    for q in saved["questions"]:
        assert set(q) >= QUESTION_FIELDS
        assert len(q["retrieved_titles"]) <= 20 and "ranking_mismatch" not in q
    default = saved["configs"]["default"]["overall"]
    assert default["recall@5"] >= 0.9 and default["mrr"] >= 0.9
    # langchain_basic never abstains and cites the papers of its 4 chunks.
    basic = [q for q in saved["questions"] if q["config"] == "langchain_basic"]
    assert not any(q["abstained"] for q in basic)
    assert all(1 <= len(q["cited_titles"]) <= 4 for q in basic)
    assert ("default", 6, 6) in progress and any("indexing" in step[0] for step in progress)
    md = paths["md"].read_text()
    assert "| scope | metric | default | bm25 | dense | langchain_basic |" in md


@pytest.mark.integration
def test_cli_writes_reports_and_fails_under(bundled_db: Path, tmp_path: Path, capsys: Any) -> None:
    dev = load_set(SETS / "dev.jsonl")
    subset = tmp_path / "three.jsonl"
    keep = {"d11", "d22", "d26"}
    subset.write_text(
        "".join(
            line
            for line in (SETS / "dev.jsonl").read_text().splitlines(keepends=True)
            if json.loads(line)["id"] in keep
        )
    )
    assert len(dev.subset(keep).questions) == 3
    out = tmp_path / "out"
    argv = ["eval", str(subset), "--db", str(bundled_db), "--out", str(out), "--compare", "none"]
    status = main([*argv, "--mode", "extractive", "--fail-under", "recall@5=1.01"])
    captured = capsys.readouterr()
    assert status == 1
    assert "FAIL" in captured.err and "recall@5 = 1.000 is below 1.01" in captured.err
    assert "default" in captured.out and str(out / "report.md") in captured.out
    report = json.loads((out / "report.json").read_text())
    assert list(report["configs"]) == ["default"] and report["n"] == 3
    assert (
        main([*argv, "--fail-under", "recall@5=0.5", "--fail-under", "false_abstention_rate=0.5"])
        == 0
    )


@pytest.mark.integration
def test_default_output_folder_is_under_the_data_dir(
    bundled_db: Path, tmp_path: Path, clean_env: Path
) -> None:
    subset = tmp_path / "one.jsonl"
    subset.write_text(next(iter((SETS / "dev.jsonl").read_text().splitlines())) + "\n")
    assert main(["eval", str(subset), "--db", str(bundled_db), "--compare", "none"]) == 0
    (folder,) = (clean_env / "evals").iterdir()
    assert folder.name.startswith("one-") and (folder / "report.md").exists()


@pytest.mark.integration
def test_llm_mode_uses_the_configured_endpoint(bundled_db: Path, embeddings: Any) -> None:
    from openai_server import FakeOpenAI, text

    from rag.pipeline import Assistant
    from rag.settings import LLMSettings, Settings

    with FakeOpenAI(models={"test-model"}, api_key="sk-test") as server:
        server.default = text("The first source answers this [1].")
        settings = Settings(
            db_dir=bundled_db,
            llm=LLMSettings(model="test-model", base_url=server.base_url, api_key="sk-test"),
        )
        assistant = Assistant.open(settings, embeddings=embeddings)
        dev = load_set(SETS / "dev.jsonl").subset(["d01", "d26"])  # d26 is a follow-up
        report = run_eval(assistant, dev, compare=["bm25"], mode="auto")
        asked = len(server.chat_requests())
    assert report["mode"] == "llm"
    assert asked >= 2  # only the default config talks to the LLM (follow-ups may ask twice)
    default = [q for q in report["questions"] if q["config"] == "default"]
    by_id = {q["id"]: q for q in default}
    assert "first source answers" in by_id["d01"]["answer"], by_id
    # The 20-deep ranking is the one `ask` used, even when the LLM rewrote the follow-up.
    assert not any("ranking_mismatch" in q for q in report["questions"])
    bm25 = [q for q in report["questions"] if q["config"] == "bm25"]
    assert all("first source answers" not in q["answer"] for q in bm25)


def _small_corpus(path: Path, papers: int) -> Path:
    """A corpus file of `papers` two-sentence papers."""
    path.write_text(
        "".join(
            json.dumps({"title": f"Paper {i}", "abstract": f"Sentence {i} one. Sentence {i} two."})
            + "\n"
            for i in range(papers)
        )
    )
    return path


def _one_question_set(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text('{"id": "q1", "type": "keyword", "question": "What is ZIM?"}\n')
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--distractors-from", "{corpus}"], "--distractors-from FILE needs --distractors N"),
        (["--distractors", "5", "--distractors-from", "{missing}"], "no such file"),
        (["--distractors", "5", "--distractors-from", "{two}"], "2 papers; a distractor mixes"),
    ],
)
def test_distractors_from_a_bad_source_stops_before_anything_is_copied(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = _small_corpus(tmp_path / "two.jsonl", 2)
    names = {"{corpus}": str(two), "{missing}": str(tmp_path / "nope.jsonl"), "{two}": str(two)}
    argv = [names.get(arg, arg) for arg in extra]
    data = tmp_path / "data"
    questions = _one_question_set(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAPERCHAT_DATA_DIR", str(data))
        status = main(["eval", str(questions), "--db", str(tmp_path / "db"), *argv])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not data.exists() or not list(data.glob("distractors-*"))


def test_distractors_are_added_once_and_later_runs_only_read_them(
    bundled_db: Path,
    embeddings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evals.cli import with_distractors
    from rag.pipeline import Assistant
    from rag.settings import Settings

    source = _small_corpus(tmp_path / "three.jsonl", 3)
    settings = Settings(db_dir=bundled_db, data_dir=tmp_path / "data")
    first = with_distractors(settings, 3, source)
    assert "Adding 3 distractor papers" in capsys.readouterr().err
    bundled = Assistant.open(settings, embeddings=embeddings).index.count()
    assert Assistant.open(first, embeddings=embeddings).index.count() == bundled + 3

    # A second run (or one beside an eval that is reading the copy) ingests nothing, so it
    # never waits for the writer's lock.
    def no_second_ingest(*args: object, **kwargs: object) -> None:
        raise AssertionError("the distractors were ingested again")

    monkeypatch.setattr(Assistant, "create", no_second_ingest)
    second = with_distractors(settings, 3, source)
    assert second.resolved_db_dir == first.resolved_db_dir
    assert "already in" in capsys.readouterr().err
