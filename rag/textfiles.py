"""Reading a user's file as UTF-8 text, and JSON Lines line by line, with errors that name the
file and the byte or line at fault (corpus files, evaluation sets and history files alike).

The caller picks the error class (a PaperchatError) and adds the sentence saying what to do,
so each command keeps its own advice while the reading is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import PaperchatError


def read_utf8(
    path: Path,
    error: type[PaperchatError],
    *,
    what: str = "",
    not_utf8_hint: str = "",
    unreadable_hint: str = "",
) -> str:
    """The file's text; `error` if it cannot be read or is not UTF-8 (naming the first bad byte).

    Messages name the file as `what` (e.g. "the history file") followed by its path, and end
    with `not_utf8_hint` or `unreadable_hint`, a sentence saying what to do.
    """
    name = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        subject = name[:1].upper() + name[1:] if what else name  # a path keeps its case
        raise error(
            _sentences(f"{subject} is not UTF-8 text (byte {exc.start}).", not_utf8_hint)
        ) from exc
    except OSError as exc:
        raise error(_sentences(f"Cannot read {name}: {exc.strerror}.", unreadable_hint)) from exc


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line of a JSON Lines file, decoded on demand so a reader can skip it."""

    path: Path
    number: int  # counted from 1, blank lines included
    text: str

    @property
    def where(self) -> str:
        """"FILE, line N", which starts every message about this line."""
        return f"{self.path}, line {self.number}"

    def decode(self, error: type[PaperchatError], hint: str = "") -> Any:
        """The line's JSON value; `error` naming the file and line if it is not JSON."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise error(_sentences(f"{self.where}: not valid JSON ({exc.msg}).", hint)) from exc


def read_json_lines(
    path: Path, error: type[PaperchatError], *, not_utf8_hint: str = "", unreadable_hint: str = ""
) -> list[JsonLine]:
    """The non-blank lines of a JSON Lines file, read as by `read_utf8`."""
    text = read_utf8(path, error, not_utf8_hint=not_utf8_hint, unreadable_hint=unreadable_hint)
    return [
        JsonLine(path, number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _sentences(message: str, hint: str) -> str:
    return f"{message} {hint}" if hint else message
