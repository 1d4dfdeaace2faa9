"""Report writers: report.json (machine-readable), report.md (one table), report.png (chart)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.metrics import LOWER_IS_BETTER, METRIC_KEYS
from rag.papers import normalize_title

CHART_METRICS = (
    "recall@5",
    "mrr",
    "citation_precision",
    "citation_recall",
    "key_point_coverage",
    "abstention_accuracy",
)
_MISSING = "—"


def _fmt(value: float | int | None, key: str) -> str:
    if value is None:
        return _MISSING
    if key == "n" or isinstance(value, int):
        return str(value)
    if key.startswith("latency"):
        return f"{value:.1f}"
    return f"{value:.3f}"


def _best(values: Sequence[float | int | None], lower_is_better: bool) -> set[int]:
    """Positions holding the best value (all of them on a tie); none when fewer than 2 known."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(values) < 2 or not known:
        return set()
    target = min(v for _, v in known) if lower_is_better else max(v for _, v in known)
    return {i for i, v in known if abs(v - target) < 1e-9}


def _row(scope: str, label: str, values: Sequence[float | int | None], key: str) -> str:
    best = set() if key == "n" else _best(values, key in LOWER_IS_BETTER or key.startswith("lat"))
    cells = [f"**{_fmt(v, key)}**" if i in best else _fmt(v, key) for i, v in enumerate(values)]
    return f"| {scope} | {label} | " + " | ".join(cells) + " |"


def _rank(question: dict[str, Any]) -> str:
    """Where the first gold paper ranked: tells a retrieval miss from an answer miss."""
    gold = {normalize_title(t) for t in question.get("gold_titles", [])}
    if not gold:
        return ""
    for rank, title in enumerate(question["retrieved_titles"], start=1):
        if normalize_title(title) in gold:
            return f" (first gold paper ranked {rank})"
    return f" (no gold paper in the top {len(question['retrieved_titles'])})"


def markdown(report: dict[str, Any]) -> str:
    """The readable summary: one side-by-side table, then each config's wrong questions."""
    names = list(report["configs"])
    configs = [report["configs"][n] for n in names]
    types = list(configs[0]["by_type"]) if configs else []
    lines = [
        f"# Evaluation: {report['set']}",
        "",
        f"{report['n']} questions · mode `{report['mode']}` · k={report['k']} · index "
        f"`{report['index']}` · {report['created']} · {report['runtime_s']:.1f} s",
        "",
        "| scope | metric | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for scope in ("overall", *types):
        groups = [c["overall"] if scope == "overall" else c["by_type"][scope] for c in configs]
        for key in ("n", *METRIC_KEYS):
            values = [g.get(key) for g in groups]
            if key != "n" and all(v is None for v in values):
                continue  # e.g. abstention accuracy on a type with no unanswerable questions
            lines.append(_row(scope, key, values, key))
    for pct in ("p50", "p95"):
        key = f"latency_{pct}"
        values = [c["latency_ms"][pct] for c in configs]
        lines.append(_row("overall", f"latency {pct} (ms)", values, key))
    lines += [
        "",
        "Best value per row in **bold** (lowest for false_abstention_rate and latency); "
        f"{_MISSING} = the metric applies to no question of that scope.",
        "",
        "## Configs",
        "",
    ]
    for name, config in zip(names, configs, strict=True):
        setup = config.get("setup_ms", 0.0)
        extra = f" (setup {setup / 1000:.1f} s)" if setup >= 100 else ""
        lines.append(f"- `{name}`: {config.get('description', '')}{extra}")
    lines += ["", "## Questions each config got wrong", ""]
    for name in names:
        wrong = [q for q in report["questions"] if q["config"] == name and q["wrong"]]
        lines.append(f"### {name}: {len(wrong)} of {report['n']}")
        lines.append("")
        for q in wrong:
            lines.append(f"- `{q['id']}` ({q['type']}): " + "; ".join(q["wrong"]) + _rank(q))
        if not wrong:
            lines.append("None.")
        lines.append("")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: one panel per main metric, question types on x, one bar per config."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display: works on servers and in CI
    import matplotlib.pyplot as plt

    names = list(report["configs"])
    configs = [report["configs"][n] for n in names]
    scopes = ["overall", *(configs[0]["by_type"] if configs else [])]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharey=True)
    width = 0.8 / max(1, len(names))

    def group(config: dict[str, Any], scope: str) -> dict[str, Any]:
        return config["overall"] if scope == "overall" else config["by_type"][scope]

    for ax, key in zip(axes.flat, CHART_METRICS, strict=True):
        # Only the scopes the metric applies to (abstention has no paraphrase bar, say).
        shown = [s for s in scopes if any(group(c, s).get(key) is not None for c in configs)]
        for i, (name, config) in enumerate(zip(names, configs, strict=True)):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(shown))]
            ys = [group(config, s).get(key) or 0.0 for s in shown]
            ax.bar(xs, ys, width, label=name, color=f"C{i}")
        ax.set_title(key)
        ax.set_xticks(range(len(shown)), shown, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncols=len(names), fontsize="small")
    fig.suptitle(f"{report['set']} · {report['n']} questions · mode {report['mode']}")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.png into out_dir (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"report.{ext}" for ext in ("json", "md", "png")}
    paths["json"].write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    paths["md"].write_text(markdown(report) + "\n", encoding="utf-8")
    chart(report, paths["png"])
    return paths
