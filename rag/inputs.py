"""Checking what users send: questions and conversation histories. Light to import (the
web chat's handlers and the eval-set reader need it before any model or store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.types import Turn


def validate_question(question: str, max_chars: int) -> str:
    text = (question or "").strip()
    if not text:
        raise InputError("The question is empty. Type a question about the papers.")
    if len(text) > max_chars:
        raise InputError(
            f"The question is {len(text)} characters long; the limit is {max_chars}. "
            "Shorten it to the part you want answered."
        )
    return text


def parse_history(raw: Any) -> list[Turn]:
    """A JSON list of {"role": "user"|"assistant", "content": str} -> turns."""
    if not isinstance(raw, list):
        raise InputError('History must be a JSON list of {"role", "content"} objects.')
    turns = []
    for n, item in enumerate(raw, start=1):
        if (
            not isinstance(item, dict)
            or item.get("role") not in ("user", "assistant")
            or not isinstance(item.get("content"), str)
        ):
            raise InputError(
                f'History item {n} must be {{"role": "user" or "assistant", "content": "..."}}.'
            )
        turns.append(Turn(role=item["role"], content=item["content"]))
    return turns


def load_history(path: Path) -> list[Turn]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"Cannot read the history file {path}: {exc.strerror}.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"The history file {path} is not valid JSON: {exc}.") from exc
    return parse_history(raw)
