"""The web chat: the only module that imports gradio. Behaviour lives in ui.handlers.

No `from __future__ import annotations` here: gradio reads the /ask endpoint's schema from
the real type hints of its function.
"""

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rag.errors import PaperchatError
from rag.settings import Settings
from ui import render
from ui.handlers import UPLOAD_SUFFIXES, ChatService, ChatView, parse_auth
from ui.page_style import CSS, FOCUS_ON_WIDE_SCREENS, SYSTEM_FONTS, SYSTEM_MONO_FONTS

# Seconds after the server starts before the index and model load if no page was opened.
BACKGROUND_START_DELAY_S = 2.0

MODE_CHOICES = [("Auto", "auto"), ("Extractive", "extractive"), ("LLM", "llm")]
MODE_CHOICES_LLM_OFF = [*MODE_CHOICES[:2], ("LLM (not configured)", "llm")]
LLM_OFF_INFO = (
    "LLM mode needs an OpenAI-compatible endpoint: set PAPERCHAT_LLM_MODEL (and "
    "OPENAI_BASE_URL / OPENAI_API_KEY) and restart. Until then answers are extractive."
)


class _SkipStubRegeneration(importlib.abc.MetaPathFinder):
    """Loads gradio.component_meta with its `.pyi` stub regeneration switched off.

    On every import, gradio re-derives the type stub of each of its ~80 component classes by
    parsing the component's source file (gradio.component_meta.create_or_modify_pyi): 1.1 s
    of the 1.8 s `import gradio` takes here. The stubs ship with the package and serve only
    type checkers, so nothing at run time changes. If a gradio release renames the function,
    this does nothing and the import is just slower.
    """

    TARGET = "gradio.component_meta"

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = spec.loader if spec else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def import_gradio() -> None:
    """`import gradio`, with analytics off and without its start-up stub regeneration.

    Imported on first use, not at module level, so `serve` checks its settings first.
    """
    # Read by gradio when it is imported: analytics off.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    if "gradio" not in sys.modules:
        finder = _SkipStubRegeneration()
        sys.meta_path.insert(0, finder)
        try:
            importlib.import_module("gradio")
        finally:
            sys.meta_path.remove(finder)


@dataclass
class _Page:
    """The chat page's components that events read or write."""

    intro: Any
    state: Any  # the conversation's exchanges, per browser session
    chatbot: Any
    question: Any
    ask: Any
    status: Any
    sources: Any
    comment: Any
    export: Any
    export_bib: Any
    clear: Any
    feedback_status: Any
    mode: Any
    k: Any
    upload: Any
    ingest_status: Any

    @property
    def chat_inputs(self) -> list[Any]:
        return [self.question, self.state, self.mode, self.k]

    @property
    def chat_outputs(self) -> list[Any]:
        return [self.chatbot, self.state, self.status, self.sources, self.question, self.export,
                self.export_bib]  # fmt: skip


