"""Measure what paperchat adds to an LLM answer, against the loopback chat-completions server.

    .venv/bin/python scripts/llm_latency.py [--db DIR] [--runs N] [--timeout S]

Prints, over the development questions (follow-ups excluded: they add a rewrite call):
  - time to first streamed token, from Assistant.stream() to the first text piece, minus the
    server's own time to its first byte (about 0 here): retrieval + prompt building + client
    overhead. Target: p50 <= 50 ms.
  - a hung endpoint: time from the question to the extractive fallback. Target: <= timeout + 1 s.
  - an unreachable endpoint in auto mode: time to the extractive fallback.
Without --db, the bundled corpus is indexed into a temporary directory first (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import FakeOpenAI, Recorded, Reply, hang, text  # noqa: E402

from rag.pipeline import Assistant  # noqa: E402
from rag.settings import LLMSettings, Settings  # noqa: E402
from rag.types import Answer  # noqa: E402

SETS = [ROOT / "evals" / "sets", ROOT.parent / "shared" / "evals"]


def questions() -> list[str]:
    for folder in SETS:
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        found = [
            json.loads(line)
            for path in files
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        if found:
            seen: dict[str, None] = {}
            for q in found:
                if q.get("type") != "followup":
                    seen.setdefault(q["question"], None)
            return list(seen)
    return ["What NDCG scores did SeqDialN achieve on VisDial v1.0?"]


def cited_reply(request: Recorded) -> Reply:
    return text("The first source reports it [1]. The second adds detail [2].", chunk_chars=8)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def settings_for(db: Path, data: Path, base_url: str, timeout_s: float) -> Settings:
    llm = LLMSettings(model="test-model", api_key="sk-bench", base_url=base_url, timeout_s=timeout_s)
    return Settings(data_dir=data, db_dir=db, llm=llm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="an existing index (default: build one)")
    parser.add_argument("--runs", type=int, default=2, help="passes over the questions")
    parser.add_argument("--timeout", type=float, default=2.0, help="LLM timeout for the hang test")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="paperchat-llm-bench-"))
    db = args.db
    if db is None:
        db = scratch / "db"
        print("indexing the bundled corpus into", db, "...", file=sys.stderr)
        Assistant.create(Settings(data_dir=scratch, db_dir=db)).ingest(None)

    with FakeOpenAI(api_key="sk-bench", responder=cited_reply) as server:
        assistant = Assistant.open(settings_for(db, scratch, server.base_url, 30.0))
        embeddings = assistant.index.embeddings
        qs = questions()
        for q in qs[:3]:  # warm-up: model, client, connection pool
            assistant.ask(q, mode="llm")
        ttft, pre_request, retrieve_ms, prompt_ms, embed_ms, beyond = [], [], [], [], [], []
        for _ in range(args.runs):
            for q in qs:
                before = len(server.requests)
                start = time.perf_counter()
                first = None
                answer = None
                for event in assistant.stream(q, mode="llm"):
                    if isinstance(event, Answer):
                        answer = event
                    elif first is None:
                        first = time.perf_counter()
                assert answer is not None and first is not None
                if answer.abstained and len(server.requests) == before:
                    continue  # retrieval abstained: the model was not asked
                request = server.requests[before]
                server_wait = server.first_byte_at[before] - request.received_at
                ttft.append((first - start - server_wait) * 1000)
                pre_request.append((request.received_at - start) * 1000)
                retrieve_ms.append(answer.timings_ms.get("retrieve", 0.0))
                prompt_ms.append(answer.timings_ms.get("prompt", 0.0))
                embed_ms.append(answer.timings_ms.get("embed", 0.0))
                beyond.append(ttft[-1] - retrieve_ms[-1])

    print(f"questions answered by the LLM path: {len(ttft)} ({args.runs} passes)")
    print(
        f"time to first streamed token added by paperchat: p50 {statistics.median(ttft):.1f} ms, "
        f"p90 {percentile(ttft, 0.9):.1f} ms, max {max(ttft):.1f} ms (target p50 <= 50 ms)"
    )
    print(
        f"  of which before the request reaches the server: p50 "
        f"{statistics.median(pre_request):.1f} ms; retrieval p50 {statistics.median(retrieve_ms):.1f}"
        f" ms (query embedding p50 {statistics.median(embed_ms):.1f} ms); prompt building p50 "
        f"{statistics.median(prompt_ms):.2f} ms"
    )
    print(
        f"  LLM path beyond retrieval (prompt, extractive pre-check, client, first chunk, marker "
        f"check): p50 {statistics.median(beyond):.1f} ms, p90 {percentile(beyond, 0.9):.1f} ms"
    )

    with FakeOpenAI(api_key="sk-bench", default=hang()) as server:
        times = []
        for _ in range(3):
            hung = Assistant.open(
                settings_for(db, scratch, server.base_url, args.timeout), embeddings=embeddings
            )
            start = time.perf_counter()
            answer = hung.ask(qs[0], mode="llm")
            times.append(time.perf_counter() - start)
            assert answer.mode == "extractive", answer.note
        print(
            f"hung endpoint -> extractive fallback: {', '.join(f'{t:.2f}' for t in times)} s "
            f"(timeout {args.timeout:g} s; target <= {args.timeout + 1:g} s); note: {answer.note}"
        )
        start = time.perf_counter()
        again = hung.ask(qs[0], mode="llm")
        print(f"  next question on the same assistant: {time.perf_counter() - start:.3f} s")
        assert again.mode == "extractive"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Assistant.open(
        settings_for(db, scratch, f"http://127.0.0.1:{port}/v1", 30.0), embeddings=embeddings
    )
    start = time.perf_counter()
    answer = dead.ask(qs[0])
    print(
        f"unreachable endpoint, --mode auto -> extractive: {time.perf_counter() - start:.2f} s; "
        f"note: {answer.note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
