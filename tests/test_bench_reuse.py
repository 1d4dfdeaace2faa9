"""The benchmark's large sizes embed chunks from cached sentence vectors (ReuseEmbeddings):
its ingest and its questions must run on the real index code, as the small sizes do."""

from __future__ import annotations

from pathlib import Path

from evals.bench_workers import worker_asks, worker_ingest
from evals.synthetic import write_corpus


def test_a_reused_embeddings_index_is_built_and_answers(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus-200.jsonl", 200)
    spec = {
        "kind": "ingest",
        "backend": "onnx-fp32",
        "corpus": str(corpus),
        "data_dir": str(tmp_path / "data"),
        "db": str(tmp_path / "db"),
        "reuse": True,
    }
    built = worker_ingest(spec)
    assert built["papers"] == 200
    assert built["backend"] == "onnx-fp32+reuse"
    asked = worker_asks({**spec, "kind": "asks", "rounds": 1})
    assert asked["known_answer_ok"]
    assert asked["ask"]["n"] > 0
