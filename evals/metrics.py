"""Evaluation metrics: pure functions over titles, answers and abstention flags.

Each question gets a value per metric, or None where the metric does not apply to it
(recall on an unanswerable question, precision of an answer that cites nothing). A set's
metric is the mean over the questions where it applies, which is exactly the definition:

- recall@k: answerable questions; |gold ∩ top-k retrieved| / |gold|.
- mrr: answerable questions; 1 / rank of the first gold paper in the top 20, else 0.
- citation_precision: answerable questions citing anything; |cited ∩ gold| / |cited|.
- citation_recall: answerable questions; |cited ∩ gold| / |gold| (an abstention cites nothing).
- key_point_coverage: answerable questions; share of key points covered by the answer.
- abstention_accuracy: unanswerable questions; 1 when the answer abstained.
- false_abstention_rate: answerable questions; 1 when the answer abstained.
- refused_or_flagged: unanswerable questions; 1 when the answer abstained or said which of
  the question's names the cited abstracts do not mention (a visibly flagged near miss).
- answer_words: questions answered (not abstained); words in the answer. The set's value is
  the median, not the mean.

Titles are compared after rag.corpus.normalize_title (lower-cased, letters and digits only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rag.papers import normalize_title
from rag.text import content_words

MRR_DEPTH = 20
RECALL_DEPTHS = (1, 5, 10)
METRIC_KEYS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "mrr",
    "citation_precision",
    "citation_recall",
    "key_point_coverage",
    "abstention_accuracy",
    "false_abstention_rate",
    "refused_or_flagged",
    "answer_words",
)
# Aggregated by the median: a few long multi-paper lists should not hide typical length.
MEDIAN_METRICS = frozenset({"answer_words"})
# Metrics where a smaller value is better (for "best" marks and --fail-under).
LOWER_IS_BETTER = frozenset({"false_abstention_rate", "answer_words"})

METRIC_HELP = {
    "recall@1": "share of gold papers ranked first (answerable questions)",
    "recall@5": "share of gold papers among the top 5 retrieved (answerable questions)",
    "recall@10": "share of gold papers among the top 10 retrieved (answerable questions)",
    "mrr": "mean of 1/rank of the first gold paper in the top 20, 0 if absent (answerable)",
    "citation_precision": "share of cited papers that are gold (answerable questions that cite)",
    "citation_recall": "share of gold papers the answer cites; abstaining cites none (answerable)",
    "key_point_coverage": "share of key points whose content words are at least half in the "
    "answer (answerable)",
    "abstention_accuracy": "share of unanswerable questions the answer abstains on",
    "false_abstention_rate": "share of answerable questions abstained on (lower is better)",
    "refused_or_flagged": "share of unanswerable questions abstained on or answered with the "
    "asked names the cited abstracts lack listed",
    "answer_words": "median words in an answer that does not abstain (lower is shorter)",
    "n": "number of questions scored",
}

Metrics = dict[str, float | None]


def _normalized(titles: Iterable[str]) -> list[str]:
    """Normalised titles, first occurrence kept, order preserved."""
    out: list[str] = []
    for title in titles:
        norm = normalize_title(title)
        if norm and norm not in out:
            out.append(norm)
    return out


def recall_at(gold: Iterable[str], retrieved: Sequence[str], k: int) -> float:
    """|gold ∩ top-k retrieved| / |gold|; gold must not be empty."""
    wanted = set(_normalized(gold))
    if not wanted:
        raise ValueError("recall is defined for answerable questions (non-empty gold) only")
    return len(wanted & set(_normalized(retrieved)[:k])) / len(wanted)


def reciprocal_rank(gold: Iterable[str], retrieved: Sequence[str], depth: int = MRR_DEPTH) -> float:
    """1 / rank of the first gold paper among the first `depth` retrieved, else 0."""
    wanted = set(_normalized(gold))
    for rank, title in enumerate(_normalized(retrieved)[:depth], start=1):
        if title in wanted:
            return 1.0 / rank
    return 0.0


def citation_precision(gold: Iterable[str], cited: Iterable[str]) -> float | None:
    """|cited ∩ gold| / |cited|; None when nothing is cited (the metric skips such answers)."""
    cited_set = set(_normalized(cited))
    if not cited_set:
        return None
    return len(cited_set & set(_normalized(gold))) / len(cited_set)


def citation_recall(gold: Iterable[str], cited: Iterable[str]) -> float:
    """|cited ∩ gold| / |gold|; gold must not be empty."""
    wanted = set(_normalized(gold))
    if not wanted:
        raise ValueError("citation recall is defined for answerable questions only")
    return len(wanted & set(_normalized(cited))) / len(wanted)


def key_point_covered(point: str, answer: str) -> bool | None:
    """At least half of the point's distinct content words occur in the answer.

    None for a point with no content words (nothing to check), which is then left out.
    """
    wanted = set(content_words(point))
    if not wanted:
        return None
    have = set(content_words(answer))
    return 2 * len(wanted & have) >= len(wanted)


def key_point_coverage(points: Iterable[str], answer: str) -> float | None:
    """Share of checkable key points covered by the answer; None when there are none."""
    verdicts = [v for v in (key_point_covered(p, answer) for p in points) if v is not None]
    if not verdicts:
        return None
    return sum(verdicts) / len(verdicts)


def score_question(
    *,
    gold_titles: Sequence[str],
    key_points: Sequence[str],
    retrieved_titles: Sequence[str],
    cited_titles: Sequence[str],
    abstained: bool,
    answer: str,
    flagged: bool = False,
) -> Metrics:
    """Every metric for one question; None where it does not apply."""
    metrics: Metrics = dict.fromkeys(METRIC_KEYS)
    if not abstained:
        metrics["answer_words"] = float(len(answer.split()))
    if not gold_titles:
        metrics["abstention_accuracy"] = 1.0 if abstained else 0.0
        metrics["refused_or_flagged"] = 1.0 if abstained or flagged else 0.0
        return metrics
    for k in RECALL_DEPTHS:
        metrics[f"recall@{k}"] = recall_at(gold_titles, retrieved_titles, k)
    metrics["mrr"] = reciprocal_rank(gold_titles, retrieved_titles)
    cited = [] if abstained else list(cited_titles)
    metrics["citation_precision"] = citation_precision(gold_titles, cited)
    metrics["citation_recall"] = citation_recall(gold_titles, cited)
    metrics["key_point_coverage"] = key_point_coverage(key_points, answer)
    metrics["false_abstention_rate"] = 1.0 if abstained else 0.0
    return metrics


def aggregate(per_question: Sequence[Mapping[str, float | None]]) -> dict[str, float | int | None]:
    """Mean of each metric over the questions where it applies (None if none do), plus `n`."""
    result: dict[str, float | int | None] = {}
    for key in METRIC_KEYS:
        values = [float(v) for m in per_question if (v := m.get(key)) is not None]
        if not values:
            result[key] = None
        elif key in MEDIAN_METRICS:
            result[key] = percentile(values, 50)
        else:
            result[key] = sum(values) / len(values)
    result["n"] = len(per_question)
    return result


def percentile(values: Sequence[float], q: float) -> float | None:
    """numpy's linearly interpolated q-th percentile (0-100); None when there are no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def shortfalls(
    metrics: Mapping[str, float | int | None], thresholds: Mapping[str, float]
) -> list[str]:
    """Human-readable failures of `metrics` against --fail-under thresholds.

    A lower-is-better metric fails when above its threshold; a metric that does not apply
    (None, e.g. no unanswerable questions in the set) fails too, since it was not checked.
    """
    failures = []
    for key, limit in thresholds.items():
        value = metrics.get(key)
        if value is None:
            failures.append(f"{key} is not defined on this set (no questions it applies to)")
        elif key in LOWER_IS_BETTER and value > limit:
            failures.append(f"{key} = {value:.3f} is above {limit:g}")
        elif key not in LOWER_IS_BETTER and value < limit:
            failures.append(f"{key} = {value:.3f} is below {limit:g}")
    return failures


def mistakes(gold_titles: Sequence[str], cited_titles: Sequence[str], abstained: bool) -> list[str]:
    """Why an answer is wrong, for the report; empty when it is right.

    Right means: an unanswerable question abstained; an answerable one did not abstain and
    cited exactly its gold papers.
    """
    if not gold_titles:
        return [] if abstained else ["answered an unanswerable question"]
    if abstained:
        return ["abstained on an answerable question"]
    gold = {normalize_title(t): t for t in gold_titles}
    cited = {normalize_title(t): t for t in cited_titles}
    reasons = [f"did not cite: {title}" for key, title in gold.items() if key not in cited]
    reasons += [f"cited non-gold: {title}" for key, title in cited.items() if key not in gold]
    return reasons
