"""The phases of `paperchat bench`: for each corpus size, write the synthetic corpus, then run
and measure each step in its own process (paperchat's ingest, cold start and questions, then
the LangChain baseline's), plus the torch fp32 reference ingest; one result dict in the end.

Every step is `python -m evals.bench --worker SPEC` (evals.bench_workers) or a real
`paperchat ask`, measured by evals.measure, so peak RSS is that of one job and a cold start
really is cold.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from evals.bench_workers import KNOWN_FACT, KNOWN_QUESTION
from evals.measure import run_measured
from evals.synthetic import write_corpus

DEFAULT_SIZES = (1000, 10000, 100000)
# Above this size the run reuses sentence vectors (see ReuseEmbeddings) to stay short.
DEFAULT_REUSE_ABOVE = 20000
DEFAULT_REFERENCE_PAPERS = 1000


def available_backend(backend: str) -> str:
    """`backend`, or "torch" when the ONNX encoder is not installed in this checkout."""
    import importlib.util

    if backend.startswith("onnx") and importlib.util.find_spec("rag.onnx_encoder") is None:
        print("bench: rag.onnx_encoder is not available; measuring torch", file=sys.stderr)
        return "torch"
    return backend


def _env(backend: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERCHAT_")}
    env.update(
        PAPERCHAT_DATA_DIR=str(data_dir),
        PAPERCHAT_EMBEDDING_BACKEND=backend,
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        ANONYMIZED_TELEMETRY="False",
    )
    return env


@contextlib.contextmanager
def _phase(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for one bench step (log lines when stderr is not a terminal)."""
    from rag.progress import progress_bar

    if not sys.stderr.isatty():
        print(f"bench: {label}", file=sys.stderr, flush=True)
    update, close = progress_bar(f"bench: {label}", unit)
    try:
        yield update
    finally:
        close()


def _worker(
    kind: str, spec: dict[str, Any], env: dict[str, str], timeout_s: float, label: str
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "evals.bench", "--worker", json.dumps({"kind": kind, **spec})]
    unit = "paper" if kind.endswith("ingest") else "question" if kind.endswith("asks") else "step"
    with _phase(label, unit) as update:
        if unit == "step":
            update(0, 1)
        out, wall, rss = run_measured(cmd, env, timeout_s, update)
        if unit == "step":
            update(1, 1)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 2)
    result["peak_rss_mb"] = round(rss, 1)
    return result


def _disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def bench_size(
    n: int, backend: str, work: Path, *, reuse: bool, baseline: bool, rounds: int, timeout_s: float
) -> dict[str, Any]:
    """Every figure for one corpus size."""
    corpus = write_corpus(work / f"corpus-{n}.jsonl", n)
    data = work / f"data-{n}"
    env = _env(backend, data)
    spec: dict[str, Any] = {
        "backend": backend,
        "corpus": str(corpus),
        "data_dir": str(data),
        "reuse": reuse,
    }
    row: dict[str, Any] = {"papers": n, "embeddings_reused": reuse}
    ours: dict[str, Any] = {**spec, "db": str(work / f"db-{n}")}
    row["ingest"] = _worker("ingest", ours, env, timeout_s, f"{n:,} papers: paperchat ingest")
    row["disk_mb"] = _disk_mb(Path(ours["db"]))
    cold_cmd = [
        sys.executable, "-m", "rag.cli", "ask", KNOWN_QUESTION,
        "--db", ours["db"], "--mode", "extractive", "--json",
    ]  # fmt: skip
    with _phase(f"{n:,} papers: paperchat cold start", "step") as update:
        update(0, 1)
        out, wall, rss = run_measured(cold_cmd, env, timeout_s)
        update(1, 1)
    answered = json.loads(out)
    row["cold_start"] = {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss, 1),
        "known_answer_ok": bool(answered["citations"]) and KNOWN_FACT in answered["answer"],
    }
    row["asks"] = _worker(
        "asks", {**ours, "rounds": rounds}, env, timeout_s, f"{n:,} papers: paperchat asks"
    )
    if baseline:
        base = {**spec, "db": str(work / f"baseline-{n}")}
        label = f"{n:,} papers: LangChain baseline"
        row["baseline"] = {
            "ingest": _worker("baseline_ingest", base, env, timeout_s, f"{label} ingest")
        }
        row["baseline"]["disk_mb"] = _disk_mb(Path(base["db"]))
        cold = _worker("baseline_cold", base, env, timeout_s, f"{label} cold start")
        row["baseline"]["cold_start"] = {
            "wall_s": cold["wall_s"],
            "peak_rss_mb": cold["peak_rss_mb"],
        }
        row["baseline"]["asks"] = _worker(
            "baseline_asks", {**base, "rounds": rounds}, env, timeout_s, f"{label} asks"
        )
    return row


def reference_rate(papers: int, work: Path, timeout_s: float) -> dict[str, Any]:
    """Torch fp32 ingest papers/s on the first `papers` papers: the speed-up's denominator."""
    corpus = write_corpus(work / f"reference-{papers}.jsonl", papers)
    data = work / "data-reference"
    spec = {
        "backend": "torch", "corpus": str(corpus), "data_dir": str(data),
        "db": str(work / "db-reference"), "reuse": False,
    }  # fmt: skip
    label = f"{papers:,} papers: torch fp32 reference ingest"
    return _worker("ingest", spec, _env("torch", data), timeout_s, label)


def run_bench(
    sizes: Sequence[int],
    backend: str,
    work: Path,
    *,
    reuse_above: int = DEFAULT_REUSE_ABOVE,
    reference_papers: int = DEFAULT_REFERENCE_PAPERS,
    baseline: bool = True,
    rounds: int = 3,
    timeout_s: float = 4 * 3600,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    started = time.time()
    backend = available_backend(backend)
    result: dict[str, Any] = {
        "backend": backend,
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "sizes": [],
    }
    if reference_papers:
        result["reference"] = reference_rate(reference_papers, work, timeout_s)
    for n in sizes:
        row = bench_size(
            n, backend, work, reuse=n > reuse_above, baseline=baseline, rounds=rounds,
            timeout_s=timeout_s,
        )  # fmt: skip
        result["sizes"].append(row)
        result["duration_s"] = round(time.time() - started, 1)
        if on_row:
            on_row(result)  # a long run leaves usable results behind even if stopped later
    return result
