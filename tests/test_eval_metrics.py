"""Each metric definition of `paperchat eval`, pinned on tiny hand-made cases."""

from __future__ import annotations

import pytest

from evals.metrics import (
    METRIC_KEYS,
    aggregate,
    citation_precision,
    citation_recall,
    key_point_coverage,
    key_point_covered,
    mistakes,
    percentile,
    recall_at,
    reciprocal_rank,
    score_question,
    shortfalls,
)

A, B, C, D = "Paper A", "Paper B", "Paper C", "Paper D"


def test_recall_at_k_counts_gold_in_the_top_k() -> None:
    assert recall_at([A], [B, A, C], 1) == 0.0
    assert recall_at([A], [B, A, C], 2) == 1.0
    assert recall_at([A, C], [A, B, D], 5) == 0.5
    assert recall_at([A, C], [C, A], 1) == 0.5


def test_titles_match_after_lowercasing_and_dropping_non_alphanumerics() -> None:
    assert recall_at(["Show me: NFT-price (v2)"], ["show me nft price v2"], 1) == 1.0
    assert citation_recall(["Text2FaceGAN: Face"], ["text2facegan face"]) == 1.0


def test_recall_needs_gold() -> None:
    with pytest.raises(ValueError):
        recall_at([], [A], 5)


def test_mrr_is_one_over_the_rank_of_the_first_gold_paper_within_20() -> None:
    assert reciprocal_rank([A], [A, B]) == 1.0
    assert reciprocal_rank([C, B], [A, B, C]) == 0.5
    assert reciprocal_rank([A], [B, C]) == 0.0
    twenty = [f"other {i}" for i in range(19)]
    assert reciprocal_rank([A], [*twenty, A]) == pytest.approx(1 / 20)
    assert reciprocal_rank([A], [*twenty, B, A]) == 0.0  # rank 21 is past the cut


def test_citation_precision_over_what_was_cited() -> None:
    assert citation_precision([A], [A, B]) == 0.5
    assert citation_precision([A, B], [A]) == 1.0
    assert citation_precision([A], [C, D]) == 0.0
    assert citation_precision([A], []) is None  # answers citing nothing are left out
    assert citation_precision([A], [A, "paper a"]) == 1.0  # one paper cited twice


def test_citation_recall_over_gold() -> None:
    assert citation_recall([A, B], [A, C]) == 0.5
    assert citation_recall([A], []) == 0.0
    assert citation_recall([A, B, C], [A, B, C, D]) == 1.0


def test_key_point_covered_when_half_its_content_words_occur() -> None:
    # content words: "multi", "teacher", "distillation", "2023" ("with" is a stop word)
    point = "multi-teacher distillation with 2023"
    assert key_point_covered(point, "Uses multi teacher models.") is True  # 2 of 4
    assert key_point_covered(point, "A teacher network.") is False  # 1 of 4
    assert key_point_covered(point, "DISTILLATION in 2023") is True  # case-insensitive
    assert key_point_covered("the of and", "anything") is None  # nothing to check


def test_short_tokens_and_stop_words_are_not_content_words() -> None:
    # "an", "of", "is" are short or stop words; only "ocean" and "color" count.
    assert key_point_covered("an ocean of color is", "ocean") is True
    assert key_point_covered("an ocean of color is", "of is an") is False


def test_key_point_coverage_is_the_share_covered() -> None:
    points = ["graph neural networks", "price category", "risk return profiles"]
    answer = "It uses graph neural networks to predict a price category."
    assert key_point_coverage(points, answer) == pytest.approx(2 / 3)
    assert key_point_coverage([], answer) is None


def test_score_question_answerable() -> None:
    m = score_question(
        gold_titles=[A, B],
        key_points=["alpha beta", "gamma delta"],
        retrieved_titles=[C, A, D, B],
        cited_titles=[A, C],
        abstained=False,
        answer="alpha beta [1]",
    )
    assert set(m) == set(METRIC_KEYS)
    assert m["recall@1"] == 0.0
    assert m["recall@5"] == 1.0
    assert m["mrr"] == 0.5
    assert m["citation_precision"] == 0.5
    assert m["citation_recall"] == 0.5
    assert m["key_point_coverage"] == 0.5
    assert m["false_abstention_rate"] == 0.0
    assert m["abstention_accuracy"] is None


