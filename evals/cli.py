"""`paperchat eval`: the subcommand's parser and its implementation (imported lazily by rag.cli)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.configs import BASELINES
from evals.metrics import LOWER_IS_BETTER, METRIC_HELP, METRIC_KEYS
from rag.errors import InputError


def _epilog() -> str:
    width = max(len(k) for k in METRIC_HELP)
    lines = [
        "metrics (overall and per question type; titles compared lower-cased, alphanumerics only):"
    ]
    lines += [f"  {key:<{width}}  {text}" for key, text in METRIC_HELP.items()]
    lines += [
        "",
        "answerable = the question has gold titles. A key point's content words are lower-cased",
        "alphanumeric tokens of 3+ characters or numbers, minus English stop words.",
        "",
        "configs: default = exactly `paperchat ask`; bm25 = BM25 only; dense = dense only",
        "(both + the extractive answer); langchain_basic = RecursiveCharacterTextSplitter chunks",
        "in Chroma, similarity_search k=4, no fusion, no history.",
        "",
        "writes report.json, report.md and report.png into --out. Exit status: 0 when done,",
        "1 when a --fail-under check fails, 2 on bad input.",
        "",
        "example: paperchat eval evals/sets/dev.jsonl --mode extractive --fail-under recall@5=0.97",
    ]
    return "\n".join(lines)


def add_eval_parser(
    sub: Any,
    storage_options: Callable[[argparse.ArgumentParser], None],
    func: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """Register `paperchat eval` on the `sub` subparsers object."""
    parser = sub.add_parser(
        "eval",
        help="score an evaluation set against baselines",
        # RawDescriptionHelpFormatter keeps the metric list aligned, so wrap by hand.
        description="Run every question of an evaluation set (follow-ups with their history)\n"
        "through paperchat and the baselines on the same index, and write a report.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "set_file",
        metavar="SET.jsonl",
        help='JSON Lines: {"id", "type", "question", "gold_titles", "key_points"[, "history"]}',
    )
    storage_options(parser)
    parser.add_argument(
        "--mode",
        choices=["auto", "extractive", "llm"],
        help="answer mode of the default config (default: PAPERCHAT_ANSWER_MODE, else auto); "
        "baselines always answer extractively",
    )
    parser.add_argument(
        "--compare",
        metavar="NAMES",
        help=f"comma list of baselines to run beside default (default: {','.join(BASELINES)}; "
        "'none' for default only)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: a timestamped folder under DATA_DIR/evals)",
    )
    parser.add_argument(
        "--k", type=int, metavar="N", help="papers retrieved and answered from (default 5)"
    )
    parser.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 when the default config's overall METRIC is below VALUE (above it for "
        "false_abstention_rate); repeatable",
    )
    parser.set_defaults(func=func)
    return parser


def parse_fail_under(items: list[str]) -> dict[str, float]:
    """['recall@5=0.97', ...] -> {'recall@5': 0.97}; a bad item raises InputError."""
    thresholds: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not sep or key not in METRIC_KEYS or value != value:
            raise InputError(
                f"--fail-under {item!r}: expected METRIC=VALUE with METRIC one of "
                f"{', '.join(METRIC_KEYS)} and VALUE a number, e.g. recall@5=0.97."
            )
        thresholds[key] = value
    return thresholds


def _progress() -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """One tqdm bar per config on stderr; silent when stderr is not a terminal."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "chunk" if "indexing" in label else "question"
            bar = bars[label] = tqdm(
                total=total, desc=label, unit=unit, file=sys.stderr, disable=None, leave=True
            )
        bar.n = done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def summary_table(report: dict[str, Any]) -> str:
    """The overall metrics of every config, aligned for a terminal."""
    names = list(report["configs"])
    keys = [*METRIC_KEYS, "p50 ms"]
    width = max(len(n) for n in names)
    head = f"{'':<{width}}  " + "  ".join(f"{k:>{max(len(k), 6)}}" for k in keys)
    rows = [head]
    for name in names:
        config = report["configs"][name]
        cells = []
        for key in keys:
            value = config["latency_ms"]["p50"] if key == "p50 ms" else config["overall"].get(key)
            text = "—" if value is None else f"{value:.3f}" if key != "p50 ms" else f"{value:.1f}"
            cells.append(f"{text:>{max(len(key), 6)}}")
        rows.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(rows)


def run_eval_command(args: argparse.Namespace, settings: Any) -> int:
    """Validate the options, run the set, write the reports; the exit status."""
    from evals.baselines import parse_compare
    from evals.metrics import shortfalls
    from evals.report import write_report
    from evals.runner import run_eval
    from evals.sets import load_set
    from rag.pipeline import Assistant

    thresholds = parse_fail_under(list(args.fail_under or []))
    compare = parse_compare(args.compare)
    if args.k is not None and not 1 <= args.k <= 20:
        raise InputError(f"--k {args.k}: use a number of papers from 1 to 20.")
    eval_set = load_set(Path(args.set_file))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else settings.data_dir / "evals" / f"{eval_set.name}-{stamp}"
    assistant = Assistant.open(settings)
    update, close = _progress()
    try:
        report = run_eval(
            assistant, eval_set, compare=compare, k=args.k, mode=args.mode, on_progress=update
        )
    finally:
        close()
    paths = write_report(report, out)
    print(summary_table(report))
    print(
        f"\n{report['n']} questions, mode {report['mode']}, {report['runtime_s']:.1f} s. "
        f"Reports: {paths['md']} (also report.json, report.png)"
    )
    failures = shortfalls(report["configs"]["default"]["overall"], thresholds)
    for failure in failures:
        direction = "max" if failure.split(" ")[0] in LOWER_IS_BETTER else "min"
        print(f"paperchat eval: FAIL ({direction}): {failure}", file=sys.stderr)
    return 1 if failures else 0
