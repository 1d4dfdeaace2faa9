"""`paperchat bench`: ingest speed, index size, cold start, ask latency and memory at scale.

For each size N it builds a deterministic synthetic corpus (the bundled papers verbatim,
then recombined abstracts under unique titles), and measures paperchat and the plain
LangChain + Chroma `similarity_search` baseline side by side. Every measurement runs in
its own subprocess (`python -m evals.bench --worker SPEC`), so peak RSS is that of one
job and a cold start really is cold. Data goes under --workdir (default: a temporary
folder); bench.json, performance.md and performance.png go to --out (default: a timestamped
folder under the data directory). A user's run never rewrites the repository's documentation:
with an explicit --docs DIR (`make bench-docs`) it also writes DIR/bench-report.md and the
chart DIR/performance.png, which the hand-written docs/performance.md shows; that page itself
is never overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.synthetic import synthetic_papers
from rag.corpus import load_corpus
from rag.settings import Settings
from rag.text import split_sentences

DEFAULT_SIZES = (1000, 10000, 100000)
# Above this size the run reuses sentence vectors (see ReuseEmbeddings) to stay short.
DEFAULT_REUSE_ABOVE = 20000
DEFAULT_REFERENCE_PAPERS = 1000
KNOWN_QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"
# The answer must state this result. Not checked by title: synthetic papers recombine
# sentences, so a "variant" of another paper may carry this very sentence and rank first.
KNOWN_FACT = "62.54% NDCG"
_VARIANT = re.compile(r" \(variant \d+\)\.?$")


# ---- synthetic corpus ------------------------------------------------------------------


def write_corpus(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in synthetic_papers(n):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# ---- embeddings ------------------------------------------------------------------------


def available_backend(backend: str) -> str:
    """`backend`, or "torch" when the ONNX encoder is not installed in this checkout."""
    import importlib.util

    if backend.startswith("onnx") and importlib.util.find_spec("rag.onnx_encoder") is None:
        print("bench: rag.onnx_encoder is not available; measuring torch", file=sys.stderr)
        return "torch"
    return backend


def make_encoder(backend: str, threads: int = 0) -> Any:
    from rag.embeddings import LocalEmbeddings

    return LocalEmbeddings(backend=backend, threads=threads)


class ReuseEmbeddings:
    """Documents as the normalised mean of cached sentence vectors; queries embedded for real.

    Every sentence of the synthetic corpus comes from the bundled abstracts and every title
    from a bundled title, so embedding those ~1,700 texts once gives a vector to every chunk
    of any N. Vectors are not the model's own for the chunk, but they lie in the same space
    with the same neighbourhood structure -- what index size, memory and latency depend on.
    Text pieces not in the cache (fragments cut by a character splitter) are skipped.
    """

    def __init__(self, encoder: Any, texts: Sequence[str]) -> None:
        self.encoder = encoder
        self.backend = f"{encoder.backend}+reuse"
        keys = sorted({self._key(t) for t in texts})
        vectors = encoder.embed_array(keys)
        self._cache = dict(zip(keys, vectors, strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return _VARIANT.sub("", text.strip()).rstrip(".")

    def embed_array(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        missing: list[int] = []
        for row, text in enumerate(texts):
            found = [self._cache[k] for k in map(self._key, _pieces(text)) if k in self._cache]
            if found:
                mean = np.mean(found, axis=0)
                out[row] = mean / (np.linalg.norm(mean) or 1.0)
            else:
                missing.append(row)
        if missing:
            out[missing] = self.encoder.embed_array([texts[i] for i in missing])
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.embed_query(text)  # type: ignore[no-any-return]


def _pieces(text: str) -> list[str]:
    head, sep, rest = text.partition("\n")
    parts = [head, *split_sentences(rest)] if sep else []
    return parts or split_sentences(text)


def _reuse_texts() -> list[str]:
    base, _ = load_corpus(None, Settings.model_construct().corpus.search_url_template)
    return [p.title for p in base] + [s for p in base for s in split_sentences(p.abstract)]


def _embeddings(spec: dict[str, Any]) -> Any:
    encoder = make_encoder(spec["backend"])
    return ReuseEmbeddings(encoder, _reuse_texts()) if spec.get("reuse") else encoder


# ---- workers (each runs in its own process) -------------------------------------------

PROGRESS_PREFIX = "paperchat-bench-progress"


def report_progress(done: int, total: int) -> None:
    """One line on stderr that the driver turns into its progress bar (see _ProgressReader)."""
    print(f"{PROGRESS_PREFIX} {done} {total}", file=sys.stderr, flush=True)


def _settings_for(spec: dict[str, Any]) -> Settings:
    settings = Settings(data_dir=Path(spec["data_dir"]), db_dir=Path(spec["db"]))
    settings.embedding.backend = spec["backend"]
    return settings


def _questions() -> list[tuple[str, list[Any]]]:
    from rag.inputs import parse_history

    path = Path(__file__).parent / "sets" / "dev.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(r["question"], parse_history(r.get("history") or [])) for r in rows]


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "n": len(samples),
    }


def worker_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from rag.pipeline import Assistant

    t0 = time.perf_counter()
    embeddings = _embeddings(spec)
    assistant = Assistant.create(_settings_for(spec), embeddings)
    ready = time.perf_counter()
    report = assistant.ingest([Path(spec["corpus"])], on_progress=report_progress)
    done = time.perf_counter()
    return {
        "backend": embeddings.backend,
        "setup_s": round(ready - t0, 2),
        "ingest_s": round(done - ready, 2),
        "papers": report.papers,
        "chunks": report.chunks,
        "papers_per_s": round(report.new / (done - ready), 2) if report.new else None,
    }


def worker_asks(spec: dict[str, Any]) -> dict[str, Any]:
    from rag.pipeline import Assistant

    # One thread for query embedding: a single short text gains nothing from two, and on a
    # busy machine torch's thread spinning made it 10x slower (measured: 12 ms vs 120+ ms).
    encoder = make_encoder(spec["backend"], threads=1)
    assistant = Assistant.open(_settings_for(spec), embeddings=encoder)
    questions = _questions()
    rounds = spec.get("rounds", 3)
    planned, asked = len(questions) * (rounds + 1), 0
    for question, history in questions:  # warm-up: model, HNSW pages, caches
        assistant.ask(question, history, mode="extractive")
        asked += 1
        report_progress(asked, planned)
    total: list[float] = []
    retrieval: list[float] = []
    for _ in range(rounds):
        for question, history in questions:
            t = time.perf_counter()
            answer = assistant.ask(question, history, mode="extractive")
            total.append((time.perf_counter() - t) * 1000)
            retrieval.append(answer.timings_ms.get("retrieve", 0.0))
            asked += 1
            report_progress(asked, planned)
    known = assistant.ask(KNOWN_QUESTION, mode="extractive")
    return {
        "ask": _percentiles(total),
        "retrieve": _percentiles(retrieval),
        "known_answer_ok": bool(known.citations) and KNOWN_FACT in known.text,
    }


def _baseline_store(spec: dict[str, Any], embeddings: Any) -> Any:
    from langchain_chroma import Chroma

    return Chroma(
        collection_name="baseline",
        embedding_function=embeddings,
        persist_directory=spec["db"],
        collection_metadata={"hnsw:space": "cosine"},
    )


def worker_baseline_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t0 = time.perf_counter()
    embeddings = _embeddings(spec)
    store = _baseline_store(spec, embeddings)
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
    records = [json.loads(line) for line in Path(spec["corpus"]).read_text().splitlines()]
    ready = time.perf_counter()
    texts: list[str] = []
    metas: list[dict[str, str]] = []
    papers_done: list[int] = []  # per chunk: papers complete once it is written
    for number, record in enumerate(records, start=1):
        for piece in splitter.split_text(f"{record['title']}\n{record['abstract']}"):
            texts.append(piece)
            metas.append({"title": record["title"]})
            papers_done.append(number - 1)
        if papers_done:
            papers_done[-1] = number
    for start in range(0, len(texts), 256):
        store.add_texts(texts[start : start + 256], metadatas=metas[start : start + 256])
        report_progress(papers_done[min(start + 256, len(texts)) - 1], len(records))
    done = time.perf_counter()
    return {
        "backend": embeddings.backend,
        "setup_s": round(ready - t0, 2),
        "ingest_s": round(done - ready, 2),
        "papers": len(records),
        "chunks": len(texts),
        "papers_per_s": round(len(records) / (done - ready), 2),
    }


def worker_baseline_asks(spec: dict[str, Any]) -> dict[str, Any]:
    store = _baseline_store(spec, make_encoder(spec["backend"], threads=1))
    questions = [q for q, _ in _questions()]
    rounds = spec.get("rounds", 3)
    planned, asked = len(questions) * (rounds + 1), 0
    for question in questions:
        store.similarity_search(question, k=5)
        asked += 1
        report_progress(asked, planned)
    samples: list[float] = []
    for _ in range(rounds):
        for question in questions:
            t = time.perf_counter()
            store.similarity_search(question, k=5)
            samples.append((time.perf_counter() - t) * 1000)
            asked += 1
            report_progress(asked, planned)
    docs = store.similarity_search(KNOWN_QUESTION, k=5)
    return {
        "ask": _percentiles(samples),
        "known_answer_ok": bool(docs) and KNOWN_FACT in docs[0].page_content,
    }


def worker_baseline_cold(spec: dict[str, Any]) -> dict[str, Any]:
    store = _baseline_store(spec, make_encoder(spec["backend"]))
    docs = store.similarity_search(KNOWN_QUESTION, k=5)
    return {"first_title": docs[0].metadata["title"] if docs else ""}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": worker_ingest,
    "asks": worker_asks,
    "baseline_ingest": worker_baseline_ingest,
    "baseline_asks": worker_baseline_asks,
    "baseline_cold": worker_baseline_cold,
}


# ---- the driver ------------------------------------------------------------------------


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


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (ingest's embedding workers)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:  # exited meanwhile
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total


def wait_with_peak_rss(
    proc: subprocess.Popen[Any],
    deadline: float = float("inf"),
    on_sample: Callable[[], None] | None = None,
) -> int:
    """Reap `proc` (setting its returncode); its peak RSS in KiB: the larger of its own peak
    (wait4) and the peak sum over it and its child processes, sampled every 0.2 s.

    Polls every 20 ms so wall times stay exact; past `deadline` (perf_counter) it kills the
    process and raises TimeoutError. `on_sample` runs at every RSS sample (progress).
    """
    tree_peak, sampled_at = 0, 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return max(usage.ru_maxrss, tree_peak)  # Linux reports KiB
        if time.perf_counter() - sampled_at > 0.2:
            tree_peak, sampled_at = max(tree_peak, tree_rss_kib(proc.pid)), time.perf_counter()
            if on_sample:
                on_sample()
        if time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise TimeoutError
        time.sleep(0.02)


class _ProgressReader:
    """Follows a worker's stderr file and passes its progress lines on to `update`."""

    def __init__(self, path: Path, update: Callable[[int, int], None]) -> None:
        self.path, self.update, self.offset = path, update, 0

    def __call__(self) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += complete
        last = None
        for line in data[:complete].decode("utf-8", "replace").splitlines():
            if line.startswith(PROGRESS_PREFIX):
                last = line
        if last:
            done, total = last.split()[1:3]
            self.update(int(done), int(total))