def test_score_question_abstention_cites_nothing() -> None:
    m = score_question(
        gold_titles=[A],
        key_points=["alpha"],
        retrieved_titles=[A],
        cited_titles=[A],  # ignored: an abstention cites nothing
        abstained=True,
        answer="The indexed papers don't answer this question.",
    )
    assert m["recall@1"] == 1.0  # retrieval is scored whatever the answer did
    assert m["citation_recall"] == 0.0
    assert m["citation_precision"] is None
    assert m["false_abstention_rate"] == 1.0


def test_score_question_unanswerable() -> None:
    kept = score_question(
        gold_titles=[],
        key_points=[],
        retrieved_titles=[A],
        cited_titles=[],
        abstained=True,
        answer="",
    )
    assert kept["abstention_accuracy"] == 1.0 and kept["refused_or_flagged"] == 1.0
    unanswerable_only = ("abstention_accuracy", "refused_or_flagged")
    assert all(kept[k] is None for k in METRIC_KEYS if k not in unanswerable_only)
    answered = score_question(
        gold_titles=[],
        key_points=[],
        retrieved_titles=[A],
        cited_titles=[A],
        abstained=False,
        answer="x",
    )
    assert answered["abstention_accuracy"] == 0.0 and answered["refused_or_flagged"] == 0.0
    assert answered["answer_words"] == 1.0
    flagged = score_question(
        gold_titles=[],
        key_points=[],
        retrieved_titles=[A],
        cited_titles=[A],
        abstained=False,
        answer="x y",
        flagged=True,
    )
    assert flagged["abstention_accuracy"] == 0.0 and flagged["refused_or_flagged"] == 1.0


def test_answer_words_aggregate_by_median() -> None:
    rows = [{"answer_words": w} for w in (10.0, 20.0, 300.0)]
    assert aggregate(rows)["answer_words"] == 20.0


def test_aggregate_averages_where_each_metric_applies() -> None:
    answerable = score_question(
        gold_titles=[A],
        key_points=[],
        retrieved_titles=[A],
        cited_titles=[A, B],
        abstained=False,
        answer="",
    )
    abstained = score_question(
        gold_titles=[A],
        key_points=[],
        retrieved_titles=[B],
        cited_titles=[],
        abstained=True,
        answer="",
    )
    unanswerable = score_question(
        gold_titles=[],
        key_points=[],
        retrieved_titles=[A],
        cited_titles=[A],
        abstained=False,
        answer="",
    )
    result = aggregate([answerable, abstained, unanswerable])
    assert result["n"] == 3
    assert result["recall@1"] == 0.5  # over the two answerable questions
    assert result["citation_precision"] == 0.5  # only the one that cited anything
    assert result["citation_recall"] == 0.5
    assert result["false_abstention_rate"] == 0.5
    assert result["abstention_accuracy"] == 0.0  # the one unanswerable was answered
    assert result["key_point_coverage"] is None  # no key points anywhere
    assert list(result) == [*METRIC_KEYS, "n"]


def test_aggregate_of_nothing() -> None:
    assert aggregate([]) == {**dict.fromkeys(METRIC_KEYS), "n": 0}


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0], 95) == 10.0
    assert percentile([0.0, 100.0], 95) == pytest.approx(95.0)
    assert percentile([], 50) is None


def test_shortfalls() -> None:
    metrics = {"recall@5": 0.9, "false_abstention_rate": 0.1, "abstention_accuracy": None}
    assert shortfalls(metrics, {"recall@5": 0.9}) == []
    assert shortfalls(metrics, {"recall@5": 0.95}) == ["recall@5 = 0.900 is below 0.95"]
    assert shortfalls(metrics, {"false_abstention_rate": 0.05}) == [
        "false_abstention_rate = 0.100 is above 0.05"
    ]
    assert shortfalls(metrics, {"false_abstention_rate": 0.2}) == []
    assert "not defined" in shortfalls(metrics, {"abstention_accuracy": 0.5})[0]


def test_mistakes() -> None:
    assert mistakes([A], [A], False) == []
    assert mistakes([], [], True) == []
    assert mistakes([], [A], False) == ["answered an unanswerable question"]
    assert mistakes([A], [], True) == ["abstained on an answerable question"]
    assert mistakes([A, B], [A, C], False) == ["did not cite: Paper B", "cited non-gold: Paper C"]
