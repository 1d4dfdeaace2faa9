"""`paperchat mcp`: the Model Context Protocol server, over stdio or streamable HTTP.

The only module that imports the `mcp` SDK (and uvicorn, which serves the HTTP transport).
The tools' behaviour lives in ui/paper_tools.py; this module gives each one the description
a model reads when it decides which tool to call.

    paperchat mcp                          stdio, for desktop clients and agents that spawn it
    paperchat mcp --http --port 8765       streamable HTTP at http://127.0.0.1:8765/mcp

Over HTTP, when PAPERCHAT_AUTH or PAPERCHAT_API_TOKEN is set, every request needs the same
credentials as the /v1 API (ui/api_auth.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from rag.errors import PaperchatError
from rag.settings import Settings
from ui.api_auth import REALM, ApiCredentials
from ui.paper_tools import MAX_K, PaperTools

HTTP_PATH = "/mcp"

INSTRUCTIONS = (
    "paperchat answers questions about a collection of research papers from their abstracts "
    "and cites the papers it used. Use `ask` for a question you want answered with citations; "
    "`search_papers` to find papers on a topic and see why they matched; `get_paper` for one "
    "paper's full abstract and link; `list_sources` to learn what the collection holds. Cite "
    "papers by title and url from the results; do not invent papers the tools did not return."
)

SEARCH_DESCRIPTION = (
    "Find the papers in the collection most relevant to a query (hybrid semantic + keyword "
    "search over titles and abstracts). Returns up to k papers, best first, each with "
    "paper_id, title, url, a relevance score (higher is better; compare within one result "
    "only) and evidence: the passages of the abstract that matched. Use it to explore a "
    "topic or collect candidates; use `ask` instead when you want an answer to a question."
)
GET_PAPER_DESCRIPTION = (
    "Get one paper by its paper_id (from search_papers or from ask's citations): title, full "
    "abstract, url, authors, date and the corpus file it came from. Use it to read a paper "
    "before quoting it."
)
ASK_DESCRIPTION = (
    "Answer a question about the papers, grounded in their abstracts, with verified citations. "
    "Returns answer (text with [n] markers), citations (n, paper_id, title, url, evidence: the "
    "abstract sentence that supports the claim), retrieved (the papers considered), abstained "
    "(true when the collection does not answer the question: then say so rather than "
    "guessing), mode and note (set when something degraded, e.g. the LLM was unavailable). "
    "For a follow-up question pass the earlier turns as history."
)
LIST_SOURCES_DESCRIPTION = (
    "Describe what is indexed: the number of papers, the corpus files they came from with a "
    "paper count each, and a few sample titles. Call it first to see whether the collection "
    "can answer the user's question at all."
)

Query = Annotated[str, Field(description="What to look for, in plain language or keywords.")]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"How many papers to return (1-{MAX_K}).")]
PaperId = Annotated[str, Field(description="A paper_id returned by search_papers or ask.")]
Question = Annotated[str, Field(description="The question, in plain language.")]
History = Annotated[
    list[dict[str, str]] | None,
    Field(
        description='The conversation so far, oldest first: [{"role": "user" | "assistant", '
        '"content": "..."}]. Omit for a new question.'
    ),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)


def build_server(tools: PaperTools) -> MCPServer:
    """The MCP server with paperchat's four tools. Opening the index starts with the first
    session, so the handshake is answered before the model has loaded."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[None]:
        tools.start()
        yield

    server: MCPServer = MCPServer(
        "paperchat", instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING"
    )

    def search_papers(query: Query, k: K = 5) -> dict[str, Any]:
        return _call(tools.search_papers, query, k)

    def get_paper(paper_id: PaperId) -> dict[str, Any]:
        return _call(tools.get_paper, paper_id)

    def ask(question: Question, history: History = None) -> dict[str, Any]:
        return _call(tools.ask, question, history)

    def list_sources() -> dict[str, Any]:
        return _call(tools.list_sources)

    for fn, title, description in (
        (search_papers, "Search papers", SEARCH_DESCRIPTION),
        (get_paper, "Get a paper", GET_PAPER_DESCRIPTION),
        (ask, "Ask the papers", ASK_DESCRIPTION),
        (list_sources, "List indexed sources", LIST_SOURCES_DESCRIPTION),
    ):
        server.add_tool(fn, title=title, description=description, annotations=READ_ONLY)
    return server


def _call(operation: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A PaperchatError becomes a tool error whose message the model can act on."""
    try:
        return operation(*args)
    except PaperchatError as exc:
        raise ToolError(str(exc)) from None


def run_stdio(settings: Settings) -> None:
    build_server(PaperTools(settings)).run("stdio")


def http_app(settings: Settings, tools: PaperTools | None = None) -> Any:
    """The streamable-HTTP ASGI app at /mcp, behind the API credentials when they are set."""
    server = build_server(tools or PaperTools(settings))
    app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=settings.ui.host)
    credentials = ApiCredentials(settings)
    return RequireCredentials(app, credentials) if credentials.required else app


def run_http(settings: Settings, port: int) -> None:
    import uvicorn

    tools = PaperTools(settings)
    app = http_app(settings, tools)
    tools.start()  # open the index while the server starts, not on the first session
    where = f"http://{settings.ui.host}:{port}{HTTP_PATH}"
    print(f"paperchat: MCP over streamable HTTP at {where} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.ui.host, port=port, log_level="warning")


class RequireCredentials:
    """ASGI wrapper: HTTP requests without accepted credentials get 401 and never reach MCP."""

    def __init__(self, app: Any, credentials: ApiCredentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = dict(scope.get("headers") or []).get(b"authorization")
            header = raw.decode("latin-1") if raw else None
            if not self.credentials.allows(header):
                body = json.dumps(
                    {"error": "unauthorized",
                     "error_description": self.credentials.refusal_message(header)}
                ).encode("utf-8")
                await send({
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", f'Bearer realm="{REALM}"'.encode()),
                    ],
                })
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
