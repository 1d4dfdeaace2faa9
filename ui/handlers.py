"""What the web chat does, as plain functions and generators over rag's answer API.

Nothing here imports gradio, so every behaviour of the page (streaming order, the sources
panel, feedback records, export, ingest, the /ask API) is unit-tested with a fake assistant.
ui/app.py only wires these to components.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.corpus import bundled_corpus_paths, format_label
from rag.errors import InputError, PaperchatError
from rag.inputs import parse_history, validate_question
from rag.metadata import cited_papers
from rag.types import Answer, CorpusSummary, Turn
from ui import render
from ui.render import Exchange

# What the upload accepts (the format is then picked by extension and content).
UPLOAD_SUFFIXES = (".bib", ".bibtex", ".ris", ".json", ".jsonl", ".txt", ".md")
UPLOAD_KINDS = (
    "BibTeX .bib, RIS .ris, CSL-JSON .json (Zotero / Better BibTeX export), JSON Lines .jsonl "
    "(title, abstract, url…) or a listing page .txt"
)
MAX_UPLOAD_NOTES = 10

# How long an exported conversation file is kept for download.
EXPORT_KEEP_S = 3600.0

BUNDLED_EXAMPLES = (
    "What NDCG scores did SeqDialN achieve on VisDial v1.0?",
    "Which dataset records biological experiments from several camera viewpoints?",
    "How does averaging the weights of fine-tuned models improve accuracy?",
    "Which benchmarks evaluate multimodal LLMs on video understanding?",
)

_feedback_lock = threading.Lock()
log = logging.getLogger("paperchat.ui")


@dataclass
class ChatView:
    """One update of the page after (part of) an answer."""

    messages: list[dict[str, str]]
    exchanges: list[Exchange]
    status: str
    sources: str
    textbox: str = ""
    done: bool = False


def parse_auth(raw: str | None) -> tuple[str, str] | None:
    """PAPERCHAT_AUTH 'user:password' -> (user, password); None when login is off."""
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise InputError(
            "PAPERCHAT_AUTH must look like 'user:password' (both parts non-empty); "
            "unset it to serve without login."
        )
    return user, password


def history_of(exchanges: Sequence[Exchange]) -> list[Turn]:
    """The turns a follow-up sees: answered exchanges only (errors are not conversation)."""
    turns: list[Turn] = []
    for ex in exchanges:
        if ex.answer is not None:
            turns.append(Turn("user", ex.question))
            turns.append(Turn("assistant", ex.answer.text))
    return turns


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# How the intro names a file by its extension.
FORMAT_NAMES = {
    ".bib": "BibTeX", ".bibtex": "BibTeX", ".ris": "RIS", ".json": "JSON (CSL-JSON or JSON Lines)",
    ".jsonl": "JSON Lines", ".txt": "listing page", ".md": "listing page",
}
_SHOWN_SOURCES = 5


def _count(n: int, noun: str) -> str:
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{word} {noun}{'s' if n != 1 else ''}"


def sources_phrase(summary: CorpusSummary, formats: dict[str, str] | None = None) -> str:
    """Where the papers come from, for people: "two Hugging Face daily-papers pages",
    "refs.bib (BibTeX, 5 papers)", "arXiv (12 papers)" -- never a bare hash file name.
    `formats` (file name -> format read, as ingest recorded it) names a file's format by its
    content; without it, the extension guesses."""
    bundled = {p.name for p in bundled_corpus_paths()}
    names = [n for n, _ in summary.sources.most_common()]
    parts: list[str] = []
    pages = [n for n in names if n in bundled]
    if pages:
        parts.append(f"{_count(len(pages), 'Hugging Face daily-papers page')}")
    for name in [n for n in names if n not in bundled]:
        count = summary.sources[name]
        papers = f"{count} paper{'s' if count != 1 else ''}"
        if name == "arXiv":
            parts.append(f"the arXiv API ({papers})")
        else:
            kind = format_label((formats or {}).get(name, "")) or FORMAT_NAMES.get(
                Path(name).suffix.lower(), "file"
            )
            parts.append(f"{render.md_text(name)} ({kind}, {papers})")
    if len(parts) > _SHOWN_SOURCES + 1:
        parts = [*parts[:_SHOWN_SOURCES], f"{len(parts) - _SHOWN_SOURCES} more sources"]
    if not parts:
        return "no source yet"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def unexpected_error(what: str, exc: BaseException) -> str:
    """Log `exc` with its traceback; -> the message to show instead of a generic "Error"."""
    log.error("%s failed", what, exc_info=exc)
    return (
        f"{what} failed because of an error paperchat did not expect ({type(exc).__name__}: "
        f"{str(exc)[:200]}). The details are in the server log; try again, and report it if "
        "it keeps happening."
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChatService:
    """The page's behaviour over one Assistant shared by every session."""

    def __init__(
        self,
        settings: Any,
        assistant: Any,
        *,
        export_dir: Path | None = None,
        summary: CorpusSummary | None = None,
    ) -> None:
        """`assistant` may be a Future (or ui.startup.RetryingOpen) while the index opens; `summary` (e.g. the one saved
        beside the index) lets the page show the corpus before that."""
        self.settings = settings
        self._assistant = assistant
        self.feedback_path = Path(settings.data_dir) / "feedback.jsonl"
        self.export_dir = export_dir or Path(tempfile.gettempdir()) / "paperchat-exports"
        self._ingest_lock = threading.Lock()
        self._summary_lock = threading.Lock()
        self._summary = summary

    # ---- the assistant and the corpus ------------------------------------------------

    @property
    def assistant(self) -> Any:
        """The Assistant; waits for it (raising what opening it raised) if still opening."""
        if isinstance(self._assistant, Future) or hasattr(self._assistant, "result"):
            return self._assistant.result()
        return self._assistant

    @property
    def llm_configured(self) -> bool:
        return bool(self.settings.llm.configured)

    def summary(self) -> CorpusSummary:
        with self._summary_lock:
            if self._summary is None:
                self._summary = self.assistant.index.summary()
            return self._summary

    def intro_markdown(self) -> str:
        try:
            summary = self.summary()
        except PaperchatError as exc:
            return render.error_markdown(str(exc))
        return (
            f"Ask about **{summary.papers} papers** from "
            f"{sources_phrase(summary, self.recorded_formats())}. Answers quote "
            "the abstracts and cite them: every [n] links to the paper, and the sources panel "
            "shows the abstract with the quoted sentences highlighted."
        )

    def recorded_formats(self) -> dict[str, str]:
        """The format each ingested file was read as (a small file beside the index)."""
        from rag.pipeline import recorded_formats

        return recorded_formats(self.settings)

    def examples(self) -> list[str]:
        """Example questions: curated ones for the bundled corpus, title questions otherwise."""
        try:
            summary = self.summary()
        except PaperchatError:
            return []
        bundled = {p.name for p in bundled_corpus_paths()}
        if bundled and bundled <= set(summary.sources):
            return list(BUNDLED_EXAMPLES)
        return [f"What does “{t}” propose?" for t in summary.sample_titles]

    # ---- answering -------------------------------------------------------------------

    def respond(
        self,
        message: str,
        exchanges: Sequence[Exchange] | None,
        mode: str | None = None,
        k: int | None = None,
    ) -> Iterator[ChatView]:
        """Streams the chat: the question at once, then the growing answer, then the final
        view with linked markers, the sources panel and the status line."""
        past = list(exchanges or [])
        question = (message or "").strip()
        if not question:
            yield ChatView(
                render.messages(past), past, "Type a question about the papers first.",
                self._last_sources(past), textbox=message or "", done=True,
            )
            return
        current = Exchange(question=question, history=history_of(past), asked_at=_now())
        chat = render.messages(past)
        user_msg = {"role": "user", "content": render.md_text(question)}
        yield ChatView(
            [*chat, user_msg, {"role": "assistant", "content": "…"}],
            past, "Searching the papers…", self._last_sources(past),
        )
        shown = ""
        start = time.perf_counter()
        try:
            for event in self.assistant.stream(question, current.history, k or None, mode or None):
                if isinstance(event, Answer):
                    current.answer = event
                    break
                shown += event
                yield ChatView(
                    [*chat, user_msg,
                     {"role": "assistant", "content": render.streaming_markdown(shown)}],
                    past, "Answering…", self._last_sources(past),
                )
        except PaperchatError as exc:
            current.error = str(exc)
        except Exception as exc:  # not paperchat's own: a message here, the traceback in the log
            current.error = unexpected_error("Answering", exc)
        if current.answer is None and not current.error:
            current.error = "The answer stopped before it was complete. Ask again."
        done = [*past, current]
        if current.answer is not None:
            status = render.status_markdown(current.answer)
            sources = render.sources_html(current.answer)
        else:
            took = (time.perf_counter() - start) * 1000
            status = f"Not answered ({took:.0f} ms): {render.md_text(current.error)}"
            sources = self._last_sources(past)
        yield ChatView(render.messages(done), done, status, sources, done=True)

    @staticmethod
    def _last_sources(exchanges: Sequence[Exchange]) -> str:
        for ex in reversed(exchanges):
            if ex.answer is not None:
                return render.sources_html(ex.answer)
        return render.SOURCES_EMPTY

    @staticmethod
    def sources_for_message(exchanges: Sequence[Exchange], message_index: int) -> str:
        """The sources panel for the exchange a clicked chat message belongs to."""
        pos = message_index // 2
        if 0 <= pos < len(exchanges) and exchanges[pos].answer is not None:
            n = pos + 1
            return render.sources_html(exchanges[pos].answer, heading=f"Sources of answer {n}")
        return ChatService._last_sources(exchanges)

    def ask_json(self, question: Any, history: Any) -> dict[str, Any]:
        """The /ask API: the same JSON object as `paperchat ask --json`. Every failure is a
        PaperchatError with a message for the caller (unexpected ones are logged first)."""
        try:
            return self._ask_json(question, history)
        except PaperchatError:
            raise
        except Exception as exc:
            raise PaperchatError(unexpected_error("Answering", exc)) from None

    def _ask_json(self, question: Any, history: Any) -> dict[str, Any]:
        # Checked here, before waiting for the assistant: an API caller can send anything.
        question = validate_question(question, self.settings.answer.max_question_chars)
        turns = parse_history(history if history is not None else [])
        answer = self.assistant.ask(question, turns)
        data = dict(answer.to_json())
        from rag.bibtex import bibtex_entries  # bibtexparser loads on first use only

        data["bibtex"] = bibtex_entries(cited_papers([answer]))
        return data

    # ---- feedback ----------------------------------------------------------------------

    def feedback_record(
        self, exchange: Exchange, vote: str, comment: str = ""
    ) -> dict[str, Any]:
        """A JSON Lines record in the eval-set shape (id, question, history, gold_titles,
        key_points) plus what was shown and the vote, so it can become a test case."""
        answer = exchange.answer
        cited = [c.title for c in answer.citations] if answer else []
        return {
            "id": f"fb-{uuid.uuid4().hex[:12]}",
            "question": exchange.question,
            "history": [{"role": t.role, "content": t.content} for t in exchange.history],
            # An upvote says the cited papers answer the question; a downvote says nothing
            # about which papers would, so it gets no gold titles.
            "gold_titles": cited if vote == "up" else [],
            "key_points": [],
            "vote": vote,
            "comment": comment.strip(),
            "answer": answer.text if answer else "",
            "abstained": bool(answer.abstained) if answer else False,
            "error": exchange.error,
            "mode": answer.mode if answer else "",
            "citations": [c.to_json() for c in answer.citations] if answer else [],
            "retrieved_titles": [h.paper.title for h in answer.retrieved] if answer else [],
            "asked_at": exchange.asked_at,
            "time": _now(),
        }

    def append_feedback(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self.feedback_path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of one line to a file opened for append, under a lock: concurrent
        # votes from several sessions never interleave inside a line.
        with _feedback_lock, self.feedback_path.open("a", encoding="utf-8") as f:
            f.write(line)

    def vote(
        self, exchanges: Sequence[Exchange], message_index: int, liked: Any, comment: str = ""
    ) -> str:
        """A thumbs up/down on the assistant message at `message_index` -> a status message."""
        pos = message_index // 2
        if not 0 <= pos < len(exchanges):
            return "That message is no longer in the conversation."
        if liked is True or liked == "Like":
            vote = "up"
        elif liked is False or liked == "Dislike":
            vote = "down"
        else:
            return "Vote withdrawn. (Earlier votes stay in the feedback file.)"
        self.append_feedback(self.feedback_record(exchanges[pos], vote, comment or ""))
        thanks = "Thanks — saved" if vote == "up" else "Thanks — saved as a bad answer"
        return f"{thanks} to {render.md_text(str(self.feedback_path))}."

    # ---- export ------------------------------------------------------------------------

    def write_export(self, exchanges: Sequence[Exchange]) -> Path | None:
        """The conversation as a Markdown file to download; None when there is nothing yet."""
        if not exchanges:
            return None
        self._drop_old_exports()
        folder = self.export_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "paperchat-conversation.md"
        path.write_text(render.export_markdown(exchanges), encoding="utf-8")
        return path

    def write_bibtex_export(self, exchanges: Sequence[Exchange]) -> Path | None:
        """The conversation's cited papers as a .bib file; None when nothing was cited."""
        papers = cited_papers(ex.answer for ex in exchanges)
        if not papers:
            return None
        from rag.bibtex import bibtex_entries  # bibtexparser loads on first use only

        self._drop_old_exports()
        folder = self.export_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "paperchat-citations.bib"
        path.write_text(bibtex_entries(papers), encoding="utf-8")
        return path

    def _drop_old_exports(self) -> None:
        # A fresh file is written after every answer (gradio serves a copy); old ones go.
        cutoff = time.time() - EXPORT_KEEP_S
        if not self.export_dir.is_dir():
            return
        for folder in self.export_dir.iterdir():
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)

    # ---- ingest ------------------------------------------------------------------------

    def _kept_upload(self, file: Path) -> tuple[Path, bool]:
        """(a copy of an upload under DATA_DIR/uploads/, whether this call made it): the
        ingest records the path it read, `ingest --rebuild` reads it again, and gradio deletes
        its own upload folder after a day. Named by content, so the same file uploaded again
        is the same recorded input. The upload itself when it cannot be copied (the ingest
        then says why)."""
        try:
            digest = hashlib.sha1(file.read_bytes()).hexdigest()[:12]
            kept = Path(self.settings.data_dir) / "uploads" / digest / file.name
            if kept.is_file():
                return kept, False
            kept.parent.mkdir(parents=True, exist_ok=True)
            return Path(shutil.copyfile(file, kept)), True
        except OSError:
            return file, False

    @staticmethod
    def _drop_upload(kept: Path, made: bool) -> None:
        """Nothing of a failed upload was ingested: the copy it made goes too."""
        if made:
            shutil.rmtree(kept.parent, ignore_errors=True)

    def ingest(self, path: str | Path | None) -> str:
        """Add the papers of an uploaded file (BibTeX, RIS, CSL-JSON, JSON Lines, listing
        page) -> a summary to show."""
        if not path:
            return f"Choose a file ({UPLOAD_KINDS}) to add its papers."
        file = Path(path)
        name = file.name
        if file.suffix.lower() not in UPLOAD_SUFFIXES:
            return render.error_markdown(
                f"{name}: not a format paperchat reads. Supported: {UPLOAD_KINDS}."
            )
        kept, made = self._kept_upload(file)

        def named(message: str) -> str:
            # The upload lives in a temp folder; the user knows the file by its name.
            for where in (kept, file):
                message = re.sub(re.escape(str(where)), name, message)
            return message

        try:
            # One ingest at a time: two would contend for the index writer lock, and each
            # rebuilds the lexical index. Questions keep being answered meanwhile.
            with self._ingest_lock:
                report = self.assistant.ingest([kept])
                with self._summary_lock:
                    self._summary = None  # the ingest rebuilt it with BM25
        except PaperchatError as exc:
            self._drop_upload(kept, made)
            return render.error_markdown(named(str(exc)))
        except Exception as exc:
            self._drop_upload(kept, made)
            return render.error_markdown(named(unexpected_error(f"Adding {name}", exc)))
        notes = "".join(f"\n- {render.md_text(n)}" for n in report.notes[:MAX_UPLOAD_NOTES])
        if len(report.notes) > MAX_UPLOAD_NOTES:
            notes += f"\n- … and {len(report.notes) - MAX_UPLOAD_NOTES} more"
        # Words, not an emoji: without an emoji font the page showed a missing-glyph box.
        return (
            f"Added {render.md_text(name)}: {render.md_text(report.summary())} Ask about them now."
            + notes
        )
