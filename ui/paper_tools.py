"""What paperchat offers to agents (the MCP server in ui/mcp_server.py): four operations over
one Assistant, returning JSON-ready dicts. Nothing here imports the MCP SDK, so each
operation is tested alone; the SDK module only registers them with their descriptions.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from typing import Any

from rag.errors import InputError, PaperchatError, StorageError
from rag.inputs import parse_history, validate_question
from rag.settings import Settings

MAX_K = 20


class PaperTools:
    """search_papers, get_paper, ask and list_sources over an Assistant that opens (building
    the index from the bundled corpus on a first run) in a background thread, so a client's
    handshake is answered at once; calls wait until it is ready."""

    def __init__(self, settings: Settings, assistant: Any = None) -> None:
        self.settings = settings
        self._future: Future[Any] = Future()
        self._started = threading.Lock()
        if assistant is not None:
            self._started.acquire()
            self._future.set_result(assistant)

    def start(self) -> None:
        """Start opening the index (once; later calls do nothing)."""
        if self._started.acquire(blocking=False):
            threading.Thread(target=self._open, name="paperchat-open", daemon=True).start()

    def _open(self) -> None:
        from rag.pipeline import Assistant
        from rag.progress import progress_bar

        update, close = progress_bar("Building the index")
        try:
            assistant = Assistant.open(self.settings, build_if_missing=True, on_progress=update)
            self._future.set_result(assistant)
            assistant.index.warm_late_vectors(background=True)
        except PaperchatError as exc:
            self._future.set_exception(exc)
        except Exception as exc:  # the client sees this message, not a trace
            print(f"paperchat: cannot open the index: {exc!r}", file=sys.stderr, flush=True)
            self._future.set_exception(
                StorageError(
                    f"Cannot open the index ({type(exc).__name__}: {exc}). Check the server "
                    "log, then rebuild it with `paperchat ingest` if it is damaged."
                )
            )
        finally:
            close()

    @property
    def assistant(self) -> Any:
        self.start()
        return self._future.result()

    # ---- the tools ---------------------------------------------------------------------

    def search_papers(self, query: str, k: int = 5) -> dict[str, Any]:
        assistant = self.assistant
        query = validate_question(query, assistant.settings.answer.max_question_chars)
        retrieval = assistant.retrieve(query, (), _checked_k(k))
        return {
            "query": query,
            "papers": [
                {
                    "rank": rank,
                    "paper_id": hit.paper.id,
                    "title": hit.paper.title,
                    "url": hit.paper.url,
                    "score": round(float(hit.score), 4),
                    "evidence": list(hit.evidence),
                }
                for rank, hit in enumerate(retrieval.hits[:k], start=1)
            ],
        }

    def get_paper(self, paper_id: str) -> dict[str, Any]:
        paper_id = (paper_id or "").strip()
        if not paper_id:
            raise InputError("paper_id is empty: pass an id from search_papers or ask.")
        paper = self.assistant.index.papers([paper_id]).get(paper_id)
        if paper is None:
            raise InputError(
                f"No paper has the id {paper_id!r}. Ids come from search_papers (paper_id) or "
                "from the citations of ask."
            )
        return {
            "paper_id": paper.id,
            "title": paper.title,
            "abstract": paper.abstract,
            "url": paper.url,
            "authors": list(paper.authors),
            "date": paper.date,
            "source": paper.source,
        }

    def ask(self, question: str, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        turns = parse_history(history if history is not None else [])
        return dict(self.assistant.ask(question, turns).to_json())

    def list_sources(self) -> dict[str, Any]:
        summary = self.assistant.index.summary()
        return dict(summary.to_json())


def _checked_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InputError(f"k must be a whole number from 1 to {MAX_K}; got {k!r}.")
    return int(k)
