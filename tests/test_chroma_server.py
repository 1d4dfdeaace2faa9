"""Server mode: a real `chroma run` on loopback shared by two paperchat clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_server import chroma_server, free_port

from rag.corpus import load_corpus
from rag.errors import StorageError
from rag.settings import Settings

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    """A Chroma server on a free loopback port with its data in tmp_path; stopped after."""
    with chroma_server(tmp_path) as url:
        yield url


def _small_corpus(path: Path, n: int = 30) -> list:  # type: ignore[type-arg]
    papers, _ = load_corpus(None, Settings().corpus.search_url_template)
    chosen = [p for p in papers if p.title.startswith("SeqDialN")] + [
        p for p in papers if not p.title.startswith("SeqDialN")
    ][: n - 1]
    path.write_text(
        "".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in chosen)
    )
    return chosen


@pytest.mark.timeout(900)
def test_two_clients_share_one_chroma_server(chroma_url: str, tmp_path: Path, embeddings) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    from rag.pipeline import Assistant

    corpus = tmp_path / "corpus.jsonl"
    papers = _small_corpus(corpus)
    settings = Settings(data_dir=tmp_path / "app-a", chroma_url=chroma_url)
    writer = Assistant.create(settings, embeddings)
    report = writer.ingest([corpus])
    assert (report.papers, report.new) == (len(papers), len(papers))
    answer = writer.ask(QUESTION, mode="extractive")
    assert answer.citations[0].title.startswith("SeqDialN")
    # Nothing of the index is kept locally but the per-app-server BM25 cache.
    assert not (tmp_path / "app-a" / "db").exists()
    assert list((tmp_path / "app-a" / "cache").glob("*/lexical.pkl"))

    # A second client in another process, with its own data directory, reads the same server.
    env = {**os.environ, "PAPERCHAT_DATA_DIR": str(tmp_path / "app-b")}
    cmd = [str(BIN / "paperchat"), "ask", QUESTION, "--chroma-url", chroma_url, "--json"]
    done = subprocess.run(
        [*cmd, "--mode", "extractive"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["citations"][0]["title"].startswith("SeqDialN")
    assert list((tmp_path / "app-b" / "cache").glob("*/lexical.pkl"))

    # A long-running reader picks up another client's ingest at its next refresh.
    reader = Assistant.open(
        Settings(data_dir=tmp_path / "app-c", chroma_url=chroma_url), embeddings=embeddings
    )
    assert len(reader.index.lexical.ids) == len(papers)
    assert reader.index.refresh() is False
    extra = tmp_path / "extra.jsonl"
    more, _ = load_corpus(None, Settings().corpus.search_url_template)
    added = [p for p in more if p.id not in {q.id for q in papers}][:3]
    extra.write_text(
        "".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in added)
    )
    writer.ingest([extra])
    assert reader.index.maybe_refresh(max_age_s=0) is True
    assert len(reader.index.lexical.ids) == len(papers) + 3
    target = added[0]
    assert reader.ask(f"{target.title}?", mode="extractive").citations[0].title == target.title


def test_unreachable_server_gives_an_actionable_error(tmp_path: Path, embeddings) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    from rag.index import PaperIndex

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match="chroma run --path DIR"):
        PaperIndex(Settings(data_dir=tmp_path, chroma_url=url), embeddings, create=False)
