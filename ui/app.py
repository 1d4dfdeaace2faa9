"""The web chat: the only module that imports gradio."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from rag.settings import Settings


def build_app(assistant: Any) -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from ui.handlers import chat_stream

    def respond(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        yield from chat_stream(assistant, message, history)

    return gr.ChatInterface(respond, title="paperchat", api_name="chat")


def serve(settings: Settings) -> None:
    from rag.pipeline import Assistant

    assistant = Assistant.open(settings, build_if_missing=True)
    app = build_app(assistant)
    app.queue(default_concurrency_limit=settings.ui.concurrency)
    app.launch(server_name=settings.ui.host, server_port=settings.ui.port, share=False)
