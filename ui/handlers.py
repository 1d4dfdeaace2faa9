"""Chat handlers as plain generators over rag's answer API (testable without gradio)."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import Any

from rag.errors import PaperchatError
from rag.types import Answer, Citation, Turn


def history_turns(history: Sequence[dict[str, Any]]) -> list[Turn]:
    return [
        Turn(role=m["role"], content=str(m.get("content") or ""))
        for m in history
        if m.get("role") in ("user", "assistant")
    ]


def sources_markdown(citations: Sequence[Citation]) -> str:
    lines = [f"[{c.n}] [{html.escape(c.title)}]({c.url})" for c in citations]
    return "\n\n**Sources**\n\n" + "\n\n".join(lines) if lines else ""


def chat_stream(assistant: Any, message: str, history: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Yields the growing reply: streamed answer text, then the numbered source links."""
    shown = ""
    try:
        for event in assistant.stream(message, history_turns(history)):
            if isinstance(event, Answer):
                yield html.escape(event.text) + sources_markdown(event.citations)
            else:
                shown += event
                yield html.escape(shown)
    except PaperchatError as exc:
        yield f"⚠️ {html.escape(str(exc))}"
