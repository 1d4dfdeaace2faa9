"""`paperchat serve` and `paperchat mcp`, registered through the "paperchat.commands"
entry-point group (pyproject.toml): rag/cli.py discovers them and never imports ui/."""

from __future__ import annotations

import argparse
from typing import Any

from rag.cli import llm_options, setting_int, settings_from_args, storage_options


def cmd_serve(args: argparse.Namespace) -> int:
    from ui.app import serve

    settings = settings_from_args(args)
    if args.host:
        settings.ui.host = args.host
    if args.port:
        settings.ui.port = args.port
    serve(settings)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from ui.handlers import parse_auth
    from ui.mcp_server import run_http, run_stdio

    settings = settings_from_args(args)
    if args.host:
        settings.ui.host = args.host
    parse_auth(settings.auth.get_secret_value() if settings.auth else None)  # fail fast
    if args.http:
        run_http(settings, args.port)
    else:
        run_stdio(settings)
    return 0


def register_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="start the web chat",
        description="Start the web chat (building the index from the bundled corpus on first run). "
        "Binds 127.0.0.1 by default and never creates a public link; PAPERCHAT_AUTH=user:password "
        "turns on login.",
    )
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=setting_int("ui", "port"), help="port (default 7860)")
    storage_options(serve)
    llm_options(serve)
    serve.set_defaults(func=cmd_serve)


def register_mcp(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp",
        help="serve the Model Context Protocol (tools for agents and desktop clients)",
        description="Serve paperchat's tools (search_papers, get_paper, ask, list_sources) over "
        "the Model Context Protocol: on stdin/stdout for clients that start it, or over "
        "streamable HTTP at http://HOST:PORT/mcp with --http. Over HTTP, PAPERCHAT_AUTH or "
        "PAPERCHAT_API_TOKEN makes every request need credentials (see docs/integrations.md).",
    )
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    # No setting of its own: a port's range is the web chat's (1 to 65535).
    mcp.add_argument(
        "--port", type=setting_int("ui", "port"), default=8765, help="HTTP port (default 8765)"
    )
    mcp.add_argument("--host", help="HTTP interface to bind (default 127.0.0.1)")
    storage_options(mcp)
    llm_options(mcp)
    mcp.set_defaults(func=cmd_mcp)
