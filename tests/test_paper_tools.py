"""Unit tests of the MCP tools' behaviour (ui/paper_tools.py) over a fake assistant, and of how
the MCP layer turns paperchat errors into tool errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag.errors import InputError, PaperchatError
from rag.retrieve import Retrieval
from rag.settings import Settings
from rag.types import Answer, CorpusSummary, Hit, Paper, Turn
from ui.paper_tools import PaperTools

PAPER = Paper("p1", "A Paper", "It works. It is fast.", "https://example.org/a", "corpus.txt")


class FakeAssistant:
    def __init__(self) -> None:
        self.settings = Settings()
        self.asked: list[tuple[str, list[Turn]]] = []
        self.index = SimpleNamespace(
            papers=lambda ids: {i: PAPER for i in ids if i == PAPER.id},
            summary=lambda: CorpusSummary.of([PAPER]),
        )

    def retrieve(self, query: str, history: Any, k: int) -> Retrieval:
        hits = [Hit(PAPER, 2.5, evidence=["It works."]), Hit(PAPER, 1.0)]
        return Retrieval(query, hits[:k])

    def ask(self, question: str, history: list[Turn]) -> Answer:
        self.asked.append((question, history))
        return Answer("It works [1].", [], [], abstained=False, mode="extractive")


@pytest.fixture
def tools() -> PaperTools:
    return PaperTools(Settings(), FakeAssistant())


def test_search_papers(tools: PaperTools) -> None:
    result = tools.search_papers("  does it work?  ", 1)
    assert result == {"query": "does it work?", "papers": [{
        "rank": 1, "paper_id": "p1", "title": "A Paper", "url": "https://example.org/a",
        "score": 2.5, "evidence": ["It works."]}]}
    for bad in (0, 21, True, "3"):
        with pytest.raises(InputError, match="k must be"):
            tools.search_papers("q", bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="empty"):
        tools.search_papers(" ")


def test_get_paper(tools: PaperTools) -> None:
    assert tools.get_paper(" p1 ")["abstract"] == PAPER.abstract
    with pytest.raises(InputError, match="search_papers"):
        tools.get_paper("p2")
    with pytest.raises(InputError, match="empty"):
        tools.get_paper("")


def test_ask_passes_history(tools: PaperTools) -> None:
    result = tools.ask("And then?", [{"role": "user", "content": "Q"},
                                     {"role": "assistant", "content": "A [1]."}])
    assert result["answer"] == "It works [1]."
    assert tools.assistant.asked == [("And then?", [Turn("user", "Q"), Turn("assistant", "A [1].")])]
    with pytest.raises(InputError, match="History item 1"):
        tools.ask("Q", [{"role": "robot", "content": "x"}])


def test_list_sources(tools: PaperTools) -> None:
    assert tools.list_sources() == {"papers": 1, "sources": {"corpus.txt": 1},
                                    "sample_titles": ["A Paper"]}


def test_an_index_that_cannot_open_is_an_actionable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    tools = PaperTools(Settings(data_dir=tmp_path, db_dir=blocker / "db"))
    with pytest.raises(PaperchatError) as raised:
        tools.list_sources()
    assert str(blocker) in str(raised.value)


def test_mcp_layer_turns_paperchat_errors_into_tool_errors() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from ui.mcp_server import _call

    def failing() -> dict[str, Any]:
        raise InputError("Do this instead.")

    with pytest.raises(ToolError, match="Do this instead."):
        _call(failing)
