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
from typing import Any

from rag.errors import PaperchatError
from rag.settings import Settings
from ui import render
from ui.handlers import UPLOAD_SUFFIXES, ChatService, ChatView, parse_auth

CSS = """
#pc-intro p { margin: 0.2em 0 0.6em; }
#pc-status { min-height: 1.6em; color: var(--body-text-color-subdued); font-size: 0.92em; }
.pc-sources h3 { margin: 0 0 0.5em; font-size: 1.05em; }
.pc-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.55em 0.75em; margin-bottom: 0.6em; }
.pc-source-head { font-weight: 600; margin-bottom: 0.3em; }
.pc-source .pc-n { color: var(--color-accent); }
.pc-score { font-weight: 400; font-size: 0.82em; color: var(--body-text-color-subdued);
  margin-left: 0.4em; white-space: nowrap; }
.pc-abstract { font-size: 0.88em; line-height: 1.45; margin: 0; }
.pc-abstract mark { background: #fff1a8; color: inherit; padding: 0 1px; border-radius: 2px; }
.pc-uncited summary { cursor: pointer; font-size: 0.92em; }
.pc-uncited li { font-size: 0.88em; margin: 0.35em 0; }
.pc-byline { font-weight: 400; font-size: 0.86em; color: var(--body-text-color-subdued);
  margin-left: 0.4em; }
.pc-search { font-weight: 400; font-size: 0.75em; border: 1px solid var(--border-color-primary);
  border-radius: 4px; padding: 0 4px; margin-left: 0.3em; }
.pc-empty { color: var(--body-text-color-subdued); font-size: 0.92em; }
/* Side by side with the chat, the sources scroll within the chat's height. */
@media (min-width: 900px) { #pc-sources { max-height: 640px; overflow-y: auto; } }
/* LLM mode cannot be picked when no endpoint is configured; the info text says why. */
.pc-llm-off label:has(input[value="llm"]) { opacity: 0.45; pointer-events: none; }
"""

# The system's own fonts: nothing is fetched (the page works offline) and bold text uses the
# same family's bold face. Gradio's default theme ships Source Sans Pro in weights 400 and 600
# only, so bold (700) text mixed synthesized and fallback glyphs.
SYSTEM_FONTS = (
    "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans",
    "Liberation Sans", "DejaVu Sans", "Arial", "sans-serif",
)  # fmt: skip
SYSTEM_MONO_FONTS = (
    "ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono",
    "DejaVu Sans Mono", "monospace",
)  # fmt: skip

