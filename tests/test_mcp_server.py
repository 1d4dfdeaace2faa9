"""`paperchat mcp` driven by the real MCP client of the `mcp` SDK: over stdio (the client starts
the command) and over streamable HTTP (a `paperchat mcp --http` process with auth on). Every
tool is listed and called against the real bundled index."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from process_server import child_env, free_port, http_status, paperchat_process, port_open

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"
TOOLS = {"search_papers", "get_paper", "ask", "list_sources"}
TOKEN = "mcp-token-7f2e"


async def exercise_every_tool(client: Client) -> None:
    listed = (await client.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    for tool in listed:
        assert tool.description and len(tool.description) > 80, tool.name
    schema = next(t for t in listed if t.name == "search_papers").input_schema
    assert schema["required"] == ["query"] and schema["properties"]["k"]["maximum"] == 20

    found = await client.call_tool("search_papers", {"query": QUESTION, "k": 3})
    assert not found.is_error
    papers = found.structured_content["papers"]  # type: ignore[index]
    assert len(papers) == 3 and papers[0]["title"].startswith("SeqDialN")
    assert papers[0]["score"] >= papers[1]["score"] >= papers[2]["score"]
    assert any("62.54% NDCG" in passage for passage in papers[0]["evidence"])

    paper = await client.call_tool("get_paper", {"paper_id": papers[0]["paper_id"]})
    assert not paper.is_error
    detail = paper.structured_content
    assert detail["title"] == papers[0]["title"] and detail["url"] == papers[0]["url"]  # type: ignore[index]
    assert "62.54% NDCG" in detail["abstract"]  # type: ignore[index]

    answer = await client.call_tool("ask", {"question": QUESTION})
    assert not answer.is_error
    result = answer.structured_content
    assert result["abstained"] is False and "[1]" in result["answer"]  # type: ignore[index]
    citation = result["citations"][0]  # type: ignore[index]
    assert citation["n"] == 1 and citation["title"].startswith("SeqDialN")
    assert citation["paper_id"] == papers[0]["paper_id"] and citation["evidence"]

    history = [{"role": "user", "content": QUESTION},
               {"role": "assistant", "content": result["answer"]}]  # type: ignore[index]
    follow = await client.call_tool("ask", {"question": "And what MRR did it get?",
                                            "history": history})
    assert follow.structured_content["citations"][0]["title"].startswith("SeqDialN")  # type: ignore[index]

    sources = await client.call_tool("list_sources", {})
    assert not sources.is_error
    assert sources.structured_content["papers"] == 182  # type: ignore[index]
    assert sum(sources.structured_content["sources"].values()) >= 182  # type: ignore[index]

    # Mistakes come back as tool errors with a message the model can act on.
    missing = await client.call_tool("get_paper", {"paper_id": "no-such-id"})
    assert missing.is_error and "search_papers" in missing.content[0].text  # type: ignore[union-attr]
    bad_k = await client.call_tool("search_papers", {"query": QUESTION, "k": 0})
    assert bad_k.is_error
    empty = await client.call_tool("ask", {"question": "  "})
    assert empty.is_error and "question is empty" in empty.content[0].text  # type: ignore[union-attr]


def test_stdio(bundled_db: Path, model_cache: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rag.cli", "mcp", "--db", str(bundled_db)],
        env=child_env(tmp_path / "data", model_cache),
    )

    async def session() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            await exercise_every_tool(client)

    anyio.run(session)


@pytest.fixture(scope="module")
def mcp_url(
    bundled_db: Path, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`paperchat mcp --http` in its own process, with PAPERCHAT_AUTH and a token set."""
    root = tmp_path_factory.mktemp("mcp-http")
    port = free_port()
    env = child_env(root / "data", model_cache, PAPERCHAT_AUTH="alice:wonderland",
                    PAPERCHAT_API_TOKEN=TOKEN)
    args = ["mcp", "--http", "--port", str(port), "--db", str(bundled_db)]
    with paperchat_process(args, env, root / "mcp.log", lambda: port_open(port)):
        yield f"http://127.0.0.1:{port}/mcp"


def http_client(url: str, authorization: str | None) -> Any:
    headers = {"Authorization": authorization} if authorization else {}
    return streamable_http_client(
        url, http_client=httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))
    )


def test_http_with_the_token_lists_and_calls_every_tool(mcp_url: str) -> None:
    async def session() -> None:
        async with Client(http_client(mcp_url, f"Bearer {TOKEN}")) as client:
            await exercise_every_tool(client)

    anyio.run(session)


def test_http_accepts_the_login_credentials(mcp_url: str) -> None:
    async def session() -> set[str]:
        async with Client(http_client(mcp_url, "Bearer alice:wonderland")) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert anyio.run(session) == TOOLS


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic YWxpY2U6Z3Vlc3M="])
def test_http_refuses_requests_without_credentials(mcp_url: str, authorization: str | None) -> None:
    assert http_status(mcp_url, {"Authorization": authorization} if authorization else {}) == 401

    async def session() -> None:
        async with Client(http_client(mcp_url, authorization)) as client:
            await client.list_tools()

    # The SDK's client reports the 401 as a failed request; the session never opens.
    with pytest.raises(BaseExceptionGroup) as refused:
        anyio.run(session)
    assert refused.group_contains(MCPError, depth=None)
