"""Late interaction: the score, the rerank of the fused ranking's top, the token-vector cache;
then the real bundled model matching a paraphrase word by word."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbeddings

from rag.corpus import load_corpus
from rag.index import PaperIndex
from rag.late_interaction import TokenVectorCache, late_score, paper_windows, window_score
from rag.retrieve import reranked
from rag.settings import RetrievalSettings, Settings
from rag.types import Paper


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_each_question_token_counts_its_closest_paper_token() -> None:
    question = _unit([1, 0, 0], [0, 1, 0])
    has_both = _unit([0, 1, 0], [1, 0.1, 0], [0, 0, 1])
    has_one = _unit([1, 0, 0], [0, 0, 1])
    assert window_score(question, has_both) > window_score(question, has_one)
    assert window_score(question, has_one) == pytest.approx(0.5)
    assert window_score(question, np.zeros((0, 3), dtype=np.float32)) == 0.0


def test_a_paper_scores_by_its_best_two_windows_not_by_words_spread_over_all() -> None:
    """Each question word in a different window of unrelated sentences scores below two
    windows that each hold both words."""
    question = _unit([1, 0, 0], [0, 1, 0])
    off = _unit([0, 0, 1])
    spread = [_unit([1, 0, 0], [0, 0, 1]), _unit([0, 1, 0], [0, 0, 1]), off]
    together = [_unit([1, 0, 0], [0, 1, 0]), _unit([0.9, 0.9, 0.2]), off]
    assert late_score(question, spread) < late_score(question, together)
    assert late_score(question, [_unit([1, 0, 0])]) == pytest.approx(0.5)  # one window
    assert late_score(question, []) == 0.0


def test_the_rerank_reorders_only_the_top_and_keeps_it_above_the_rest() -> None:
    fused = {"a": 3.0, "b": 2.9, "c": 2.0, "d": 1.0}
    late = {"a": 0.40, "b": 0.60, "c": 0.50}
    settings = RetrievalSettings(late_weight=4.0, rerank_depth=3)
    out = reranked(fused, late, settings)
    order = sorted(out, key=out.__getitem__, reverse=True)
    assert order[:3] == ["b", "c", "a"] and order[3] == "d"
    assert out["d"] == fused["d"]
    # Off, or a top paper without a late score: the fused scores as they were.
    assert reranked(fused, late, settings.model_copy(update={"late_weight": 0.0})) == fused
    assert reranked(fused, {"a": 0.4, "b": 0.6}, settings) == fused


def test_a_small_weight_only_breaks_near_ties() -> None:
    fused = {"a": 5.0, "b": 1.0, "c": 0.9}
    late = {"a": 0.1, "b": 0.5, "c": 0.9}
    out = reranked(fused, late, RetrievalSettings(late_weight=0.2, rerank_depth=3))
    assert sorted(out, key=out.__getitem__, reverse=True) == ["a", "c", "b"]


def _paper(pid: str, abstract: str) -> Paper:
    return Paper(id=pid, title=f"Title {pid}", abstract=abstract, url="")


def test_the_cache_encodes_a_paper_once_and_again_when_its_text_changes() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> list[np.ndarray]:
        calls.append(texts)
        return [_unit([1.0, float(len(t) % 7), 0.5]) for t in texts]

    cache = TokenVectorCache(encode, capacity=2)
    a, b, c = _paper("a", "One. Two."), _paper("b", "Three."), _paper("c", "Four.")
    first = cache.rows([a, b])
    assert len(calls) == 1 and set(first) == {"a", "b"}
    again = cache.rows([a, b])
    assert len(calls) == 1  # both cached
    assert len(first["a"]) == 1  # one window of two sentences
    np.testing.assert_allclose(again["a"][0], first["a"][0], atol=1 / 127)
    cache.rows([c])  # over capacity: the least recently used (a) goes
    cache.rows([b])
    assert len(calls) == 2
    cache.rows([a])
    assert len(calls) == 3
    cache.rows([_paper("b", "A new abstract.")])
    assert calls[-1] == ["Title b. A new abstract."]


def test_windows_cover_every_sentence_with_the_title() -> None:
    paper = _paper("x", "S1 one. S2 two. S3 three. S4 four.")
    windows = paper_windows(paper)
    assert windows == ["Title x. S1 one. S2 two. S3 three.", "Title x. S4 four."]


def test_the_real_model_matches_a_paraphrase_word_by_word(embeddings) -> None:  # type: ignore[no-untyped-def]
    """Integration: the bundled model's token vectors. A question in other words ("pictures",
    "sentences") scores the paper that says it higher than one on another topic."""
    cache = TokenVectorCache(embeddings.token_vectors, capacity=10)
    fitting = _paper("fit", "We align images and captions in a shared embedding space.")
    other = _paper("other", "We predict protein folding with graph neural networks.")
    rows = cache.rows([fitting, other])
    question = embeddings.token_vectors(["Which work matches pictures with sentences?"])[0]
    assert question.shape[1] == 384 and len(question) >= 3  # content tokens only
    assert late_score(question, rows["fit"]) > late_score(question, rows["other"])


def test_the_background_warm_up_starts_once_however_often_it_is_asked(tmp_path: Path) -> None:
    """The web page asks on every load: a second thread would encode the same papers again."""
    encoded: list[str] = []

    class Counting(HashEmbeddings):
        def token_vectors(self, texts: list[str]) -> list[np.ndarray]:
            encoded.extend(texts)
            return super().token_vectors(texts)

    settings = Settings(data_dir=tmp_path, db_dir=tmp_path / "db")
    papers = load_corpus(None, settings.corpus.search_url_template)[0][:5]
    index = PaperIndex(settings, Counting(), create=True)  # type: ignore[arg-type]
    index.ingest(papers)
    for _ in range(3):
        index.warm_late_vectors(background=True)
    for thread in threading.enumerate():
        if thread.name == "paperchat-late-warmup":
            thread.join()
    assert len(encoded) == sum(len(paper_windows(p)) for p in papers)
