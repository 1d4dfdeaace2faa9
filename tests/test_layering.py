"""The dependency runs one way: ui/ and evals/ use rag/, and rag/ names neither."""

from __future__ import annotations

import ast
from pathlib import Path

from rag.cli import CORE_COMMANDS, build_parser

RAG = Path(__file__).resolve().parents[1] / "rag"


def test_no_module_under_rag_imports_ui_or_evals() -> None:
    offenders = []
    for path in sorted(RAG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in ("ui", "evals")
            ]
    assert offenders == []


def test_front_end_commands_come_from_the_entry_point_group() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {*CORE_COMMANDS, "serve", "mcp", "eval", "bench"}
    # A core command's parser loads no plugin at all.
    core = build_parser(only="")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(core) == set(CORE_COMMANDS)
