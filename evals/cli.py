"""`paperchat eval`: the subcommand's parser and its implementation (imported lazily by rag.cli)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
        "writes report.json, report.md and report.png into --out; prints a short table (--wide:",
        "every metric; --json: the report). Exit status: 0 when done,",
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
        "--distractors",
        type=int,
        default=0,
        metavar="N",
        help="first add N synthetic distractor papers (evals.synthetic: each abstract mixes "
        "sentences of different bundled papers) to a copy of the index, kept under "
        "DATA_DIR/distractors-N and reused, then run the set on that copy",
    )
    parser.add_argument(
        "--distractors-from",
        type=Path,
        metavar="FILE",
        help="build the --distractors papers from the sentences of this corpus file's papers "
        "(any format `paperchat ingest` reads, e.g. another field's) instead of the bundled "
        "ones, in a copy of the index of their own",
    )
    parser.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 when the default config's overall METRIC is below VALUE (above it for "
        "false_abstention_rate); repeatable",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="show every metric in the table (needs about 180 columns)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print report.json's content instead of the table (the files are written too)",
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
    """A bar per phase (a config's indexing, then its questions) with counts and time left;
    plain lines when stderr is not a terminal (rag.progress)."""
    from rag.progress import progress_bar

    current: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if current.get("label") != label:
            close()
            unit = "chunk" if "indexing" in label else "question"
            if not sys.stderr.isatty():
                print(f"eval: {label}: {total} {unit}s", file=sys.stderr, flush=True)
            current["label"] = label
            current["update"], current["close"] = progress_bar(f"eval: {label}", unit)
        current["update"](done, total)

    def close() -> None:
        if current.get("close"):
            current.pop("close")()

    return update, close


# The default table: the metrics a reader compares first, under short headers, so it fits
# an 80-100 column terminal; --wide shows every metric under its full name.
SHORT_COLUMNS = {
    "recall@5": "R@5",
    "mrr": "MRR",
    "citation_precision": "cite-P",
    "citation_recall": "cite-R",
    "key_point_coverage": "keypts",
    "abstention_accuracy": "abstain",
    "false_abstention_rate": "false-abs",
}
SHORT_LEGEND = (
    "R@5 recall@5 · cite-P/R citation precision/recall · keypts key-point coverage\n"
    "abstain abstention accuracy · false-abs false abstention rate (lower is better)\n"
    "--wide shows every metric (recall@1, recall@10, ...); report.md has them by question type."
)


def summary_table(report: dict[str, Any], wide: bool = False) -> str:
    """The overall metrics of every config, aligned for a terminal."""
    names = list(report["configs"])
    columns = {k: k for k in METRIC_KEYS} if wide else dict(SHORT_COLUMNS)
    columns["p50 ms"] = "p50 ms"
    width = max(len(n) for n in names)
    cell = {key: max(len(head), 5) for key, head in columns.items()}
    rows = [f"{'':<{width}}  " + "  ".join(f"{h:>{cell[k]}}" for k, h in columns.items())]
    for name in names:
        config = report["configs"][name]
        cells = []
        for key in columns:
            value = config["latency_ms"]["p50"] if key == "p50 ms" else config["overall"].get(key)
            text = "—" if value is None else f"{value:.3f}" if key != "p50 ms" else f"{value:.1f}"
            cells.append(f"{text:>{cell[key]}}")
        rows.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(rows) if wide else "\n".join([*rows, "", SHORT_LEGEND])


def with_distractors(settings: Any, n: int, source: Path | None = None) -> Any:
    """Settings for a copy of the local index with `n` synthetic papers added (made once),
    built from `source`'s papers (a corpus file) or the bundled ones."""
    import hashlib
    import shutil

    from evals.synthetic import distractor_papers, sentence_pool
    from rag.pipeline import Assistant
    from rag.progress import progress_bar

    name = f"distractors-{n}"
    pool = None
    if source is not None:
        if not source.is_file():
            raise InputError(f"--distractors-from {source}: no such file.")
        pool = sentence_pool([source])
        if len(pool) < 3:
            raise InputError(
                f"--distractors-from {source}: {len(pool)} papers; a distractor mixes the "
                "sentences of several, so give a corpus of at least three."
            )
        # One copy per source file and content: another file never reuses this one's papers.
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
        name += f"-{source.stem}-{digest}"
    if settings.chroma_url:
        raise InputError("--distractors copies a local index; it cannot copy a Chroma server's.")
    index = settings.resolved_db_dir
    if not (index / "chroma.sqlite3").exists():
        raise InputError(f"No index at {index}: run `paperchat ingest` first.")
    copy = settings.data_dir / name
    if not (copy / "chroma.sqlite3").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(index, copy, ignore=shutil.ignore_patterns(".ingest.lock"))
    settings = settings.model_copy(update={"db_dir": copy})
    corpus = copy / "distractors.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in distractor_papers(n, pool=pool))
    # Written after the ingest finished: a later run (or one beside this) that finds it reads
    # the copy as it is, without taking the writer's lock to re-add the same papers.
    done = copy / "distractors.done"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if done.is_file() and done.read_text(encoding="utf-8").strip() == digest:
        print(f"Using the {n} distractor papers already in {copy}", file=sys.stderr)
        return settings
    corpus.write_text(text, encoding="utf-8")
    print(f"Adding {n} distractor papers to {copy} (once; later runs reuse them)", file=sys.stderr)
    update, close = progress_bar("Distractors")
    try:
        Assistant.create(settings).ingest([corpus], on_progress=update)
    finally:
        close()
    done.write_text(digest + "\n", encoding="utf-8")
    return settings


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
    if args.distractors < 0 or args.distractors > 1_000_000:
        raise InputError(f"--distractors {args.distractors}: use 0 to 1000000 papers.")
    if args.distractors_from and not args.distractors:
        raise InputError("--distractors-from FILE needs --distractors N: how many papers to add.")
    if args.distractors:
        settings = with_distractors(settings, args.distractors, args.distractors_from)
    assistant = Assistant.open(settings)
    # As a server does once it is up: no question's latency includes encoding papers.
    assistant.index.warm_late_vectors(background=False)
    configs = ["default", *compare]
    # Said at once: the first bar moves only after the first answer, which loads the model.
    print(
        f"eval: {len(eval_set.questions)} questions x {len(configs)} configs "
        f"({', '.join(configs)}); loading the model…",
        file=sys.stderr,
        flush=True,
    )
    update, close = _progress()
    try:
        report = run_eval(
            assistant, eval_set, compare=compare, k=args.k, mode=args.mode, on_progress=update
        )
    finally:
        close()
    paths = write_report(report, out)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(summary_table(report, wide=args.wide))
        print(
            f"\n{report['n']} questions, mode {report['mode']}, {report['runtime_s']:.1f} s. "
            f"Reports: {paths['md']} (also report.json, report.png)"
        )
    failures = shortfalls(report["configs"]["default"]["overall"], thresholds)
    for failure in failures:
        direction = "max" if failure.split(" ")[0] in LOWER_IS_BETTER else "min"
        print(f"paperchat eval: FAIL ({direction}): {failure}", file=sys.stderr)
    return 1 if failures else 0


def register(sub: Any) -> None:
    """`paperchat eval`, for the "paperchat.commands" entry-point group."""
    from rag.cli import settings_from_args, storage_options

    def run(args: argparse.Namespace) -> int:
        return int(run_eval_command(args, settings_from_args(args)))

    add_eval_parser(sub, storage_options, run)