def build_app(
    assistant: Any,
    settings: Settings | None = None,
    on_page_load: Callable[[], None] | None = None,
) -> Any:
    """The chat page over an Assistant (or a ChatService). `on_page_load` runs after each
    page load has been answered."""
    import_gradio()
    import gradio as gr  # already loaded: a name lookup, typed for mypy

    if isinstance(assistant, ChatService):
        service = assistant
    else:
        service = ChatService(settings or assistant.settings, assistant)

    # delete_cache: uploads and exported files in gradio's cache go after a day.
    with gr.Blocks(
        title="paperchat", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        page = _layout(service)
        # Events in this order: gradio numbers the page's functions by it.
        _wire_chat(page, service)
        _wire_feedback(page, service)
        _wire_clear(page)
        _wire_refresh(demo, page, service, on_page_load)
        _add_ask_api(service)

    demo.queue(default_concurrency_limit=service.settings.ui.concurrency)
    # launch() serves the OpenAI-compatible /v1 routes over the same service.
    demo.paperchat_service = service
    return demo


# ---- layout -----------------------------------------------------------------------------


def _layout(service: ChatService) -> _Page:
    """The page top to bottom: title and intro, the chat beside its sources, then feedback
    and export beside the settings and upload."""
    import gradio as gr

    gr.Markdown("# paperchat\nQuestions about research papers, answered from their abstracts.")
    # Rendered into the page itself, so the intro is there on first paint; the load event
    # refreshes it (and the examples) for pages opened after an upload.
    intro = gr.Markdown(service.intro_markdown(), elem_id="pc-intro")
    state = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot, question, ask, status = _chat_column(service)
        # The sources come right after the answer in document order, so a phone (where
        # the columns stack) shows the evidence before the feedback and export controls.
        with gr.Column(scale=2):
            sources = gr.HTML(render.SOURCES_EMPTY, elem_id="pc-sources")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            comment, export, export_bib, clear, feedback_status = _feedback_column()
        with gr.Column(scale=2):
            mode, k = _settings_panel(service)
            upload, ingest_status = _upload_panel()
    return _Page(
        intro=intro, state=state, chatbot=chatbot, question=question, ask=ask, status=status,
        sources=sources, comment=comment, export=export, export_bib=export_bib, clear=clear,
        feedback_status=feedback_status, mode=mode, k=k, upload=upload,
        ingest_status=ingest_status,
    )  # fmt: skip


def _chat_column(service: ChatService) -> tuple[Any, Any, Any, Any]:
    """-> (chatbot, question box, Ask button, status line)."""
    import gradio as gr

    chatbot = gr.Chatbot(
        value=[],
        elem_id="pc-chat",
        label="Conversation",
        height=560,
        latex_delimiters=[],
        sanitize_html=True,
        allow_tags=False,
        feedback_options=("Like", "Dislike"),
        buttons=["copy"],
        placeholder="Ask a question below, or click an example.",
        examples=[{"text": q} for q in service.examples()] or None,  # type: ignore[arg-type]
    )
    with gr.Row():
        # No autofocus: on a phone it scrolls the page past the title and intro to the
        # input. FOCUS_ON_WIDE_SCREENS focuses it where that cannot happen.
        question = gr.Textbox(
            placeholder="Ask about the papers… (Enter to send)",
            show_label=False,
            lines=1,
            max_lines=6,
            scale=6,
            elem_id="pc-question",
        )
        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="pc-ask")
    status = gr.Markdown("", elem_id="pc-status")
    return chatbot, question, ask, status


def _feedback_column() -> tuple[Any, Any, Any, Any, Any]:
    """-> (comment box, Markdown export, BibTeX export, Clear button, feedback status)."""
    import gradio as gr

    with gr.Row():
        comment = gr.Textbox(
            label="Comment to send with your thumbs up / down (optional)",
            lines=1,
            scale=4,
            elem_id="pc-comment",
        )
        export = gr.DownloadButton(
            "Export as Markdown", value=None, interactive=False, scale=1, elem_id="pc-export"
        )
        export_bib = gr.DownloadButton(
            "Export citations (.bib)",
            value=None,
            interactive=False,
            scale=1,
            elem_id="pc-export-bib",
        )
        clear = gr.Button("Clear", scale=1, elem_id="pc-clear")
    feedback_status = gr.Markdown("", elem_id="pc-feedback")
    return comment, export, export_bib, clear, feedback_status


def _settings_panel(service: ChatService) -> tuple[Any, Any]:
    """-> (answer mode, k). LLM mode shows as not configured without an endpoint."""
    import gradio as gr

    settings = service.settings
    llm_on = service.llm_configured
    default_mode = settings.answer.mode if (llm_on or settings.answer.mode != "llm") else "auto"
    with gr.Accordion("Settings", open=True):
        mode = gr.Radio(
            MODE_CHOICES if llm_on else MODE_CHOICES_LLM_OFF,
            value=default_mode,
            label="Answer mode",
            info=None if llm_on else LLM_OFF_INFO,
            elem_id="pc-mode",
            elem_classes=None if llm_on else ["pc-llm-off"],
        )
        k = gr.Slider(
            1, 20, value=settings.retrieval.k, step=1, label="Papers to use (k)", elem_id="pc-k"
        )
    return mode, k


