"""Wall time of a cold `paperchat ask "…" --json`: a new process each run, OS cache warm.

Runs the command once to warm the page cache, then RUNS times; prints each run, the median
and the CPU time, and the load average (the figure means little on a busy machine).

    .venv/bin/python scripts/cold_ask.py --db DIR [--runs 10] [--question "…"]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="index directory (default: paperchat's own)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()
    paperchat = Path(sys.executable).with_name("paperchat")
    command = [str(paperchat), "ask", args.question, "--json"]
    if args.db:
        command += ["--db", args.db]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm the OS cache
    walls: list[float] = []
    cpus: list[float] = []
    load_before = os.getloadavg()[0]
    for run in range(1, args.runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        answer = json.loads(done.stdout)
        cited = len(answer["citations"])
        print(f"run {run:2}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU, {cited} citations")
    print(
        f"median {statistics.median(walls):.2f} s wall (min {min(walls):.2f}, max "
        f"{max(walls):.2f}), median CPU {statistics.median(cpus):.2f} s; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
