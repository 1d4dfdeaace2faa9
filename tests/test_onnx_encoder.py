"""The ONNX encoder against the torch reference, on the bundled model and corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import onnx_encoder
from rag.chunking import chunk_input, chunk_paper
from rag.corpus import load_corpus
from rag.embeddings import TorchEncoder
from rag.onnx_encoder import OnnxEncoder

pytestmark = pytest.mark.integration

QUERIES = [
    "BERT",
    "graph neural networks",
    "What is contrastive learning?",
    "How do diffusion models generate images from text prompts?",
    "retrieval augmented generation for question answering",
    "speech recognition",
    "Which papers study reinforcement learning from human feedback?",
    "efficient transformers for long documents",
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """40 texts as ingest and chat embed them: chunk inputs, whole abstracts, queries."""
    papers, _ = load_corpus(None, "{query}")
    sample = sorted(papers, key=lambda p: p.id)[:: max(1, len(papers) // 32)][:32]
    chunks = [chunk_input(p, chunk_paper(p, 120)[i % 2 - 1]) for i, p in enumerate(sample[:24])]
    # Whole abstracts run past 256 tokens, so these also check truncation matches.
    abstracts = [f"{p.title}. {p.abstract}" for p in sample[24:]]
    mixed = chunks + abstracts + QUERIES
    # Shuffled so that sorting by length inside encode really has to reorder.
    return [mixed[i] for i in np.random.default_rng(0).permutation(len(mixed))]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def encoder(cache_root: Path) -> OnnxEncoder:
    return OnnxEncoder(cache_dir=cache_root)


@pytest.fixture(scope="module")
def reference(texts: list[str]) -> np.ndarray:
    return TorchEncoder().encode(texts, batch_size=16)


def test_matches_torch_per_text(
    encoder: OnnxEncoder, texts: list[str], reference: np.ndarray
) -> None:
    vectors = encoder.encode(texts, batch_size=16)
    cosines = np.sum(vectors * reference, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.99, f"cosine {cosines[worst]:.4f} for {texts[worst][:80]!r}"


def test_unquantised_copy_gives_the_reference_vectors(
    cache_root: Path, texts: list[str], reference: np.ndarray
) -> None:
    exact = OnnxEncoder(cache_dir=cache_root, quantize=False)
    assert exact.model_path.parent.name != OnnxEncoder(cache_dir=cache_root).model_path.parent.name
    cosines = np.sum(exact.encode(texts, batch_size=16) * reference, axis=1)
    assert cosines.min() >= 0.9999, f"cosine {cosines.min():.5f}"


def test_rows_are_normalised_float32(encoder: OnnxEncoder, texts: list[str]) -> None:
    vectors = encoder.encode(texts, batch_size=8)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_preserved_with_mixed_lengths(encoder: OnnxEncoder, texts: list[str]) -> None:
    assert len({len(t) for t in texts}) > len(texts) // 2, "sample should mix lengths"
    batched = encoder.encode(texts, batch_size=4)
    alone = np.vstack([encoder.encode([t], batch_size=4) for t in texts])
    # One int8 activation scale per batch: a row moves slightly with its batch-mates.
    assert np.all(np.sum(batched * alone, axis=1) >= 0.99)
    assert np.array_equal(np.argmax(batched @ alone.T, axis=1), np.arange(len(texts)))
    reverse = encoder.encode(texts[::-1], batch_size=4)[::-1]
    assert np.all(np.sum(batched * reverse, axis=1) >= 0.99)


def test_empty_input(encoder: OnnxEncoder) -> None:
    assert encoder.encode([], batch_size=8).shape == (0, 384)


def test_second_construction_reuses_cache(
    encoder: OnnxEncoder, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = encoder.model_path
    assert path.is_file() and path.is_relative_to(cache_root)
    # Only the finished model is left behind: no temporary build folders or files.
    assert [p.name for p in path.parent.iterdir()] == [onnx_encoder.MODEL_FILE]
    before = path.stat().st_mtime_ns

    def no_rebuild(*_: object) -> None:
        raise AssertionError("model was rebuilt although it was cached")

    monkeypatch.setattr(onnx_encoder, "build_model", no_rebuild)
    again = OnnxEncoder(threads=1, cache_dir=cache_root)
    assert again.model_path == path
    assert path.stat().st_mtime_ns == before
    vector = again.encode(["graph neural networks"], batch_size=1)
    assert vector.shape == (1, 384)


def test_failed_build_leaves_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_export(_model_dir: Path, out: Path) -> None:
        out.write_bytes(b"half an onnx file")
        raise KeyboardInterrupt  # as if the process were stopped mid-export

    monkeypatch.setattr(onnx_encoder, "_export_fp32", half_export)
    with pytest.raises(KeyboardInterrupt):
        OnnxEncoder(cache_dir=tmp_path)
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != onnx_encoder.KEY_MEMO_FILE]
    assert not left, left


def _retrieval_scores(assistant: Any, set_name: str) -> tuple[float, float]:
    """(recall@5, mrr) of retrieval over the answerable questions of an evals/sets file."""
    from evals.metrics import recall_at, reciprocal_rank
    from evals.sets import load_set

    recalls, ranks = [], []
    for question in load_set(Path(__file__).parents[1] / "evals" / "sets" / set_name).questions:
        if not question.gold_titles:
            continue
        titles = [
            h.paper.title for h in assistant.retrieve(question.question, question.history, 20).hits
        ]
        recalls.append(recall_at(question.gold_titles, titles, 5))
        ranks.append(reciprocal_rank(question.gold_titles, titles))
    return sum(recalls) / len(recalls), sum(ranks) / len(ranks)


def test_dev_retrieval_of_the_fast_paths_against_the_reference(
    cache_root: Path, tmp_path: Path
) -> None:
    """The bundled corpus indexed and queried with each backend, retrieval scored on the dev
    sets. The exact ONNX copy (the default) must be within 0.01 of torch on recall@5 and mrr
    on both sets, the issue's bar. int8 does not meet that bar (dev recall@5 0.968 against
    1.000, dev_hard mrr 0.56 against 0.71: docs/performance.md); its checks here only guard
    against it getting worse."""
    from rag.embeddings import LocalEmbeddings
    from rag.pipeline import Assistant
    from rag.settings import Settings

    tolerance = {  # backend -> set -> (recall@5, mrr) allowed below torch
        "onnx-fp32": {"dev.jsonl": (0.01, 0.01), "dev_hard.jsonl": (0.01, 0.01)},
        "onnx": {"dev.jsonl": (0.05, 0.01)},
    }
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    for backend in ("torch", *tolerance):
        settings = Settings(data_dir=tmp_path / backend, db_dir=tmp_path / backend / "db")
        embeddings = LocalEmbeddings(backend=backend, cache_dir=cache_root)
        assistant = Assistant.open(settings, build_if_missing=True, embeddings=embeddings)
        scores[backend] = {
            name: _retrieval_scores(assistant, name) for name in ("dev.jsonl", "dev_hard.jsonl")
        }
    for backend, sets in tolerance.items():
        for name, (recall_tol, mrr_tol) in sets.items():
            fast, reference = scores[backend][name], scores["torch"][name]
            assert reference[0] - fast[0] <= recall_tol, (backend, name, fast, reference)
            assert reference[1] - fast[1] <= mrr_tol, (backend, name, fast, reference)
