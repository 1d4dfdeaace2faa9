"""What `paperchat bench` writes: the markdown report with its checks against the targets, the
chart, the short terminal table, and the files (bench.json, performance.md, performance.png,
and bench-report.md for --docs), each replaced whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_markdown(result: dict[str, Any], command: str, chart: str | None) -> str:
    rows = result["sizes"]
    ref = result.get("reference")
    lines = [
        "# Performance",
        "",
        f"Measured by `{command}` on {result['cpus']} CPUs, {result['started']} "
        f"({result['duration_s'] / 60:.0f} min). Embedding backend: `{result['backend']}`.",
        "",
        "| papers | system | ingest papers/s | chunks | index on disk (MB) | cold start (s) "
        "| ask p50 (ms) | ask p95 (ms) | peak RSS ingest / serve (MB) | known answer |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        reuse = " ¹" if row["embeddings_reused"] else ""
        ing, asks, cold = row["ingest"], row["asks"], row["cold_start"]
        lines.append(
            f"| {row['papers']:,} | paperchat{reuse} | {_fmt(ing['papers_per_s'])} "
            f"| {_fmt(ing['chunks'])} | {_fmt(row['disk_mb'])} | {_fmt(cold['wall_s'], 2)} "
            f"| {_fmt(asks['ask']['p50_ms'])} | {_fmt(asks['ask']['p95_ms'])} "
            f"| {_fmt(ing['peak_rss_mb'], 0)} / {_fmt(asks['peak_rss_mb'], 0)} "
            f"| {_fmt(asks['known_answer_ok'] and cold['known_answer_ok'])} |"
        )
        base = row.get("baseline")
        if base:
            lines.append(
                f"| {row['papers']:,} | LangChain + Chroma{reuse} "
                f"| {_fmt(base['ingest']['papers_per_s'])} | {_fmt(base['ingest']['chunks'])} "
                f"| {_fmt(base['disk_mb'])} | {_fmt(base['cold_start']['wall_s'], 2)} "
                f"| {_fmt(base['asks']['ask']['p50_ms'])} | {_fmt(base['asks']['ask']['p95_ms'])} "
                f"| {_fmt(base['ingest']['peak_rss_mb'], 0)} / "
                f"{_fmt(base['asks']['peak_rss_mb'], 0)} | {_fmt(base['asks']['known_answer_ok'])} |"
            )
    lines.append("")
    if any(r["embeddings_reused"] for r in rows):
        lines += [
            "¹ Embeddings reused: every sentence and title of the synthetic corpus comes from the "
            "bundled papers, so those ~1,700 texts are embedded once and a chunk's vector is the "
            "normalised mean of its sentences' vectors (queries are embedded for real). Ingest "
            "papers/s at this size therefore measures everything but the model: chunking, Chroma "
            "writes, BM25. Index size, memory and latency are those of a real index of this size.",
            "",
        ]
    lines += ["## Against the targets", ""]
    lines += _targets(result)
    if chart:
        lines += ["", f"![ingest rate, ask latency and memory by corpus size]({chart})", ""]
    lines += [
        "## What is measured",
        "",
        "- **Corpus**: the bundled papers verbatim, then synthetic papers: a bundled abstract "
        "with each sentence swapped, with probability 1/2, for a sentence of another paper, "
        "under the bundled title plus `(variant i)`. Deterministic (fixed seed).",
        "- **Ingest papers/s**: `Assistant.ingest` on a fresh index in its own process, papers "
        "divided by wall time of the call (chunking, embedding, Chroma upserts, BM25 build); "
        "model loading excluded. The torch fp32 reference runs on the first "
        f"{_fmt(ref['papers'] if ref else None)} papers in the same run.",
        "- **Cold start**: wall time of a fresh `paperchat ask QUESTION --json` process "
        "(interpreter start, imports, model, Chroma, BM25 load, one answer); page cache warm.",
        "- **Ask latency**: `Assistant.ask(..., mode='extractive')` (retrieval + extractive "
        "answer) over the 30 dev questions, after one warm-up pass, several rounds; the "
        "baseline's is `Chroma.similarity_search(question, k=5)` from `langchain_chroma` over "
        "1,000-character `RecursiveCharacterTextSplitter` chunks embedded with the same model.",
        "- **Peak RSS**: of the ingest process with its embedding workers (their summed RSS, sampled every 0.2 s, or the process's own `ru_maxrss` if larger), and of the process answering questions.",
        "",
    ]
    return "\n".join(lines)


def _targets(result: dict[str, Any]) -> list[str]:
    rows = {r["papers"]: r for r in result["sizes"]}
    out: list[str] = []
    ref = result.get("reference")
    ten = rows.get(10000)
    if ref and ten and ref.get("papers_per_s") and ten["ingest"]["papers_per_s"]:
        ratio = ten["ingest"]["papers_per_s"] / ref["papers_per_s"]
        out.append(
            f"- Ingest at 10k: {ten['ingest']['papers_per_s']:.1f} papers/s vs torch fp32 "
            f"{ref['papers_per_s']:.1f} → **{ratio:.2f}×** (target ≥ 2.5×)."
        )
    big = rows[max(rows)] if rows else None
    if big:
        asks = big["asks"]["ask"]
        out.append(
            f"- At {big['papers']:,} papers: ask p50 {asks['p50_ms']:.1f} ms (≤ 50), p95 "
            f"{asks['p95_ms']:.1f} ms (≤ 150); cold start {big['cold_start']['wall_s']:.1f} s "
            f"(≤ 10); peak RSS {max(big['ingest']['peak_rss_mb'], big['asks']['peak_rss_mb']):,.0f}"
            " MB (≤ 3,072)."
        )
    small = rows[min(rows)] if rows else None
    if big and small and big is not small:
        ratio = big["asks"]["ask"]["p50_ms"] / small["asks"]["ask"]["p50_ms"]
        out.append(
            f"- Ask p50 at {big['papers']:,} / at {small['papers']:,}: **{ratio:.2f}×** (≤ 2×)."
        )
    if big and big["papers"] < 100000:
        out.append("- 100k was not part of this run; see the command line above.")
    return out or ["- Not enough sizes in this run to compare."]


def write_chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sizes"]
    sizes = [r["papers"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    series: list[tuple[Any, str, Callable[[dict[str, Any]], float], Callable[[dict[str, Any]], float]]] = [
        (axes[0], "ingest papers/s", lambda r: r["ingest"]["papers_per_s"] or 0,
         lambda r: r["baseline"]["ingest"]["papers_per_s"]),
        (axes[1], "ask latency p50 / p95 (ms)", lambda r: r["asks"]["ask"]["p50_ms"],
         lambda r: r["baseline"]["asks"]["ask"]["p50_ms"]),
        (axes[2], "peak RSS serving (MB)", lambda r: r["asks"]["peak_rss_mb"],
         lambda r: r["baseline"]["asks"]["peak_rss_mb"]),
    ]  # fmt: skip
    for ax, title, ours, theirs in series:
        ax.plot(sizes, [ours(r) for r in rows], "o-", label="paperchat")
        based = [r for r in rows if "baseline" in r]
        if based:
            ax.plot(
                [r["papers"] for r in based], [theirs(r) for r in based], "s--",
                label="LangChain + Chroma",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("papers")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].plot(sizes, [r["asks"]["ask"]["p95_ms"] for r in rows], "o:", label="paperchat p95")
    if result.get("reference", {}).get("papers_per_s"):
        axes[0].axhline(
            result["reference"]["papers_per_s"], color="grey", ls=":", label="torch fp32"
        )
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bench_reports(result: dict[str, Any], out: Path, docs: Path | None) -> list[Path]:
    """bench.json, performance.md and performance.png into `out`; bench-report.md and
    performance.png into `docs` when asked (docs/performance.md is written by hand).

    Each file is written to a temporary name and renamed, so a run stopped mid-write leaves
    the previous report whole.
    """
    written: list[Path] = []
    for folder in [out] if docs is None else [out, docs]:
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "bench.json": json.dumps(result, indent=2),
            "performance.md": render_markdown(result, result["command"], "performance.png"),
        }
        if folder == docs:
            files = {"bench-report.md": files["performance.md"]}
        for name, text in files.items():
            tmp = _temporary_name(folder / name)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / name)
            written.append(folder / name)
        tmp = _temporary_name(folder / "performance.png")
        write_chart(result, tmp)
        os.replace(tmp, folder / "performance.png")
        written.append(folder / "performance.png")
    return written


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def summary_table(result: dict[str, Any]) -> str:
    """A few columns per size and system, for an 80-column terminal."""
    head = ("papers", "system", "ingest/s", "cold s", "p50 ms", "p95 ms", "RSS MB", "known")
    rows: list[tuple[str, ...]] = []
    ref = result.get("reference")
    if ref:
        rows.append(
            (f"{ref['papers']:,}", "torch fp32 ref.", _fmt(ref["papers_per_s"]), "–", "–", "–",
             _fmt(ref["peak_rss_mb"], 0), "–")
        )  # fmt: skip
    for row in result["sizes"]:
        systems = [("paperchat", row)]
        if row.get("baseline"):
            systems.append(("LangChain", row["baseline"]))
        for name, part in systems:
            ingest, asks = part["ingest"], part["asks"]
            speed = _fmt(ingest["papers_per_s"])
            if name == "paperchat" and ref and ref.get("papers_per_s") and ingest["papers_per_s"]:
                speed += f" ({ingest['papers_per_s'] / ref['papers_per_s']:.2f}x)"
            known = asks["known_answer_ok"] and part["cold_start"].get("known_answer_ok", True)
            rows.append(
                (f"{row['papers']:,}", name, speed, _fmt(part["cold_start"]["wall_s"], 2),
                 _fmt(asks["ask"]["p50_ms"]), _fmt(asks["ask"]["p95_ms"]),
                 _fmt(max(ingest["peak_rss_mb"], asks["peak_rss_mb"]), 0), _fmt(known))
            )  # fmt: skip
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = []
    for cells in (head, *rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        )
    return "\n".join(lines)
