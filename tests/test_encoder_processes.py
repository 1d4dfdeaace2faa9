"""An ingest of several write groups embeds in worker processes; what it stores is what the
main process would have computed, and a killed ingest leaves no worker behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import encoder_processes
from rag.chunking import chunk_input, chunk_paper
from rag.corpus import load_corpus
from rag.embeddings import LocalEmbeddings
from rag.index import PaperIndex
from rag.settings import EmbeddingSettings, IndexSettings, Settings
from rag.types import Paper

pytestmark = pytest.mark.integration


def _multi_group_ingest(
    tmp_path: Path, model_cache: Path
) -> tuple[list[Paper], Settings, LocalEmbeddings]:
    """30 bundled papers, settings that cut them into several write groups, a real model."""
    papers = sorted(load_corpus(None, "{query}")[0], key=lambda p: p.id)[:30]
    settings = Settings(
        db_dir=tmp_path / "db",
        data_dir=tmp_path / "data",
        index=IndexSettings(write_chunks=40, batch_size=16),
    )
    return papers, settings, LocalEmbeddings.from_settings(EmbeddingSettings(cache_dir=model_cache))


def test_multi_group_ingest_embeds_in_workers_and_stores_the_same_vectors(
    tmp_path, embeddings, model_cache, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    submitted: list[int] = []
    real_submit = encoder_processes.EncoderProcesses.submit

    def counting_submit(self, texts):  # type: ignore[no-untyped-def]
        submitted.append(len(texts))
        return real_submit(self, texts)

    monkeypatch.setattr(encoder_processes.EncoderProcesses, "submit", counting_submit)
    papers, settings, ingesting = _multi_group_ingest(tmp_path, model_cache)
    index = PaperIndex(settings, ingesting, create=True)
    seen: list[int] = []
    report = index.ingest(papers, on_progress=seen.append)

    chunks = [(p, c) for p in papers for c in chunk_paper(p, settings.index.chunk_tokens)]
    assert report.papers == len(papers) and report.chunks == len(chunks)
    assert sum(submitted) == len(chunks)  # every chunk went through a worker
    assert sum(seen) == len(papers)  # progress counted each paper once
    assert ingesting._processes is None  # workers stopped after the ingest

    got = index.store._chunks.get(ids=[c.id for _, c in chunks], include=["embeddings"])
    stored = dict(zip(got["ids"], np.asarray(got["embeddings"]), strict=True))
    expected = embeddings.embed_array([chunk_input(p, c) for p, c in chunks])
    cosines = [float(stored[c.id] @ e) for (_, c), e in zip(chunks, expected, strict=True)]
    assert min(cosines) >= 0.9999


def test_without_worker_processes_embed_later_is_computed_at_once(embeddings) -> None:  # type: ignore[no-untyped-def]
    future = embeddings.embed_later(["graph neural networks"])
    assert future.done()
    assert np.allclose(future.result(), embeddings.embed_array(["graph neural networks"]))


def test_a_worker_dying_mid_ingest_is_a_clear_error_and_a_rerun_finishes(
    tmp_path, embeddings, model_cache, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    from rag.errors import EmbeddingError

    real_submit = encoder_processes.EncoderProcesses.submit
    calls = []

    def submit_then_kill_a_worker(self, texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        future = real_submit(self, texts)
        if len(calls) == 3:  # as if the OOM killer took one worker mid-ingest
            os.kill(next(iter(self._pool._processes)), signal.SIGKILL)
        return future

    monkeypatch.setattr(encoder_processes.EncoderProcesses, "submit", submit_then_kill_a_worker)
    papers, settings, ingesting = _multi_group_ingest(tmp_path, model_cache)
    with pytest.raises(EmbeddingError, match="Re-run the same command"):
        PaperIndex(settings, ingesting, create=True).ingest(papers)

    monkeypatch.setattr(encoder_processes.EncoderProcesses, "submit", real_submit)
    report = PaperIndex(settings, ingesting, create=True).ingest(papers)
    assert report.papers == len(papers)
    assert report.new + report.updated + report.unchanged == len(papers)
