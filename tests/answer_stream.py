"""What `Assistant.stream` yields for one question, for the tests of the answer paths."""

from __future__ import annotations

from typing import Any

from rag.pipeline import Assistant
from rag.types import Answer


def stream_answer(assistant: Assistant, question: str, **kwargs: Any) -> tuple[list[str], Answer]:
    """(every piece of text shown, in order; the final Answer) for `question`."""
    pieces: list[str] = []
    answer = None
    for event in assistant.stream(question, **kwargs):
        if isinstance(event, Answer):
            answer = event
        else:
            pieces.append(event)
    assert answer is not None, "the stream ended without an Answer"
    return pieces, answer
