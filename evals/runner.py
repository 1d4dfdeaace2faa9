"""Run an evaluation set through every config and score it; returns the report.json object."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from evals.baselines import Config, Outcome, build_config
from evals.configs import CONFIG_NOTES
from evals.metrics import aggregate, mistakes, percentile, score_question
from evals.sets import EvalQuestion, EvalSet, check_gold_titles
from rag.pipeline import Assistant

# (label, done, total): a config's questions as they finish, or a baseline's indexing steps.
Progress = Callable[[str, int, int], None]


def question_record(config: str, question: EvalQuestion, outcome: Outcome) -> dict[str, Any]:
    """One row of report.json `questions`."""
    record: dict[str, Any] = {
        "id": question.id,
        "type": question.type,
        "config": config,
        "retrieved_titles": outcome.retrieved_titles,
        "cited_titles": outcome.cited_titles,
        "abstained": outcome.abstained,
        "answer": outcome.answer,
        "metrics": score_question(
            gold_titles=question.gold_titles,
            key_points=question.key_points,
            retrieved_titles=outcome.retrieved_titles,
            cited_titles=outcome.cited_titles,
            abstained=outcome.abstained,
            answer=outcome.answer,
            flagged=bool(outcome.missing_terms),
        ),
        "latency_ms": round(outcome.latency_ms, 2),
        "gold_titles": list(question.gold_titles),
        "wrong": mistakes(question.gold_titles, outcome.cited_titles, outcome.abstained),
    }
    if outcome.note:
        record["note"] = outcome.note
    if outcome.missing_terms:
        record["missing_terms"] = outcome.missing_terms
    record.update(outcome.extra)
    return record


def summarize(records: Sequence[dict[str, Any]], types: Sequence[str]) -> dict[str, Any]:
    """`overall`, `by_type` and `latency_ms` of one config's question records."""
    latencies = [float(r["latency_ms"]) for r in records]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "overall": aggregate([r["metrics"] for r in records]),
        "by_type": {t: aggregate([r["metrics"] for r in records if r["type"] == t]) for t in types},
        "latency_ms": {
            "p50": round(p50, 2) if p50 is not None else None,
            "p95": round(p95, 2) if p95 is not None else None,
        },
    }


def run_configs(
    configs: Sequence[Config],
    eval_set: EvalSet,
    on_progress: Progress | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every question through every config: (summaries by config, question records)."""
    summaries: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    total = len(eval_set.questions)
    for config in configs:
        rows = []
        for done, question in enumerate(eval_set.questions, start=1):
            rows.append(question_record(config.name, question, config.run(question)))
            if on_progress:
                on_progress(config.name, done, total)
        summaries[config.name] = summarize(rows, eval_set.types)
        records.extend(rows)
    return summaries, records


def run_eval(
    assistant: Assistant,
    eval_set: EvalSet,
    *,
    compare: Sequence[str],
    k: int | None = None,
    mode: str | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Score `default` plus the `compare` baselines on one index; the report.json object."""
    started = time.perf_counter()
    resolved = assistant.resolve_mode(mode)
    k = k or assistant.settings.retrieval.k
    check_gold_titles(eval_set, (p.title for p in assistant.index.all_papers()))
    configs: list[Config] = []
    setup_ms: dict[str, float] = {}
    closers = []
    try:
        for name in ("default", *compare):
            t = time.perf_counter()

            def indexing(done: int, total: int, name: str = name) -> None:
                if on_progress:
                    on_progress(f"{name} (indexing chunks)", done, total)

            config = build_config(name, assistant, k=k, mode=resolved, on_progress=indexing)
            setup_ms[name] = (time.perf_counter() - t) * 1000
            configs.append(config)
            if hasattr(config, "close"):
                closers.append(config.close)
        summaries, records = run_configs(configs, eval_set, on_progress)
    finally:
        for close in closers:
            close()
    for name, summary in summaries.items():
        summary["description"] = CONFIG_NOTES.get(name, "")
        summary["setup_ms"] = round(setup_ms.get(name, 0.0), 1)
        if name != "default" and resolved == "llm":
            summary["description"] += " (baselines answer extractively in every mode)"
    return {
        "set": eval_set.path.name,
        "set_path": str(eval_set.path),
        "n": len(eval_set.questions),
        "mode": resolved,
        "k": k,
        "index": assistant.index.location,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runtime_s": round(time.perf_counter() - started, 2),
        "configs": summaries,
        "questions": records,
    }