def _upload_panel() -> tuple[Any, Any]:
    """-> (file upload, ingest status)."""
    import gradio as gr

    with gr.Accordion("Add papers", open=False):
        upload = gr.File(
            label="BibTeX (.bib), RIS (.ris), Zotero CSL-JSON (.json), JSON Lines "
            "(.jsonl: title, abstract, url…) or a listing page (.txt)",
            file_types=list(UPLOAD_SUFFIXES),
            type="filepath",
            elem_id="pc-upload",
        )
        ingest_status = gr.Markdown("", elem_id="pc-ingest-status")
    return upload, ingest_status


# ---- events -----------------------------------------------------------------------------


def _wire_chat(page: _Page, service: ChatService) -> None:
    """Asking (Enter, the Ask button or an example) streams the answer into the page."""
    import gradio as gr

    def view_outputs(view: ChatView) -> tuple[Any, ...]:
        path = service.write_export(view.exchanges) if view.done else None
        bib = service.write_bibtex_export(view.exchanges) if view.done else None
        if view.done:
            download = gr.DownloadButton(value=path, interactive=path is not None)
            download_bib = gr.DownloadButton(value=bib, interactive=bib is not None)
        else:
            download = download_bib = gr.skip()
        return (view.messages, view.exchanges, view.status, view.sources, view.textbox,
                download, download_bib)

    def respond(message: str, exchanges: list[Any], mode_value: str, k_value: float
                ) -> Iterator[tuple[Any, ...]]:
        for view in service.respond(message, exchanges, mode_value, int(k_value)):
            yield view_outputs(view)

    chat_options: dict[str, Any] = {
        "concurrency_limit": service.settings.ui.concurrency,
        "concurrency_id": "chat",
        "api_visibility": "private",
        "show_progress": "hidden",
    }
    page.question.submit(respond, page.chat_inputs, page.chat_outputs, **chat_options)
    page.ask.click(respond, page.chat_inputs, page.chat_outputs, **chat_options)

    def pick_example(data: gr.SelectData) -> str:
        value = data.value
        return str(value.get("text", "")) if isinstance(value, dict) else str(value)

    page.chatbot.example_select(
        pick_example, None, page.question, api_visibility="private"
    ).then(respond, page.chat_inputs, page.chat_outputs, **chat_options)


def _wire_feedback(page: _Page, service: ChatService) -> None:
    """Thumbs up / down record a vote; clicking an answer shows its sources again."""
    import gradio as gr

    def on_like(exchanges: list[Any], text: str, data: gr.LikeData) -> tuple[str, str]:
        index = data.index if isinstance(data.index, int) else data.index[0]
        return service.vote(exchanges, index, data.liked, text), ""

    page.chatbot.like(on_like, [page.state, page.comment], [page.feedback_status, page.comment],
                      api_visibility="private")  # fmt: skip

    def on_select(exchanges: list[Any], data: gr.SelectData) -> str:
        index = data.index if isinstance(data.index, int) else data.index[0]
        return service.sources_for_message(exchanges, index)

    page.chatbot.select(on_select, [page.state], [page.sources], api_visibility="private")


def _wire_clear(page: _Page) -> None:
    """Clear (and the chat's own trash icon) forget the conversation, not just hide it."""
    import gradio as gr

    def on_clear() -> tuple[Any, ...]:
        return ([], [], "", render.SOURCES_EMPTY, "", "",
                gr.DownloadButton(value=None, interactive=False),
                gr.DownloadButton(value=None, interactive=False))  # fmt: skip

    outputs = [page.chatbot, page.state, page.status, page.sources, page.question,
               page.feedback_status, page.export, page.export_bib]  # fmt: skip
    page.clear.click(on_clear, None, outputs, api_visibility="private")
    page.chatbot.clear(on_clear, None, outputs, api_visibility="private")


