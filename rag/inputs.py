"""Checking what users send: questions and conversation histories. Light to import (the
web chat's handlers and the eval-set reader need it before any model or store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.text import describe_invalid, invalid_text_at
from rag.textfiles import read_utf8
from rag.types import Turn


def validate_question(question: Any, max_chars: int) -> str:
    """The question stripped; InputError (saying what to do) for anything that is not a
    non-empty question of at most `max_chars` characters of valid text."""
    if question is not None and not isinstance(question, str):
        raise InputError(
            f"The question must be text, not {_json_type(question)}. Send it as a string."
        )
    text = (question or "").strip()
    at = invalid_text_at(text)
    if at is not None:
        raise InputError(
            f"The question holds {describe_invalid(text, at)} at character {at + 1}. "
            "Retype it as plain text (UTF-8)."
        )
    if not text:
        raise InputError("The question is empty. Type a question about the papers.")
    if len(text) > max_chars:
        raise InputError(
            f"The question is {len(text)} characters long; the limit is {max_chars}. "
            "Shorten it to the part you want answered."
        )
    return text


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


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
        at = invalid_text_at(item["content"])
        if at is not None:
            raise InputError(
                f'History item {n}: "content" holds {describe_invalid(item["content"], at)} '
                f"at character {at + 1}. Remove it; history must be valid text."
            )
        turns.append(Turn(role=item["role"], content=item["content"]))
    return turns


def load_history(path: Path) -> list[Turn]:
    """The turns in a JSON history file; InputError naming the file for anything wrong."""
    text = read_utf8(path, InputError, what="the history file", not_utf8_hint="Save it as UTF-8.")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"The history file {path} is not valid JSON: {exc}.") from exc
    try:
        return parse_history(raw)
    except InputError as exc:
        raise InputError(f"The history file {path}: {exc}") from exc