def _run_measured(
    cmd: list[str],
    env: dict[str, str],
    timeout_s: float,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, float, float]:
    """Run `cmd`; its stdout, wall time and peak RSS in MiB (see wait_with_peak_rss)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paperchat-bench-step-") as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
            reader = _ProgressReader(err_path, progress) if progress else None
            try:
                peak_kib = wait_with_peak_rss(proc, start + timeout_s, reader)
            except TimeoutError:
                raise RuntimeError(f"bench step timed out after {timeout_s:.0f}s: {cmd}") from None
            wall = time.perf_counter() - start
        if reader:
            reader()
        stdout = out_path.read_text(encoding="utf-8")
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"bench step failed ({proc.returncode}): {cmd}\n{stderr[-3000:]}")
    return stdout, wall, peak_kib / 1024


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
        out, wall, rss = _run_measured(cmd, env, timeout_s, update)
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
        out, wall, rss = _run_measured(cold_cmd, env, timeout_s)
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


# ---- report ----------------------------------------------------------------------------


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


# ---- command line ----------------------------------------------------------------------


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
        "--reuse-above", type=int, default=DEFAULT_REUSE_ABOVE, metavar="N",
        help=f"reuse sentence embeddings for sizes above N (default {DEFAULT_REUSE_ABOVE})",
    )  # fmt: skip
    bench.add_argument(
        "--reference-papers", type=int, default=DEFAULT_REFERENCE_PAPERS, metavar="N",
        help="papers for the torch fp32 reference rate (default 1000; 0 skips it)",
    )  # fmt: skip
    bench.add_argument("--no-baseline", action="store_true", help="skip the LangChain baseline")
    bench.add_argument(
        "--json", action="store_true",
        help="print the results as JSON instead of the short table (bench.json has them too)",
    )  # fmt: skip
    bench.add_argument("--rounds", type=int, default=3, help="timed passes over the dev questions")
    bench.set_defaults(func=func)


def bench_out_dir(out: str | None, settings: Settings) -> Path:
    """--out, else a timestamped folder under the data directory (never the working tree)."""
    if out:
        return Path(out)
    return settings.data_dir / "bench" / time.strftime("%Y%m%d-%H%M%S")


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


def register(sub: Any) -> None:
    """`paperchat bench`, for the "paperchat.commands" entry-point group."""
    from rag.cli import settings_from_args, storage_options

    def run(args: argparse.Namespace) -> int:
        return int(run_bench_command(args, settings_from_args(args)))

    add_bench_parser(sub, storage_options, run)


def _worker_main(argv: Sequence[str]) -> int:
    spec = json.loads(argv[1])
    result = WORKERS[spec["kind"]](spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        sys.exit(_worker_main(sys.argv[1:]))
    sys.exit("usage: paperchat bench ...  (this module runs bench workers)")