def _wire_refresh(
    demo: Any, page: _Page, service: ChatService, on_page_load: Callable[[], None] | None
) -> None:
    """An upload adds papers and updates the intro; each page load refreshes the intro and
    the examples (a page opened after an upload), then runs `on_page_load`."""
    import gradio as gr

    def on_upload(path: str | None) -> tuple[str, str]:
        return service.ingest(path), service.intro_markdown()

    page.upload.upload(on_upload, [page.upload], [page.ingest_status, page.intro],
                       api_visibility="private", concurrency_limit=1, concurrency_id="ingest")  # fmt: skip

    def on_load() -> tuple[Any, ...]:
        examples = [{"text": q} for q in service.examples()]
        return service.intro_markdown(), gr.Chatbot(examples=examples or None)  # type: ignore[arg-type]

    # No progress overlay: the intro is already there, the load only refreshes it.
    loaded = demo.load(
        on_load, None, [page.intro, page.chatbot], api_visibility="private",
        show_progress="hidden",
    )  # fmt: skip
    if on_page_load is not None:
        loaded.then(on_page_load, None, None, api_visibility="private", queue=False)


def _add_ask_api(service: ChatService) -> None:
    """The public /ask endpoint (gradio_client, curl): one question, the JSON answer."""
    import gradio as gr

    def ask_api(question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        """Answer a question from the indexed abstracts.

        question: the question, in plain language.
        history: the conversation so far, a list of {"role": "user"|"assistant",
            "content": str}; may be empty.
        Returns the same object as `paperchat ask --json`: answer, abstained, citations,
        retrieved, mode, timings_ms and, when there is one, note; plus `bibtex`, the
        cited papers as BibTeX entries ('' when none is cited).
        """
        try:
            return service.ask_json(question, history)
        except PaperchatError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    concurrency = service.settings.ui.concurrency
    gr.api(ask_api, api_name="ask", concurrency_limit=concurrency, concurrency_id="chat")


def theme() -> Any:
    """Gradio's default look with the system font stacks (see SYSTEM_FONTS)."""
    import_gradio()
    import gradio as gr

    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(SYSTEM_MONO_FONTS))


def launch(demo: Any, settings: Settings, **kwargs: Any) -> Any:
    """Start serving `demo` with paperchat's fixed safety options (no share link, login when
    PAPERCHAT_AUTH is set); extra keyword arguments go to gradio's launch()."""
    secret = settings.auth.get_secret_value() if settings.auth else None
    auth = parse_auth(secret)
    options: dict[str, Any] = {
        "server_name": settings.ui.host,
        "server_port": settings.ui.port,
        "share": False,
        "auth": auth,
        "auth_message": "paperchat: log in with the PAPERCHAT_AUTH credentials." if auth else None,
        "show_error": False,
        "css": CSS,
        "theme": theme(),
        "js": FOCUS_ON_WIDE_SCREENS,
        "footer_links": ["api"],
        "run_history": False,
        "ssr_mode": False,
        "mcp_server": False,
    }
    service = getattr(demo, "paperchat_service", None)
    if service is not None:
        from ui.openai_api import api_routes

        # Routes given to the FastAPI app gradio creates, so they exist before it serves.
        options["app_kwargs"] = {"routes": api_routes(service, settings)}
    options.update(kwargs)
    options["share"] = False
    return demo.launch(**options)


def serve(settings: Settings) -> None:
    """`paperchat serve`: open (on a first run, build) the index and serve until Ctrl-C."""
    from ui.startup import open_assistant

    parse_auth(settings.auth.get_secret_value() if settings.auth else None)  # fail fast
    assistant, summary, start_background = open_assistant(settings)
    demo = build_app(
        ChatService(settings, assistant, summary=summary), on_page_load=start_background
    )
    where = f"http://{settings.ui.host}:{settings.ui.port}"
    launch(demo, settings, quiet=True, prevent_thread_lock=True)
    print(f"paperchat: serving on {where}, OpenAI-compatible API at {where}/v1 (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    # Opening the index and loading the model compete with serving the first page for the
    # interpreter, so they start when that page has loaded, or after a moment when nobody
    # opens one.
    timer = threading.Timer(BACKGROUND_START_DELAY_S, start_background)
    timer.daemon = True
    timer.start()
    demo.block_thread()
