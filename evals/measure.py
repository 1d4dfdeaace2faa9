"""Running one command in its own process and measuring it: wall time, peak resident memory of
its whole process tree, and the progress lines it prints on stderr.

The measured side calls `report_progress`; the measuring side (`run_measured`) follows those
lines with `_ProgressReader` and passes them to a progress bar. Only the standard library:
the benchmark's workers import this too, and scripts/measure_run.py uses it on any command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROGRESS_PREFIX = "paperchat-bench-progress"


def report_progress(done: int, total: int) -> None:
    """One line on stderr that the driver turns into its progress bar (see _ProgressReader)."""
    print(f"{PROGRESS_PREFIX} {done} {total}", file=sys.stderr, flush=True)


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


def run_measured(
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