# Focus the question box on load only on wide screens: on a phone, focusing scrolls the page
# down to the box and opens the keyboard over the intro.
FOCUS_ON_WIDE_SCREENS = """
() => {
  if (window.matchMedia('(min-width: 900px)').matches) {
    const box = document.querySelector('#pc-question textarea');
    if (box) box.focus({ preventScroll: true });
  }
}
"""

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
    settings = service.settings
    concurrency = settings.ui.concurrency
    llm_on = service.llm_configured
    default_mode = settings.answer.mode if (llm_on or settings.answer.mode != "llm") else "auto"

    # delete_cache: uploads and exported files in gradio's cache go after a day.
    with gr.Blocks(
        title="paperchat", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        gr.Markdown("# paperchat\nQuestions about research papers, answered from their abstracts.")
        # Rendered into the page itself, so the intro is there on first paint; the load event
        # below refreshes it (and the examples) for pages opened after an upload.
        intro = gr.Markdown(service.intro_markdown(), elem_id="pc-intro")
        state = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
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
                    # No autofocus: on a phone it scrolls the page past the title and intro
                    # to the input. FOCUS_ON_WIDE_SCREENS focuses it where that cannot happen.
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
            # The sources come right after the answer in document order, so a phone (where
            # the columns stack) shows the evidence before the feedback and export controls.
            with gr.Column(scale=2):
                sources = gr.HTML(render.SOURCES_EMPTY, elem_id="pc-sources")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                with gr.Row():
                    comment = gr.Textbox(
                        label="Comment to send with your thumbs up / down (optional)",
                        lines=1,
                        scale=4,
                        elem_id="pc-comment",
                    )
                    export = gr.DownloadButton(
                        "Export as Markdown",
                        value=None,
                        interactive=False,
                        scale=1,
                        elem_id="pc-export",
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
            with gr.Column(scale=2):
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
                        1,
                        20,
                        value=settings.retrieval.k,
                        step=1,
                        label="Papers to use (k)",
                        elem_id="pc-k",
                    )
                with gr.Accordion("Add papers", open=False):
                    upload = gr.File(
                        label="BibTeX (.bib), RIS (.ris), Zotero CSL-JSON (.json), JSON Lines "
                        "(.jsonl: title, abstract, url…) or a listing page (.txt)",
                        file_types=list(UPLOAD_SUFFIXES),
                        type="filepath",
                        elem_id="pc-upload",
                    )
                    ingest_status = gr.Markdown("", elem_id="pc-ingest-status")

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

        chat_inputs = [question, state, mode, k]
        chat_outputs = [chatbot, state, status, sources, question, export, export_bib]
        chat_options: dict[str, Any] = {
            "concurrency_limit": concurrency,
            "concurrency_id": "chat",
            "api_visibility": "private",
            "show_progress": "hidden",
        }
        question.submit(respond, chat_inputs, chat_outputs, **chat_options)
        ask.click(respond, chat_inputs, chat_outputs, **chat_options)

        def pick_example(data: gr.SelectData) -> str:
            value = data.value
            return str(value.get("text", "")) if isinstance(value, dict) else str(value)

        chatbot.example_select(pick_example, None, question, api_visibility="private").then(
            respond, chat_inputs, chat_outputs, **chat_options
        )

        def on_like(exchanges: list[Any], text: str, data: gr.LikeData) -> tuple[str, str]:
            index = data.index if isinstance(data.index, int) else data.index[0]
            return service.vote(exchanges, index, data.liked, text), ""

        chatbot.like(on_like, [state, comment], [feedback_status, comment],
                     api_visibility="private")

        def on_select(exchanges: list[Any], data: gr.SelectData) -> str:
            index = data.index if isinstance(data.index, int) else data.index[0]
            return service.sources_for_message(exchanges, index)

        chatbot.select(on_select, [state], [sources], api_visibility="private")

        def on_clear() -> tuple[Any, ...]:
            return ([], [], "", render.SOURCES_EMPTY, "", "",
                    gr.DownloadButton(value=None, interactive=False),
                    gr.DownloadButton(value=None, interactive=False))

        clear_outputs = [chatbot, state, status, sources, question, feedback_status, export,
                         export_bib]
        clear.click(on_clear, None, clear_outputs, api_visibility="private")
        # The chat's own trash icon must forget the conversation too, not just hide it.
        chatbot.clear(on_clear, None, clear_outputs, api_visibility="private")

        def on_upload(path: str | None) -> tuple[str, str]:
            return service.ingest(path), service.intro_markdown()

        upload.upload(on_upload, [upload], [ingest_status, intro], api_visibility="private",
                      concurrency_limit=1, concurrency_id="ingest")

        def on_load() -> tuple[Any, ...]:
            examples = [{"text": q} for q in service.examples()]
            return service.intro_markdown(), gr.Chatbot(examples=examples or None)  # type: ignore[arg-type]

        # No progress overlay: the intro is already there, the load only refreshes it.
        loaded = demo.load(
            on_load, None, [intro, chatbot], api_visibility="private", show_progress="hidden"
        )
        if on_page_load is not None:
            loaded.then(on_page_load, None, None, api_visibility="private", queue=False)

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

        gr.api(ask_api, api_name="ask", concurrency_limit=concurrency, concurrency_id="chat")

    demo.queue(default_concurrency_limit=concurrency)
    # launch() serves the OpenAI-compatible /v1 routes over the same service.
    demo.paperchat_service = service
    return demo


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
