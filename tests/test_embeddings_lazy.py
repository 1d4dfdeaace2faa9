"""LocalEmbeddings loads its model lazily or in the background, and callers wait for it."""

import threading
from typing import Any

import pytest

from rag.errors import InputError


def test_embeddings_load_lazily_and_wait_for_the_model() -> None:
    import numpy as np

    from rag.embeddings import LocalEmbeddings

    release = threading.Event()
    loads: list[int] = []

    class Model:
        def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
            return np.ones((len(texts), 3), dtype=np.float32)

    def factory() -> Model:
        loads.append(1)
        release.wait(5)
        return Model()

    lazy = LocalEmbeddings(encoder_factory=factory)
    assert not lazy.ready and loads == []  # nothing loads before start_loading() or first use
    lazy.start_loading()
    lazy.start_loading()
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(lazy.embed_query("q")))
    waiter.start()
    waiter.join(0.2)
    assert results == [] and not lazy.ready
    release.set()
    waiter.join(5)
    assert results == [[1.0, 1.0, 1.0]] and lazy.ready and loads == [1]
    assert lazy.embed_array(["a", "b"]).shape == (2, 3)


def test_embeddings_reraise_a_failed_load() -> None:
    from rag.embeddings import LocalEmbeddings

    def factory() -> Any:
        raise InputError("no model")

    lazy = LocalEmbeddings(encoder_factory=factory)
    with pytest.raises(InputError, match="no model"):
        lazy.embed_query("q")
