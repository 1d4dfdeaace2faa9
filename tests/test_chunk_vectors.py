"""The exact-search copy of the chunk vectors (rag.chunk_vectors) and its use by PaperIndex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.chunk_vectors import ChunkVectors


def _rows(n: int, dim: int = 8, seed: int = 0) -> list[tuple[str, tuple[int, int], np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(f"p{i // 2}", (i % 2, i % 2 + 1), rng.normal(size=dim)) for i in range(n)]


def test_nearest_matches_a_brute_force_ranking() -> None:
    rows = _rows(200)
    exact = ChunkVectors.build("g1", rows)
    query = np.random.default_rng(1).normal(size=8)
    unit = np.asarray([v / np.linalg.norm(v) for _, _, v in rows])
    expected = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:10]
    got = exact.nearest(query, 10)
    assert [pid for pid, _, _ in got] == [rows[i][0] for i in expected]
    assert [span for _, _, span in got] == [rows[i][1] for i in expected]
    scores = [score for _, score, _ in got]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0


def test_best_of_gives_each_named_papers_best_chunk() -> None:
    rows = _rows(40)  # papers p0..p19, two chunks each
    exact = ChunkVectors.build("g", rows)
    query = np.random.default_rng(2).normal(size=8)
    unit = query / np.linalg.norm(query)
    got = {pid: (score, span) for pid, score, span in exact.best_of(query, ["p3", "p17", "nope"])}
    assert set(got) == {"p3", "p17"}
    for pid, (score, span) in got.items():
        own = [(float(v @ unit / np.linalg.norm(v)), sp) for p, sp, v in rows if p == pid]
        assert score == pytest.approx(max(own)[0], abs=1e-5) and span == max(own)[1]


def test_nearest_on_empty_or_small_copies() -> None:
    assert ChunkVectors.build("g", []).nearest(np.ones(8), 5) == []
    assert len(ChunkVectors.build("g", _rows(3)).nearest(np.ones(8), 5)) == 3


def test_saved_copy_round_trips_and_bad_files_read_as_missing(tmp_path: Path) -> None:
    exact = ChunkVectors.build("gen-7", _rows(20))
    path = tmp_path / "chunk_vectors.npz"
    exact.save(path)
    loaded = ChunkVectors.load(path)
    assert loaded is not None and loaded.generation == "gen-7"
    np.testing.assert_array_equal(loaded.vectors, exact.vectors)
    assert list(loaded.paper_ids) == list(exact.paper_ids)
    path.write_bytes(b"not an npz file")
    assert ChunkVectors.load(path) is None
    assert ChunkVectors.load(tmp_path / "missing.npz") is None


@pytest.mark.integration
def test_index_searches_exactly_and_agrees_with_the_graph_on_the_bundled_corpus(
    bundled_db: Path, embeddings: object, tmp_path: Path
) -> None:
    """The copy is written with the BM25 file by the ingest; the exact and graph searches
    find the same best chunks on an undamaged index; a limit of 0 uses the graph."""
    import shutil

    from rag.pipeline import Assistant
    from rag.settings import Settings

    db = tmp_path / "db"
    shutil.copytree(bundled_db, db)
    assert (db / "chunk_vectors.npz").exists()
    exact = Assistant.open(Settings(db_dir=db, data_dir=tmp_path), embeddings=embeddings)  # type: ignore[arg-type]
    graph_settings = Settings(db_dir=db, data_dir=tmp_path)
    graph_settings.index.exact_search_max_chunks = 0
    graph = Assistant.open(graph_settings, embeddings=embeddings)  # type: ignore[arg-type]
    # The saved copy is over that limit, so the graph answers.
    assert graph.index.derived.exact_vectors() is None
    # Without a saved copy, deciding that counts the chunks: once per generation, not on every
    # question (a count of 434k chunks took 36 ms of each question at 100k papers).
    db2 = tmp_path / "db2"
    shutil.copytree(bundled_db, db2)
    (db2 / "chunk_vectors.npz").unlink()
    settings2 = Settings(db_dir=db2, data_dir=tmp_path)
    settings2.index.exact_search_max_chunks = 0
    no_copy = Assistant.open(settings2, embeddings=embeddings)  # type: ignore[arg-type]
    counted: list[int] = []
    read = no_copy.index.store.chunk_vectors

    def counting(limit: int) -> object:
        counted.append(limit)
        return read(limit)

    no_copy.index.store.chunk_vectors = counting  # type: ignore[assignment,method-assign]
    for _ in range(3):
        assert no_copy.index.derived.exact_vectors() is None
    assert counted == [0]
    # Without a copy, the papers the nearest chunks missed are read from the store by chunk
    # id: the same best chunk as the copy gives, for the first STORED_BEST_CHUNKS of them.
    from rag.index import STORED_BEST_CHUNKS

    vector = np.asarray(exact.index.embeddings.embed_query("visual dialog NDCG"))
    ids = sorted(exact.index.lexical.ids)[: STORED_BEST_CHUNKS + 2]
    from_copy = {m.paper_id: (m.score, m.chunks) for m in exact.index.dense_of(vector, ids)}
    from_store = {m.paper_id: (m.score, m.chunks) for m in no_copy.index.dense_of(vector, ids)}
    assert set(from_store) == set(ids[:STORED_BEST_CHUNKS])
    for pid, (score, chunks) in from_store.items():
        assert score == pytest.approx(from_copy[pid][0], abs=1e-5)
        assert chunks == from_copy[pid][1]
    for question in (
        "What NDCG scores did SeqDialN achieve on VisDial v1.0?",
        "How many tokens was Yi pretrained on?",
    ):
        vector = np.asarray(exact.index.embeddings.embed_query(question))
        by_exact = exact.index.dense(vector, 20)
        by_graph = graph.index.dense(vector, 20)
        assert [m.paper_id for m in by_exact[:5]] == [m.paper_id for m in by_graph[:5]]
        assert by_exact[0].score == pytest.approx(by_graph[0].score, abs=1e-4)
