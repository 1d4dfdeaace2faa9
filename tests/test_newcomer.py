"""A newcomer's first run (issue 15): reports land outside the repository, long commands show
progress and end with a short table, the eval table fits a terminal, --stream streams."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evals import bench, bench_report, measure
from evals.cli import summary_table
from evals.metrics import METRIC_KEYS
from rag import cli
from rag.cli import build_parser
from rag.settings import Settings
from rag.types import Answer

ROOT = Path(__file__).resolve().parents[1]


def _eval_report(configs: list[str]) -> dict[str, Any]:
    overall = dict.fromkeys(METRIC_KEYS, 0.123456)
    return {
        "configs": {
            name: {"overall": overall, "latency_ms": {"p50": 12.34}} for name in configs
        }
    }


def test_eval_table_fits_100_columns_and_wide_shows_every_metric() -> None:
    report = _eval_report(["default", "bm25", "dense", "langchain_basic"])
    narrow = summary_table(report)
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert "recall@1" not in narrow.splitlines()[0] and "R@5" in narrow.splitlines()[0]
    assert "--wide" in narrow  # the legend says how to see the rest
    wide = summary_table(report, wide=True)
    head = wide.splitlines()[0]
    assert all(key in head for key in METRIC_KEYS)
    assert len(wide.splitlines()) == 5  # header + one row per config, no legend


def test_eval_parser_has_wide_and_json() -> None:
    args = build_parser().parse_args(["eval", "set.jsonl", "--wide", "--json"])
    assert args.wide and args.json
    args = build_parser().parse_args(["eval", "set.jsonl"])
    assert not args.wide and not args.json


# ---- bench: never the repository's docs -------------------------------------------------


def test_bench_defaults_write_nothing_into_the_repository(clean_env: Path) -> None:
    args = build_parser().parse_args(["bench"])
    assert args.docs == "" and args.out is None and not args.json
    out = bench.bench_out_dir(args.out, Settings())
    assert out.parent == clean_env / "bench"  # the data directory, not the working tree
    assert bench.bench_out_dir("elsewhere", Settings()) == Path("elsewhere")


def _bench_result() -> dict[str, Any]:
    def part(rate: float, p50: float) -> dict[str, Any]:
        return {
            "ingest": {"papers_per_s": rate, "chunks": 4346, "peak_rss_mb": 366.0},
            "cold_start": {"wall_s": 1.29, "peak_rss_mb": 200.0, "known_answer_ok": True},
            "asks": {
                "ask": {"p50_ms": p50, "p95_ms": p50 * 1.3},
                "peak_rss_mb": 268.0,
                "known_answer_ok": True,
            },
            "disk_mb": 29.6,
        }

    ours = part(44.2, 11.4)
    row = {"papers": 1000, "embeddings_reused": False, **ours, "baseline": part(59.9, 3.5)}
    return {
        "backend": "onnx-fp32",
        "cpus": 2,
        "started": "2026-12-06 10:00:00",
        "duration_s": 61.0,
        "command": "paperchat bench --sizes 1000",
        "reference": {"papers": 500, "papers_per_s": 10.5, "peak_rss_mb": 1164.0},
        "sizes": [row],
    }


def test_bench_reports_go_to_out_and_docs_only_when_asked(tmp_path: Path) -> None:
    out, docs = tmp_path / "out", tmp_path / "docs"
    written = bench_report.write_bench_reports(_bench_result(), out, None)
    assert sorted(p.name for p in out.iterdir()) == [
        "bench.json", "performance.md", "performance.png",
    ]  # fmt: skip
    assert set(written) == set(out.iterdir()) and not docs.exists()
    assert json.loads((out / "bench.json").read_text())["reference"]["papers"] == 500
    assert "paperchat bench --sizes 1000" in (out / "performance.md").read_text()

    bench_report.write_bench_reports(_bench_result(), out, docs)
    # The hand-written docs/performance.md is never overwritten: the tables go beside it.
    assert sorted(p.name for p in docs.iterdir()) == ["bench-report.md", "performance.png"]


def test_bench_ends_with_a_short_table() -> None:
    table = bench_report.summary_table(_bench_result())
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert len(lines) == 4  # header, torch reference, paperchat, baseline
    assert "44.2 (4.21x)" in lines[2] and "LangChain" in lines[3]


def test_bench_progress_lines_of_a_worker_drive_the_bar(tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    seen: list[tuple[int, int]] = []
    reader = measure._ProgressReader(log, lambda done, total: seen.append((done, total)))
    log.write_text(f"loading\n{measure.PROGRESS_PREFIX} 10 100\n{measure.PROGRESS_PREFIX} 20 1")
    reader()  # the second line is still being written: only the first counts
    log.write_text(log.read_text() + f"00\n{measure.PROGRESS_PREFIX} 30 100\nwarning: x\n")
    reader()
    reader()  # nothing new
    assert seen == [(10, 100), (30, 100)]


# ---- ask --stream -------------------------------------------------------------------------


class _ScriptedAssistant:
    """Yields sentence pieces and records what stdout held when each piece was asked for."""

    def __init__(self, stdout: io.StringIO) -> None:
        self.stdout = stdout
        self.seen_before_piece: list[str] = []

    def stream(self, *args: Any) -> Iterator[Any]:
        for piece in ("First sentence [1].", " Second sentence [2].", " Third [1]."):
            self.seen_before_piece.append(self.stdout.getvalue())
            yield piece
        text = "First sentence [1]. Second sentence [2]. Third [1]."
        yield Answer(text=text, citations=[], retrieved=[], abstained=False, mode="extractive")


def test_ask_stream_prints_each_sentence_before_the_next_is_produced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout = io.StringIO()
    scripted = _ScriptedAssistant(stdout)
    monkeypatch.setattr(cli, "_open_assistant", lambda args: scripted)
    monkeypatch.setattr("sys.stdout", stdout)
    args = build_parser().parse_args(["ask", "q?", "--stream"])
    assert isinstance(args, argparse.Namespace)
    assert cli.cmd_ask(args) == 0
    assert scripted.seen_before_piece == [
        "", "First sentence [1].", "First sentence [1]. Second sentence [2].",
    ]  # fmt: skip
    assert stdout.getvalue().startswith("First sentence [1]. Second sentence [2]. Third [1].")


# ---- cold paths ---------------------------------------------------------------------------


class _FromAnotherVersion:
    """Stands for a class a newer paperchat pickled into its BM25 file."""


def test_bm25_file_of_another_version_is_rebuilt_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle
    import sys

    from rag.lexical import FORMAT_VERSION, LexicalIndex

    path = tmp_path / "lexical.pkl"
    path.write_bytes(pickle.dumps((FORMAT_VERSION, _FromAnotherVersion())))
    monkeypatch.delattr(sys.modules[__name__], "_FromAnotherVersion")
    assert LexicalIndex.load(path) is None  # the caller rebuilds it from Chroma


def _run_python(code: str) -> str:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.integration
def test_onnx_copy_is_built_without_torch(tmp_path: Path) -> None:
    out = _run_python(
        "import sys; sys.modules['torch'] = None; sys.modules['sentence_transformers'] = None\n"
        "from pathlib import Path\n"
        "from rag.onnx_encoder import OnnxEncoder\n"
        f"encoder = OnnxEncoder(cache_dir=Path({str(tmp_path)!r}), quantize=False)\n"
        "print(encoder.encode(['graph neural networks'], 8).shape)\n"
    )
    assert out.strip() == "(1, 384)"


@pytest.mark.integration
def test_cold_ask_imports_no_ui_llm_plotting_or_torch_libraries(bundled_db: Path) -> None:
    out = _run_python(
        "import io, sys, contextlib\n"
        "from rag.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    status = main(['ask', 'What NDCG scores did SeqDialN achieve?', '--json', "
        f"'--db', {str(bundled_db)!r}])\n"
        "heavy = ['gradio', 'torch', 'matplotlib', 'langchain_openai', 'openai', 'bm25s', "
        "'scipy', 'evals']\n"
        "print(status, [m for m in heavy if m in sys.modules])\n"
    )
    assert out.strip() == "0 []"
