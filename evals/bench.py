"""`paperchat bench`: its command line, and the entry of the processes it measures.

The bench measures ingest speed, index size, cold start, ask latency and memory at scale, for
paperchat and the plain LangChain + Chroma `similarity_search` baseline side by side, on
deterministic synthetic corpora of N papers (evals.synthetic). The pieces:

- evals.bench_phases: the steps for each size, each in its own subprocess (`python -m
  evals.bench --worker SPEC`, whose entry is at the bottom of this file), so peak RSS is that
  of one job and a cold start really is cold;
- evals.bench_workers: what those subprocesses run;
- evals.measure: wall time, peak RSS and progress of a subprocess;
- evals.bench_report: the reports and the terminal table.

Data goes under --workdir (default: a temporary folder); bench.json, performance.md and
performance.png go to --out (default: a timestamped folder under the data directory). A
user's run never rewrites the repository's documentation: with an explicit --docs DIR (`make
bench-docs`) it also writes DIR/bench-report.md and the chart DIR/performance.png, which the
hand-written docs/performance.md shows; that page itself is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.bench_phases import (
    DEFAULT_REFERENCE_PAPERS,
    DEFAULT_REUSE_ABOVE,
    DEFAULT_SIZES,
    run_bench,
)
from evals.bench_report import summary_table, write_bench_reports
from rag.cli import int_in
from rag.settings import Settings


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s.lower().replace("k", "e3"))) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants numbers like 1000,10k: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes wants positive numbers")
    return sizes


def add_bench_parser(
    sub: Any, storage_options: Callable[[Any], None], func: Callable[..., int]
) -> None:
    """`paperchat bench`; storage flags do not apply (it builds its own indexes)."""
    bench = sub.add_parser(
        "bench",
        help="measure ingest speed, latency and memory at 1k-100k papers",
        description="Build synthetic corpora of N papers from the bundled abstracts and measure "
        "ingest papers/s, index size, cold start, ask latency and peak memory, for paperchat and "
        "a plain LangChain + Chroma baseline. Writes bench.json, performance.md and a chart "
        "to --out; never touches the repository's docs unless --docs says so.",
    )
    bench.add_argument(
        "--sizes", type=_sizes, default=list(DEFAULT_SIZES), metavar="N,N,...",
        help="corpus sizes (default 1000,10000,100000; 10k and 1e4 work too)",
    )  # fmt: skip
    bench.add_argument(
        "--backend", choices=["onnx", "onnx-fp32", "torch"], default="onnx-fp32",
        help="embedding backend for paperchat and the baseline (default onnx-fp32, as for "
        "paperchat itself; torch if the ONNX encoder is unavailable)",
    )  # fmt: skip
    bench.add_argument(
        "--out",
        metavar="DIR",
        help="where bench.json, performance.md and performance.png go (default: a timestamped "
        "folder under DATA_DIR/bench)",
    )
    bench.add_argument(
        "--docs", default="", metavar="DIR",
        help="also write bench-report.md and the chart performance.png into DIR (off by "
        "default; `make bench-docs` uses docs/, whose hand-written performance.md shows the "
        "chart)",
    )  # fmt: skip
    bench.add_argument(
        "--workdir", metavar="DIR",
        help="where corpora and indexes are built (default: a temporary folder, deleted after)",
    )  # fmt: skip
    bench.add_argument(
        "--reuse-above", type=int_in(0), default=DEFAULT_REUSE_ABOVE, metavar="N",
        help=f"reuse sentence embeddings for sizes above N (default {DEFAULT_REUSE_ABOVE})",
    )  # fmt: skip
    bench.add_argument(
        "--reference-papers", type=int_in(0), default=DEFAULT_REFERENCE_PAPERS, metavar="N",
        help="papers for the torch fp32 reference rate (default 1000; 0 skips it)",
    )  # fmt: skip
    bench.add_argument("--no-baseline", action="store_true", help="skip the LangChain baseline")
    bench.add_argument(
        "--json", action="store_true",
        help="print the results as JSON instead of the short table (bench.json has them too)",
    )  # fmt: skip
    bench.add_argument(
        "--rounds", type=int_in(1), default=3, help="timed passes over the dev questions"
    )
    bench.set_defaults(func=func)


def bench_out_dir(out: str | None, settings: Settings) -> Path:
    """--out, else a timestamped folder under the data directory (never the working tree)."""
    if out:
        return Path(out)
    return settings.data_dir / "bench" / time.strftime("%Y%m%d-%H%M%S")


def run_bench_command(args: argparse.Namespace, settings: Settings) -> int:
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="paperchat-bench-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["paperchat", *sys.argv[1:]]) if sys.argv[1:] else "paperchat bench"
    out = bench_out_dir(args.out, settings)

    def write(result: dict[str, Any]) -> None:
        result["command"] = command
        write_bench_reports(result, out, Path(args.docs) if args.docs else None)

    try:
        result = run_bench(
            args.sizes, args.backend, workdir, reuse_above=args.reuse_above,
            reference_papers=args.reference_papers, baseline=not args.no_baseline,
            rounds=args.rounds, on_row=write,
        )  # fmt: skip
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(summary_table(result))
    where = f"{out}/bench.json, performance.md, performance.png"
    print(f"\n{result['duration_s'] / 60:.1f} min. Reports: {where}")
    if args.docs:
        print(f"Also regenerated {args.docs}/bench-report.md and performance.png.")
    return 0


def register(sub: Any) -> None:
    """`paperchat bench`, for the "paperchat.commands" entry-point group."""
    from rag.cli import settings_from_args, storage_options

    def run(args: argparse.Namespace) -> int:
        return int(run_bench_command(args, settings_from_args(args)))

    add_bench_parser(sub, storage_options, run)


if __name__ == "__main__":  # a bench step's process (see evals.bench_phases)
    from evals.bench_workers import main

    sys.exit(main(sys.argv[1:]))
