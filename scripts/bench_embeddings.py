"""Embedding speed and agreement: torch (the reference) against the ONNX encoder (int8, or exact).

    .venv/bin/python scripts/bench_embeddings.py [--threads N] [--batch-size N] [--rounds N]
                                                 [--fresh] [--limit N] [--no-quantize]

Embeds every chunk input of the bundled corpus (chunk_paper(paper, 120), title prepended, as
ingest does) with both encoders, alternating rounds so that load from other processes hits
both alike, and prints texts/s (best and median round), the speed-up, and the cosine of each
ONNX vector to its torch vector. --fresh builds the ONNX model in a temporary cache to time
the export; otherwise the user cache is used (and built if missing).
On a busy machine compare the best rounds: os.getloadavg() is printed to judge that.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

from rag.chunking import chunk_input, chunk_paper
from rag.corpus import load_corpus
from rag.embeddings import TorchEncoder, count_tokens
from rag.onnx_encoder import OnnxEncoder


def timed(encode: Callable[[], np.ndarray], rates: list[float], count: int) -> np.ndarray:
    started = time.perf_counter()
    vectors = encode()
    rates.append(count / (time.perf_counter() - started))
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N chunks")
    parser.add_argument("--fresh", action="store_true", help="export into a temporary cache")
    parser.add_argument(
        "--no-quantize", action="store_true", help="the exact copy (backend onnx-fp32), not int8"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    papers, _ = load_corpus(None, "{query}")
    texts = [chunk_input(p, c) for p in papers for c in chunk_paper(p, 120)]
    texts = texts[: args.limit] if args.limit else texts
    tokens = [count_tokens(t) + 2 for t in texts]
    threads = args.threads or os.cpu_count() or 1
    print(
        f"{len(texts)} chunk inputs from {len(papers)} papers; tokens mean "
        f"{statistics.mean(tokens):.0f}, max {max(tokens)}; threads {threads}; "
        f"batch size {args.batch_size}; load average {os.getloadavg()[0]:.1f}"
    )

    with tempfile.TemporaryDirectory() as fresh:
        started = time.perf_counter()
        onnx = OnnxEncoder(
            threads=threads,
            cache_dir=fresh if args.fresh else None,
            quantize=not args.no_quantize,
        )
        print(
            f"onnx model {onnx.model_path} ready in {time.perf_counter() - started:.1f}s"
            + (" (export + quantisation)" if args.fresh else "")
        )
        torch = TorchEncoder(threads=threads)

        def run_torch() -> np.ndarray:
            return torch.encode(texts, args.batch_size)

        def run_onnx() -> np.ndarray:
            return onnx.encode(texts, args.batch_size)

        run_torch(), run_onnx()  # warm-up: first calls allocate and pick kernels
        torch_rates: list[float] = []
        onnx_rates: list[float] = []
        for _ in range(args.rounds):
            reference = timed(run_torch, torch_rates, len(texts))
            vectors = timed(run_onnx, onnx_rates, len(texts))

    cosines = np.sum(vectors * reference, axis=1)
    onnx_name = "onnx fp32" if args.no_quantize else "onnx int8"
    for name, rates in (("torch fp32", torch_rates), (onnx_name, onnx_rates)):
        print(
            f"{name:10s} best {max(rates):6.1f} texts/s  median {statistics.median(rates):6.1f}"
            f"  rounds {' '.join(f'{r:.1f}' for r in rates)}"
        )
    print(
        f"speed-up   best {max(onnx_rates) / max(torch_rates):.2f}x  median "
        f"{statistics.median(onnx_rates) / statistics.median(torch_rates):.2f}x"
    )
    print(
        f"cosine onnx vs torch: min {cosines.min():.4f}  mean {cosines.mean():.5f}  "
        f"< 0.99: {int(np.sum(cosines < 0.99))}"
    )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
