"""Seconds from a first `paperchat serve` (as `make chat` right after the install) to the page.

A fresh data directory and a fresh model cache, so the run does all a first start does: make
the ONNX copy of the bundled weights, index the bundled corpus, import gradio and serve.
Prints the time until the server answers HTTP with the chat page, the load average, and
removes the folders.

    .venv/bin/python scripts/first_page.py [--runs 3] [--keep-model-cache]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and b"paperchat" in response.read()
    except OSError:
        return False


def one_run(keep_model_cache: bool, timeout_s: float) -> float:
    paperchat = Path(sys.executable).with_name("paperchat")
    with tempfile.TemporaryDirectory(prefix="paperchat-first-") as tmp:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PAPERCHAT_")},
            "PAPERCHAT_DATA_DIR": str(Path(tmp) / "data"),
            "HF_HUB_OFFLINE": "1",
        }
        if not keep_model_cache:
            env["PAPERCHAT_EMBEDDING_CACHE_DIR"] = str(Path(tmp) / "model-cache")
        start = time.perf_counter()
        server = subprocess.Popen(
            [str(paperchat), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            while not page_up(url):
                if server.poll() is not None:
                    err = server.stderr.read().decode() if server.stderr else ""
                    raise SystemExit(f"paperchat serve exited ({server.returncode}):\n{err}")
                if time.perf_counter() - start > timeout_s:
                    raise SystemExit(f"no page after {timeout_s:.0f} s")
                time.sleep(0.1)
            return time.perf_counter() - start
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keep-model-cache",
        action="store_true",
        help="use the existing ONNX copy (measures the index build and start-up only)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    times = []
    for run in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        times.append(one_run(args.keep_model_cache, args.timeout))
        print(f"run {run}: page after {times[-1]:.1f} s (load average {load:.1f} at start)")
    print(
        f"median {statistics.median(times):.1f} s over {len(times)} runs, {os.cpu_count()} CPUs"
        + (", existing model cache" if args.keep_model_cache else ", fresh model cache")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
