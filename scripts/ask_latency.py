"""Warm `ask` latency (retrieval + extractive answer) over the dev questions, in-process.

Usage: PAPERCHAT_DB_DIR=DIR .venv/bin/python scripts/ask_latency.py [ROUNDS]
"""

import json
import statistics
import sys
import time
from pathlib import Path

from rag.inputs import parse_history
from rag.pipeline import Assistant
from rag.settings import Settings

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
assistant = Assistant.open(Settings())
questions = [json.loads(line) for line in Path("evals/sets/dev.jsonl").read_text().splitlines()]
start = time.perf_counter()
assistant.ask(questions[0]["question"])  # loads the model
first_ms = (time.perf_counter() - start) * 1000
print(f"first ask (model load, its papers' token vectors): {first_ms:.0f} ms")
start = time.perf_counter()
assistant.index.warm_late_vectors(background=False)  # what a server does once it is up
print(f"every paper's token vectors: {(time.perf_counter() - start) * 1000:.0f} ms")
samples, stages = [], {}
for _ in range(rounds):
    for q in questions:
        start = time.perf_counter()
        answer = assistant.ask(q["question"], parse_history(q.get("history", [])))
        samples.append((time.perf_counter() - start) * 1000)
        for name, ms in answer.timings_ms.items():
            stages.setdefault(name, []).append(ms)
samples.sort()
p95 = samples[int(0.95 * (len(samples) - 1))]
print(f"ask warm over {len(samples)} questions: p50 {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms")
for name, values in stages.items():
    print(f"  {name:10s} p50 {statistics.median(values):.2f} ms")
