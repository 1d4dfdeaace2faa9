"""Fit the answer's shape (answer.max_sentences, fill_words, part_words, line_sentences).

    .venv/bin/python scripts/fit_answer_length.py [--db DIR] [--out docs/fit-answer.json]

The sets over the bundled corpus that constants are fitted on (evals.sets.FITTING_SETS) carry
key points;
ACLSum's "key points" are its queries, so it says nothing about answer shape and is left out.

Procedure: every setting of the grid answers every question of every set once (extractive,
the real index and model). A setting is allowed for a set of training sets when each of them
keeps its median answer at most WORD_TARGET words (issue 11's target); among the allowed ones
the highest mean key-point coverage wins (each set weighing the same), fewer words breaking
ties. Leave one set out: fit on the others, report the one left out; the shipped setting is
fitted on all of them. Report to --out (JSON) and stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.metrics import key_point_coverage  # noqa: E402
from evals.sets import FITTING_SETS, load_set  # noqa: E402
from rag.pipeline import Assistant  # noqa: E402
from rag.settings import Settings  # noqa: E402

SETS = FITTING_SETS
GRID = {
    "max_sentences": (2, 3),
    "fill_words": (45, 50, 55, 60, 65, 70),
    "part_words": (0, 50, 55, 60, 70, 80, 90, 100),
    "line_sentences": (2, 3),
}
WORD_TARGET = 60


def measure(assistant: Assistant, path: Path) -> dict[str, float]:
    """Mean key-point coverage of the answerable questions and the median answer length."""
    coverage: list[float] = []
    lengths: list[int] = []
    for q in load_set(path).questions:
        answer = assistant.ask(q.question, q.history, mode="extractive")
        if q.gold_titles:
            value = key_point_coverage(q.key_points, answer.text)
            if value is not None:
                coverage.append(value)
        if not answer.abstained:
            lengths.append(len(answer.text.split()))
    return {
        "key_point_coverage": round(sum(coverage) / len(coverage), 4),
        "answer_words": float(statistics.median(lengths)),
    }


def choose(results: dict[str, dict[str, dict[str, float]]], sets: list[str]) -> str:
    allowed = [
        setting
        for setting, by_set in results.items()
        if all(by_set[s]["answer_words"] <= WORD_TARGET for s in sets)
    ]

    def merit(setting: str) -> tuple[float, float]:
        by_set = results[setting]
        coverage = sum(by_set[s]["key_point_coverage"] for s in sets) / len(sets)
        words = sum(by_set[s]["answer_words"] for s in sets) / len(sets)
        return (round(coverage, 4), -words)

    return max(allowed, key=merit)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="index of the bundled corpus (default: the usual)")
    parser.add_argument("--out", type=Path, default=Path("docs/fit-answer.json"))
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    settings = Settings(db_dir=args.db) if args.db else Settings()
    assistant = Assistant.open(settings)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        assistant.settings.answer = settings.answer.model_copy(update=setting)
        key = " ".join(f"{name}={value}" for name, value in setting.items())
        results[key] = {s: measure(assistant, root / f"evals/sets/{s}.jsonl") for s in SETS}
        print(key, results[key], file=sys.stderr)
    folds = {}
    for held in SETS:
        training = [s for s in SETS if s != held]
        chosen = choose(results, training)
        folds[held] = {"fitted_on": training, "setting": chosen, "held_out": results[chosen][held]}
    final = choose(results, list(SETS))
    report = {
        "word_target": WORD_TARGET,
        "folds": folds,
        "final": {"setting": final, "in_sample": results[final]},
        "grid": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "grid"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
