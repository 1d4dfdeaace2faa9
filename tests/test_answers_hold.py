"""Answer quality on the real model and index: the regression set and the dev-set targets,
run through `paperchat eval` exactly as a user would, with --fail-under guards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.cli import main

SETS = Path(__file__).resolve().parents[1] / "evals" / "sets"

pytestmark = pytest.mark.integration


def _eval(bundled_db: Path, tmp_path: Path, name: str, *guards: str) -> dict[str, Any]:
    out = tmp_path / name
    argv = ["eval", str(SETS / f"{name}.jsonl"), "--db", str(bundled_db), "--out", str(out)]
    argv += ["--mode", "extractive", "--compare", "none"]
    for guard in guards:
        argv += ["--fail-under", guard]
    status = main(argv)
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    assert status == 0, json.dumps(report["configs"]["default"]["overall"], indent=1)
    return report


def _assert_refused(report: dict[str, Any], ids: tuple[str, ...]) -> None:
    """The default config refused each of these questions (a set's off-topic ones)."""
    rows = [q for q in report["questions"] if q["id"] in ids and q["config"] == "default"]
    assert len(rows) == len(ids) and all(q["abstained"] for q in rows)


def test_regression_questions(bundled_db: Path, tmp_path: Path) -> None:
    report = _eval(
        bundled_db,
        tmp_path,
        "regressions",
        "recall@1=1.0",
        "refused_or_flagged=1.0",
        "false_abstention_rate=0.0",
    )
    rows = {q["id"]: q for q in report["questions"]}
    # Each answer states the asked fact, from the paper the question names or describes.
    assert "77%" in rows["r01"]["answer"] and rows["r01"]["cited_titles"][0].startswith("LLaVA-Mini")
    assert "75%~89%" in rows["r02"]["answer"]
    assert "3.1 trillion tokens" in rows["r03"]["answer"]
    # No paper covers these: refused, or answered with the asked names the abstract lacks.
    assert rows["r04"]["abstained"] or "Adam" in rows["r04"]["missing_terms"]
    assert rows["r05"]["abstained"] or {"Japanese", "Korean"} <= set(rows["r05"]["missing_terms"])
    # A request for a summary opens with what the paper is; an elliptical follow-up stays
    # with the paper of the conversation.
    assert rows["r06"]["answer"].startswith("We introduce the Yi model family")
    assert "AVC-LM" in rows["r07"]["answer"]
    # A possessive name ("Yi's") is still the name: answered from Yi, not refused.
    assert "200K" in rows["r08"]["answer"]
    # Near the corpus's topics, but matched only once the words no paper uses ("copyrighted",
    # "federated") are ignored: refused, not answered from a neighbouring paper.
    assert rows["r09"]["abstained"] and rows["r10"]["abstained"]
    # A name introduced only in an abstract, with a part too short to be a word ("ST-Align"):
    # the paper that introduces it, not one whose title says "Align".
    assert "4.3M training samples" in rows["r11"]["answer"]


def test_dev_set_targets(bundled_db: Path, tmp_path: Path) -> None:
    report = _eval(
        bundled_db,
        tmp_path,
        "dev",
        "recall@5=0.97",
        "mrr=0.95",
        "abstention_accuracy=0.75",
        "false_abstention_rate=0.05",
        "answer_words=60",
    )
    assert report["configs"]["default"]["by_type"]["multi"]["recall@5"] >= 0.95


def test_dev_hard_targets(bundled_db: Path, tmp_path: Path) -> None:
    # Its three near misses: one names what the corpus lacks (refused), one insists on video
    # by contrast and one asks for decoding where the paper does encoding (both flagged).
    _eval(bundled_db, tmp_path, "dev_hard", "recall@5=0.90", "refused_or_flagged=1.0")


def test_fresh_set_targets(bundled_db: Path, tmp_path: Path) -> None:
    # The set written blind (docs/evaluation.md); its near misses are all flagged or refused.
    # The fit holds the training sets' mean false abstention to 0.05, not each set's: fresh
    # refuses 2 of its 39 answerable questions (0.051).
    report = _eval(
        bundled_db, tmp_path, "fresh", "recall@5=0.95", "mrr=0.9", "false_abstention_rate=0.06"
    )
    near_misses = [q for q in report["questions"] if q["id"] in ("f30", "f31", "f32")]
    assert all(q["abstained"] or q["missing_terms"] for q in near_misses)


def test_a_near_miss_is_flagged_or_refused(assistant: Any) -> None:
    answer = assistant.ask(
        "Which open LLM was pretrained mainly on Japanese and Korean text?", mode="extractive"
    )
    assert answer.abstained or {"Japanese", "Korean"} <= set(answer.missing_terms)
    flagged = assistant.ask(
        "How many tokens was Yi pretrained on, and how much of it was Korean?", mode="extractive"
    )
    if not flagged.abstained:
        assert flagged.missing_terms == ["Korean"]
        assert "does not mention: Korean" in flagged.note


def test_follow_ups_about_a_place_in_the_list_and_about_the_record(assistant: Any) -> None:
    from rag.types import Turn

    first = assistant.ask("Compare JPEG-LM and LLaVA-Mini.", mode="extractive")
    listed = [c.title.split(":")[0] for c in first.citations]
    assert sorted(listed) == ["JPEG-LM", "LLaVA-Mini"]
    history = [Turn("user", "Compare JPEG-LM and LLaVA-Mini."), Turn("assistant", first.text)]
    second = assistant.ask("What does the second one do?", history, mode="extractive")
    assert [c.title.split(":")[0] for c in second.citations] == [listed[1]]
    # The first paper's name was the conversation's, not this question's: no note about it.
    assert second.missing_terms == []
    record = assistant.ask("Who wrote the latter?", history, mode="extractive")
    # The bundled listings carry no authors: said, not answered with abstract sentences.
    assert record.text.startswith(f"The index has no author list for {listed[1]}")


@pytest.mark.parametrize(
    "question",
    ["?", "Which papers?", "What is this?", "thanks!", "Tell me more", "Summarize it", "What is 2+2?"],
)
def test_a_question_that_asks_nothing_is_refused_not_answered_from_a_paper(
    assistant: Any, question: str
) -> None:
    # Each used to be answered: "thanks!" from a paper saying "Thanks to ...", "?" from
    # whichever abstract was nearest to nothing. The refusal says what to ask instead.
    answer = assistant.ask(question, mode="extractive")
    assert answer.abstained and answer.citations == []
    assert answer.text.startswith("This question names nothing to look up")


@pytest.mark.parametrize("follow_up", ["Tell me more", "Go on", "Explain further", "Summarize it"])
def test_a_follow_up_asking_for_more_stays_with_the_conversations_paper(
    assistant: Any, follow_up: str
) -> None:
    from rag.types import Turn

    first = assistant.ask("How many tokens was Yi pretrained on?", mode="extractive")
    history = [Turn("user", "How many tokens was Yi pretrained on?"), Turn("assistant", first.text)]
    more = assistant.ask(follow_up, history, mode="extractive")
    assert not more.abstained
    assert [c.title for c in more.citations] == [first.citations[0].title]


SMALL_COLLECTION = [
    (
        "Gradient Tides: Training Sparse Transformers with Tidal Learning Rates",
        "We propose tidal learning rates for sparse transformers. The schedule oscillates with "
        "the layer depth and cuts training time by 31% on WMT14.",
    ),
    (
        "Granite Graphs: Message Passing over Rock Fracture Networks",
        "We model rock fractures as graphs and predict permeability with message passing "
        "neural networks, reducing error by 12%.",
    ),
    (
        "Quiet Queues: Low-Latency Scheduling for Serverless Functions",
        "We schedule serverless functions with a learned queue model that lowers tail latency "
        "by 40% on production traces.",
    ),
    (
        "Leaf Lens: Detecting Crop Disease from Smartphone Photos",
        "We collect 20,000 smartphone photos of cassava leaves labelled by agronomists and "
        "train a lightweight convolutional network that detects four diseases with 91% "
        "accuracy on a phone.",
    ),
    (
        "Courtroom Summaries: Abstractive Summarization of Legal Judgments",
        "We release a dataset of 7,000 court judgments paired with expert-written summaries and "
        "show that a long-document transformer outperforms extractive baselines by 4 ROUGE "
        "points.",
    ),
]


def test_a_small_collection_of_several_fields_answers_what_its_papers_say(
    embeddings: Any, tmp_path: Path
) -> None:
    """Five papers of five fields: each stands far above the rest for its own questions, which
    the support model (fitted on two one-field corpora) read as a lone outlier and refused
    ("Which paper speeds up training ...?", "How many judgments ...?") before the lead over
    the next papers was capped (retrieval.dense_margin_cap, docs/evaluation.md)."""
    from rag.pipeline import Assistant
    from rag.settings import Settings

    corpus = tmp_path / "mine.jsonl"
    rows = [{"title": title, "abstract": abstract} for title, abstract in SMALL_COLLECTION]
    corpus.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", db_dir=tmp_path / "db")
    Assistant.create(settings, embeddings).ingest([corpus])
    assistant = Assistant.open(settings, embeddings=embeddings)
    questions = {
        "How do they predict permeability of rock fractures?": "Granite Graphs",
        "Which model detects diseases in cassava leaves from phone pictures?": "Leaf Lens",
        "Is there a dataset of court rulings with summaries?": "Courtroom Summaries",
        "How much does the learned queue lower tail latency?": "Quiet Queues",
        "Which paper speeds up training of sparse transformers?": "Gradient Tides",
        "How many judgments are in the legal dataset?": "Courtroom Summaries",
    }
    for question, title in questions.items():
        answer = assistant.ask(question, mode="extractive")
        assert not answer.abstained, question
        assert [c.title.split(":")[0] for c in answer.citations] == [title], question


# The sets written blind (docs/evaluation.md): guards at their current figures, and the
# off-topic questions each must refuse. unseen5 to unseen7 were never fitted on; the others
# joined the fitting after their first runs, whose figures the comments keep.
BLIND_SET_GUARDS = [
    # First run: 0.971 / 0.888, 2 of 34 answerable refused.
    pytest.param("holdout", ("recall@5=0.97", "mrr=0.88", "false_abstention_rate=0.06"), ()),
    # On the papers no other set uses. First run 0.931 / 0.886, 2 of 34 refused. Since the refit
    # over the blind sets one near miss ("deepfake") is answered unflagged: 5 of 6.
    pytest.param(
        "unseen",
        ("recall@5=0.92", "mrr=0.86", "false_abstention_rate=0.06", "refused_or_flagged=0.83"),
        (),
    ),
    # First run 0.924 / 0.943 (BM25 alone 0.924 / 0.945), 3 of 34 refused.
    pytest.param(
        "unseen2",
        ("recall@5=0.9", "mrr=0.9", "false_abstention_rate=0.09", "refused_or_flagged=1.0"),
        ("u2-31", "u2-32", "u2-33"),
    ),
    # First run 0.866 / 0.842 (BM25 alone 0.866 / 0.795), 5 of 31 refused.
    pytest.param(
        "unseen3",
        ("recall@5=0.86", "mrr=0.83", "false_abstention_rate=0.1"),
        ("u3-18", "u3-29", "u3-40"),
    ),
    # First run 0.892 / 0.822 (BM25 alone 0.860 / 0.770), 6 of 31 refused, 7 of 9 unanswerables
    # refused or flagged (8 since the note for a quantity no abstract gives).
    pytest.param(
        "unseen4",
        ("recall@5=0.88", "mrr=0.81", "false_abstention_rate=0.07", "refused_or_flagged=0.88"),
        ("u4-10", "u4-20", "u4-33"),
    ),
    # Never fitted. First run 0.860 / 0.824 (BM25 alone 0.774 / 0.755), 7 of 31 refused; after
    # the refit 2 of 31. All 9 unanswerables refused or flagged since the quantity note
    # (written after seeing u5-01; 8 before).
    pytest.param(
        "unseen5",
        ("recall@5=0.85", "mrr=0.82", "false_abstention_rate=0.07", "refused_or_flagged=1.0"),
        ("u5-04", "u5-07", "u5-30"),
    ),
    # Never fitted. First run 0.949 / 0.893 (BM25 alone 0.884 / 0.833), 2 of 31 refused; after
    # the refit 0.917 / 0.894 and none, with 2 of 9 unanswerables unflagged instead of 1; all 9
    # refused or flagged since the unit note (written after seeing u6-22 and u6-25).
    pytest.param(
        "unseen6",
        ("recall@5=0.91", "mrr=0.88", "false_abstention_rate=0.03", "refused_or_flagged=1.0"),
        ("u6-09", "u6-16", "u6-40"),
    ),
    # Never fitted, written after every change so far. First run 0.968 / 0.968 (BM25 alone
    # 0.952 / 1.000), 1 of 31 refused, 5 of 9 unanswerables refused or flagged.
    pytest.param(
        "unseen7",
        ("recall@5=0.96", "mrr=0.96", "false_abstention_rate=0.04", "refused_or_flagged=0.55"),
        ("u7-12", "u7-17", "u7-21"),
    ),
]


@pytest.mark.parametrize(
    ("name", "guards", "off_topic"), BLIND_SET_GUARDS, ids=[p.values[0] for p in BLIND_SET_GUARDS]
)
def test_blind_set_targets(
    bundled_db: Path, tmp_path: Path, name: str, guards: tuple[str, ...], off_topic: tuple[str, ...]
) -> None:
    report = _eval(bundled_db, tmp_path, name, *guards)
    _assert_refused(report, off_topic)
