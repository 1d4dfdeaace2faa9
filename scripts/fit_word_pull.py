"""Fit answer.missing_word_pull: how far a missing word must pull a question from its paper.

    .venv/bin/python scripts/fit_word_pull.py [--bundled-db DIR] --aclsum-db DIR \\
        --aclsum-set FILE [--out docs/fit-word-pull.json]

A word of the question that the cited abstract never uses is listed as missing when leaving
it out brings the question's vector closer to the abstract's by more than the threshold
(rag.word_pull). A flag on a right answer is true (the abstract does not use the word) but is
noise to a reader, so the threshold is set by a budget, as the abstention bias is
(scripts/fit_retrieval.py): the lowest threshold of the grid at which the sets' mean share
of right answers (answered, first citation a gold paper) that the pull flags is at most
FLAG_BUDGET, each set weighing the same. The unanswerable questions play no part in the fit:
they are what it is measured on.

Sets: evals.sets.FITTING_SETS (bundled corpus) and ACLSum. Leave one set out: fit on the
others, report the one left out (its right answers flagged, its answered unanswerables
flagged). The shipped value is fitted on all of them; the held-out sets (every other
evals/sets/unseen*.jsonl) are reported with it and never fitted on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.sets import FITTING_SETS, load_set  # noqa: E402
from rag.missing import absent_pulls  # noqa: E402
from rag.pipeline import Assistant  # noqa: E402
from rag.settings import Settings  # noqa: E402

FLAG_BUDGET = 0.05
GRID = tuple(round(0.002 * i, 3) for i in range(1, 41))  # 0.002 .. 0.08


def strongest_pulls(assistant: Assistant, path: Path) -> dict[str, list[float]]:
    """Per answered question of the set, the strongest pull of a word its first cited paper
    never uses: for the right answers and for the answered unanswerable questions."""
    found: dict[str, list[float]] = {"right": [], "unanswerable": []}
    for q in load_set(path).questions:
        retrieval = assistant.retriever.retrieve(q.question, q.history)
        answer = assistant.extractive(q.question, retrieval, assistant.settings.retrieval.k, q.history)
        if answer.abstained or not answer.citations or retrieval.question is None:
            continue
        first = answer.citations[0]
        if q.gold_titles and first.title not in q.gold_titles:
            continue  # a wrong paper: a flag on it is no false alarm
        paper = next(h.paper for h in answer.retrieved if h.paper.id == first.paper_id)
        vector = assistant.index.paper_vectors([paper.id])[paper.id][0]
        pulls = absent_pulls(q.question, retrieval.question, paper, vector)
        found["right" if q.gold_titles else "unanswerable"].append(max(pulls.values(), default=0.0))
    return found


def flagged(values: list[float], threshold: float) -> float | None:
    return round(float(np.mean([v > threshold for v in values])), 3) if values else None


def fit(pulls: dict[str, dict[str, list[float]]], sets: list[str]) -> float:
    for threshold in GRID:
        rates = [flagged(pulls[s]["right"], threshold) for s in sets]
        if np.mean([r for r in rates if r is not None]) <= FLAG_BUDGET:
            return threshold
    return GRID[-1]


def report(pulls: dict[str, list[float]], threshold: float) -> dict[str, object]:
    return {
        "right_answers_flagged": flagged(pulls["right"], threshold),
        "right_answers": len(pulls["right"]),
        "answered_unanswerables_flagged": flagged(pulls["unanswerable"], threshold),
        "answered_unanswerables": len(pulls["unanswerable"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundled-db", type=Path, help="index of the bundled corpus")
    parser.add_argument("--aclsum-db", type=Path, required=True)
    parser.add_argument("--aclsum-set", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/fit-word-pull.json"))
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    bundled = Assistant.open(Settings(db_dir=args.bundled_db) if args.bundled_db else Settings())
    pulls = {s: strongest_pulls(bundled, root / f"evals/sets/{s}.jsonl") for s in FITTING_SETS}
    aclsum = Assistant.open(Settings(db_dir=args.aclsum_db))
    pulls["aclsum"] = strongest_pulls(aclsum, args.aclsum_set)
    held_out = sorted(
        p.stem for p in (root / "evals/sets").glob("unseen*.jsonl") if p.stem not in FITTING_SETS
    )
    sets = list(pulls)
    folds = {}
    for held in sets:
        training = [s for s in sets if s != held]
        threshold = fit(pulls, training)
        folds[held] = {"fitted_on": training, "threshold": threshold, **report(pulls[held], threshold)}
    final = fit(pulls, sets)
    unseen = {s: strongest_pulls(bundled, root / f"evals/sets/{s}.jsonl") for s in held_out}
    result = {
        "flag_budget": FLAG_BUDGET,
        "folds": folds,
        "final": {
            "threshold": final,
            "in_sample": {s: report(pulls[s], final) for s in sets},
            "held_out": {s: report(unseen[s], final) for s in held_out},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
