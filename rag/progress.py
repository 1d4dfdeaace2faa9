"""Progress for long work (ingest), on stderr so --json output stays clean.

On a terminal: a tqdm bar with papers/s and the time left. Otherwise (a log file, nohup,
CI) a plain line every LOG_EVERY_S seconds and at the end, so an hour-long ingest still
shows how far it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

LOG_EVERY_S = 30.0


def progress_bar(
    desc: str, unit: str = "paper"
) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(update(done, total), close()) for `desc`; a bar on a terminal, log lines elsewhere."""
    if not sys.stderr.isatty():
        return _log_lines(desc, unit)
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            # A resumed ingest first reports the papers it skips: start there, so the rate
            # and time left count only papers that are really being embedded.
            bar = tqdm(total=total, initial=done, desc=desc, unit=unit, file=sys.stderr)
        else:
            bar.update(done - bar.n)  # update() rate-limits redraws; refresh() would not

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _log_lines(desc: str, unit: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    state: dict[str, Any] = {}

    def line(done: int, total: int) -> None:
        elapsed = time.monotonic() - state["start"]
        worked = done - state["first"]
        rate = worked / elapsed if elapsed > 0 else 0.0
        left = f", {_duration((total - done) / rate)} left" if rate and done < total else ""
        print(
            f"{desc}: {done:,}/{total:,} {unit}s ({rate:.1f}/s{left})", file=sys.stderr, flush=True
        )
        state["logged"] = time.monotonic()
        state["printed"] = (done, total)

    def update(done: int, total: int) -> None:
        if not state:
            # As for the bar: the first call reports skipped papers, the rate starts after.
            state.update(start=time.monotonic(), first=done, logged=time.monotonic())
        state["last"] = (done, total)
        if time.monotonic() - state["logged"] >= LOG_EVERY_S:
            line(done, total)

    def close() -> None:
        last = state.get("last")
        if last and last[0] > state["first"] and last != state.get("printed"):
            line(*last)

    return update, close


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
