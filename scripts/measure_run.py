"""Run a command; print its wall time, CPU time and peak memory counting child processes.

`/usr/bin/time -v` reports the largest single process, not the sum over an ingest and its
embedding workers; this samples the sum every 0.2 s (evals.measure.wait_with_peak_rss).

    .venv/bin/python scripts/measure_run.py -- paperchat ingest corpus.jsonl --db DB
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evals.measure import wait_with_peak_rss  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peak_kib = wait_with_peak_rss(proc)
    wall = time.perf_counter() - start
    children = os.times()
    cpu = children.children_user + children.children_system
    print(
        f"wall {wall:.1f} s ({wall / 60:.1f} min), cpu {cpu:.0f} s ({100 * cpu / wall:.0f} %), "
        f"peak RSS incl. children {peak_kib / 1024:.0f} MiB, exit {proc.returncode}",
        file=sys.stderr,
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
