"""Forward passes in worker processes, one single-threaded encoder per core, for ingest.

Why processes and not the encoder's own threads: an ingest's main thread spends about a tenth
of its time in Chroma writes, and chromadb's Rust binding holds the GIL for a whole write, so
a Python thread beside an upsert hardly runs. Encoder threads in the same process then stall
at every batch boundary, and overlapping writes with threads did not help. Workers in their
own processes keep both cores embedding while the main thread writes, which made ingest
faster. The measurements: docs/performance.md, "Embedding in worker processes".
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

_encoder: Any = None  # this worker's own encoder


def _start_worker(backend: str, cache_dir: Path | None, parent: int) -> None:
    # Not rag.embeddings: its LangChain import would add to every worker's start-up.
    from rag.onnx_encoder import OnnxEncoder

    # Ctrl-C is the parent's to handle: it stops the pool, and an upsert in flight finishes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL cannot stop its pool; workers would wait for work forever.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    global _encoder
    # Workers run for the ONNX backends only (LocalEmbeddings.worker_processes).
    _encoder = OnnxEncoder(threads=1, cache_dir=cache_dir, quantize=backend == "onnx")


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    return _encoder.encode(texts, batch_size)  # type: ignore[no-any-return]


class EncoderProcesses:
    """`submit(texts)` returns a Future of the vectors; close() stops the workers."""

    def __init__(self, backend: str, cache_dir: Path | None, workers: int, batch_size: int):
        self.batch_size = batch_size
        self._pool = ProcessPoolExecutor(
            workers,
            # spawn, not fork: the parent has Chroma's and ORT's threads running.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(backend, cache_dir, os.getpid()),
        )

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        return self._pool.submit(_encode, texts, self.batch_size)

    def close(self, *, wait: bool = True) -> None:
        if not wait:
            # Ctrl-C or an error: the work in flight is redone by the next ingest, so it is
            # stopped, not waited for (that took 11 s). Python 3.14's terminate_workers().
            # The queue's feeder thread may be blocked writing a batch into the pipe of the
            # workers about to die; joining it at exit would hang (1 run in 3 did).
            call_queue = getattr(self._pool, "_call_queue", None)
            if call_queue is not None:
                call_queue.cancel_join_thread()
            for process in list(self._pool._processes.values()):  # type: ignore[attr-defined]
                process.terminate()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
