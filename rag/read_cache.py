"""What a reader keeps of the store between questions: records read for one generation.

Every question reads the whole-abstract vectors of its candidate pool and the records of the
papers it returns, mostly the same ones question after question; from Chroma that was about
a quarter of a warm ask (profiled on the bundled corpus). Kept per generation of the index
(rag.derived's stamp, the one BM25 is read at), so a paper ingested again is read afresh
once the index's generation changes, as BM25 is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Value = TypeVar("Value")


class GenerationCache(Generic[Value]):
    """The most recently used `capacity` values by id, dropped when the generation changes."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._generation: str | None = None
        self._values: OrderedDict[str, Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        generation: str,
        ids: Sequence[str],
        read: Callable[[list[str]], dict[str, Value]],
    ) -> dict[str, Value]:
        """The value of each of `ids` that exists (in the order asked, each once), reading
        the ones not kept with `read` in one call."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            if generation != self._generation:
                self._values.clear()
                self._generation = generation
            found = {i: self._values[i] for i in wanted if i in self._values}
            for i in found:
                self._values.move_to_end(i)
        missing = [i for i in wanted if i not in found]
        if missing:
            got = read(missing)
            found.update(got)
            with self._lock:
                if generation == self._generation:  # not while another generation is read
                    self._values.update(got)
                    while len(self._values) > self._capacity:
                        self._values.popitem(last=False)
        return {i: found[i] for i in wanted if i in found}
