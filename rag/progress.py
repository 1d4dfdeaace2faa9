"""Progress bars for long work (ingest), on stderr so --json output stays clean."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def progress_bar(desc: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr showing papers/s and time left; silent when stderr is no terminal."""
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            # A resumed ingest first reports the papers it skips: start there, so the rate
            # and time left count only papers that are really being embedded.
            bar = tqdm(
                total=total, initial=done, desc=desc, unit="paper", file=sys.stderr, disable=None
            )
        else:
            bar.update(done - bar.n)  # update() rate-limits redraws; refresh() would not

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close
