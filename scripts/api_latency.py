"""What the OpenAI-compatible endpoint costs over a direct Assistant.ask, and whether it holds
up under concurrent clients (extractive mode, the dev questions).

1. Added latency: a chat server in this process over the same Assistant; for every dev
   question (and follow-up, with its history), a direct `assistant.ask` and a non-streamed
   `/v1/chat/completions` call with the real `openai` client, interleaved, ROUNDS times. The
   client runs in the same process (it shares the interpreter with the server), so the
   added latency measured is an upper bound.
2. Concurrency: a real `paperchat serve` process; CLIENTS threads, each its own `openai`
   client, each asks QUESTIONS questions (alternately streamed and not) at the same time.
   An error is any exception, a missing structured answer, or markers that do not match the
   source list.

Usage: PAPERCHAT_DB_DIR=DIR .venv/bin/python scripts/api_latency.py [--rounds 3] [--clients 20]
       [--questions 3]    (builds the index from the bundled corpus if DIR has none)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openai

from rag.citations import cited_claims
from rag.inputs import parse_history
from rag.pipeline import Assistant
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def load_questions() -> list[dict[str, Any]]:
    lines = (ROOT / "evals/sets/dev.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def messages_for(q: dict[str, Any]) -> list[dict[str, str]]:
    return [*q.get("history", []), {"role": "user", "content": q["question"]}]


def check(content: str, structured: dict[str, Any] | None) -> str | None:
    """What is wrong with one reply, or None."""
    if structured is None:
        return "no structured answer"
    answer, _, sources = content.partition("\n\nSources:\n")
    cited = {n for n, _ in cited_claims(answer)}
    listed = {c["n"] for c in structured["citations"]}
    if cited != listed:
        return f"markers {sorted(cited)} but sources {sorted(listed)}"
    if listed and not sources:
        return "no Sources list"
    return None


def added_latency(settings: Settings, rounds: int) -> None:
    from ui.app import build_app, launch

    assistant = Assistant.open(settings, build_if_missing=True)
    settings.ui.port = free_port()
    demo = build_app(assistant)
    _, url, _ = launch(demo, settings, prevent_thread_lock=True, quiet=True)
    client = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key="x", max_retries=0)
    questions = load_questions()
    for q in questions[:3]:  # warm both paths
        assistant.ask(q["question"], mode="extractive")
        client.chat.completions.create(model="paperchat", messages=messages_for(q))  # type: ignore[arg-type]
    direct: list[float] = []
    api: list[float] = []
    added: list[float] = []
    try:
        for _ in range(rounds):
            for q in questions:
                history = parse_history(q.get("history", []))
                start = time.perf_counter()
                assistant.ask(q["question"], history, mode="extractive")
                direct_ms = (time.perf_counter() - start) * 1000
                start = time.perf_counter()
                client.chat.completions.create(model="paperchat", messages=messages_for(q))  # type: ignore[arg-type]
                api_ms = (time.perf_counter() - start) * 1000
                direct.append(direct_ms)
                api.append(api_ms)
                added.append(api_ms - direct_ms)
    finally:
        demo.close()
    print(f"added latency, {len(added)} paired requests (dev questions x {rounds}):")
    print(f"  direct Assistant.ask      p50 {statistics.median(direct):7.1f} ms  p95 {percentile(direct, 0.95):7.1f} ms")
    print(f"  /v1/chat/completions      p50 {statistics.median(api):7.1f} ms  p95 {percentile(api, 0.95):7.1f} ms")
    print(f"  added (paired difference) p50 {statistics.median(added):7.1f} ms  p95 {percentile(added, 0.95):7.1f} ms")


def concurrency(settings: Settings, clients: int, per_client: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.pop("PAPERCHAT_LLM_MODEL", None)
    command = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port),
               "--db", str(settings.resolved_db_dir)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v1/models", timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("paperchat serve did not start") from None
                time.sleep(0.5)
        questions = [q for q in load_questions() if not q.get("history")]
        # The first question waits for the index and model to open: not part of the test.
        warm = openai.OpenAI(base_url=f"{base}/v1", api_key="x", timeout=600)
        warm.chat.completions.create(model="paperchat", messages=messages_for(questions[0]))  # type: ignore[arg-type]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def run_client(c: int) -> None:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=600)
            barrier.wait()
            for i in range(per_client):
                q = questions[(c * per_client + i) % len(questions)]
                stream = (c + i) % 2 == 1
                start = time.perf_counter()
                try:
                    if stream:
                        chunks: list[Any] = list(client.chat.completions.create(
                            model="paperchat", messages=messages_for(q), stream=True))  # type: ignore[arg-type]
                        content = "".join(ch.choices[0].delta.content or "" for ch in chunks)
                        structured = (chunks[-1].model_extra or {}).get("paperchat")
                    else:
                        reply = client.chat.completions.create(
                            model="paperchat", messages=messages_for(q))  # type: ignore[arg-type]
                        content = reply.choices[0].message.content or ""
                        structured = (reply.model_extra or {}).get("paperchat")
                    problem = check(content, structured)
                except Exception as exc:  # counted, not raised: the point is to count them
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        errors.append(f"client {c} question {q['id']}: {problem}")

        threads = [threading.Thread(target=run_client, args=(c,)) for c in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"concurrency: {clients} clients x {per_client} questions = {len(latencies)} requests "
          f"(half streamed) against paperchat serve, {wall:.1f} s wall")
    print(f"  errors {len(errors)}; latency p50 {statistics.median(latencies):.0f} ms, "
          f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms")
    for line in errors[:10]:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    settings = Settings()
    settings.answer.mode = "extractive"
    print(f"machine: {os.cpu_count()} cores (shared with other work: numbers vary run to run)")
    added_latency(settings, args.rounds)
    concurrency(settings, args.clients, args.questions)


if __name__ == "__main__":
    main()
