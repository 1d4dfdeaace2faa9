"""Run a real server as a child process on 127.0.0.1 for a test module (a `paperchat` command
such as serve or mcp --http, or llama.cpp's server), wait until it answers, and stop it
afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(data_dir: Path, model_cache: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without OPENAI_*/PAPERCHAT_* leaks, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PAPERCHAT_"))}
    env.update(
        PAPERCHAT_DATA_DIR=str(data_dir),
        PAPERCHAT_EMBEDDING_CACHE_DIR=str(model_cache),
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def server_process(
    argv: list[str],
    log: Path,
    ready: Callable[[], bool],
    env: dict[str, str] | None = None,
    limit_s: float = 240,
    name: str = "",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (output to `log`) until the with-block ends; `ready` is polled until true.
    A child that exits, or is not ready within `limit_s`, fails with the tail of its log."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + limit_s
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{name or ' '.join(argv)} did not start:\n"
                        + log.read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


@contextmanager
def paperchat_process(
    args: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool], limit_s: float = 240
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m rag.cli ARGS` until the with-block ends; `ready` is polled until true."""
    argv = [sys.executable, "-m", "rag.cli", *args]
    with server_process(argv, log, ready, env, limit_s, f"paperchat {' '.join(args)}") as proc:
        yield proc


@contextmanager
def chroma_server(root: Path, limit_s: float = 60) -> Iterator[str]:
    """`chroma run` on a free loopback port with its data under `root`; yields its URL and
    stops it when the with-block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(Path(sys.executable).parent / "chroma"), "run", "--path", str(root / "server-db"),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    ready = lambda: http_status(f"{url}/api/v2/heartbeat") == 200  # noqa: E731
    with server_process(argv, root / "chroma.log", ready, env, limit_s, "chroma run"):
        yield url
