"""rag.read_cache: records kept between questions, read afresh when the index changes."""

from __future__ import annotations

from rag.read_cache import GenerationCache


class Store:
    """Counts what is read; ids starting with "gone" do not exist."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.reads: list[list[str]] = []

    def read(self, ids: list[str]) -> dict[str, str]:
        self.reads.append(ids)
        return {i: f"{i}@{self.version}" for i in ids if not i.startswith("gone")}


def test_only_papers_not_kept_are_read_and_the_answer_keeps_the_order_asked() -> None:
    store, cache = Store(), GenerationCache[str](capacity=10)
    assert cache.get("g1", ["a", "b"], store.read) == {"a": "a@v1", "b": "b@v1"}
    got = cache.get("g1", ["c", "b", "a", "c"], store.read)
    assert list(got) == ["c", "b", "a"]  # each once, as asked
    assert store.reads == [["a", "b"], ["c"]]


def test_a_missing_paper_is_left_out_and_asked_again() -> None:
    store, cache = Store(), GenerationCache[str](capacity=10)
    assert cache.get("g1", ["gone1", "a"], store.read) == {"a": "a@v1"}
    cache.get("g1", ["gone1"], store.read)
    assert store.reads == [["gone1", "a"], ["gone1"]]


def test_a_new_generation_reads_every_paper_afresh() -> None:
    store, cache = Store(), GenerationCache[str](capacity=10)
    cache.get("g1", ["a"], store.read)
    store.version = "v2"  # the paper was ingested again
    assert cache.get("g1", ["a"], store.read) == {"a": "a@v1"}  # same generation: kept
    assert cache.get("g2", ["a"], store.read) == {"a": "a@v2"}


def test_the_least_recently_used_go_beyond_capacity() -> None:
    store, cache = Store(), GenerationCache[str](capacity=2)
    cache.get("g1", ["a", "b"], store.read)
    cache.get("g1", ["a"], store.read)  # a is now the most recent
    cache.get("g1", ["c"], store.read)  # b goes
    cache.get("g1", ["a", "b"], store.read)
    assert store.reads[-1] == ["b"]
