"""Shared fixtures: a clean environment per test, sockets off for unit tests, and the real
bundled model and index built once per session for integration tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_socket import disable_socket, socket_allow_hosts

from rag.settings import Settings

REAL_COMPONENT_MARKERS = ("integration", "browser", "live")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if any(item.get_closest_marker(m) for m in REAL_COMPONENT_MARKERS):
        if not item.get_closest_marker("live"):
            socket_allow_hosts(["127.0.0.1", "localhost", "::1"], allow_unix_socket=True)
    else:
        disable_socket(allow_unix_socket=True)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export per test session, never in the user's cache."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path) -> Iterator[Path]:
    """No OPENAI_*/PAPERCHAT_* leaks in; data and caches go to tmp paths."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PAPERCHAT_")):
            monkeypatch.delenv(name)
    data = tmp_path / "paperchat-data"
    monkeypatch.setenv("PAPERCHAT_DATA_DIR", str(data))
    monkeypatch.setenv("PAPERCHAT_EMBEDDING_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    yield data


@pytest.fixture(scope="session")
def embeddings(model_cache: Path):  # type: ignore[no-untyped-def]
    """The real bundled model on the default backend, loaded once per test session."""
    from rag.embeddings import LocalEmbeddings
    from rag.settings import EmbeddingSettings

    return LocalEmbeddings.from_settings(EmbeddingSettings(cache_dir=model_cache))


@pytest.fixture(scope="session")
def bundled_db(tmp_path_factory: pytest.TempPathFactory, embeddings) -> Path:  # type: ignore[no-untyped-def]
    """A real Chroma index of the bundled corpus, built once the way `make chat` builds it
    (Assistant.open with build_if_missing); tests must not write to it."""
    from rag.pipeline import Assistant

    root = tmp_path_factory.mktemp("bundled")
    settings = Settings(data_dir=root, db_dir=root / "db")
    progress: list[tuple[int, int]] = []
    Assistant.open(
        settings,
        build_if_missing=True,
        embeddings=embeddings,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    (root / "progress.json").write_text(json.dumps(progress))
    return root / "db"


@pytest.fixture
def assistant(bundled_db: Path, embeddings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An Assistant over the shared bundled index (read-only use)."""
    from rag.pipeline import Assistant

    settings = Settings(data_dir=tmp_path / "data", db_dir=bundled_db)
    return Assistant.open(settings, embeddings=embeddings)
