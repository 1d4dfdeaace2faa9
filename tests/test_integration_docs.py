"""The Python examples of docs/integrations.md, run as written against real servers on
127.0.0.1 (only the host:port in their URLs is changed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_server import FakeOpenAI, Recorded, Reply, text
from process_server import child_env, free_port, paperchat_process, port_open

from rag.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DOC = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def example(fragment: str) -> str:
    found = [code for code in examples() if fragment in code]
    assert len(found) == 1, f"{fragment!r} is in {len(found)} examples"
    return found[0]


def run(code: str, capsys: pytest.CaptureFixture[str]) -> str:
    exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})  # noqa: S102 - the doc's own code
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def api_url(bundled_db: Path, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    from rag.pipeline import Assistant
    from ui.app import build_app, launch

    settings = Settings(data_dir=tmp_path_factory.mktemp("docs"), db_dir=bundled_db)
    demo = build_app(Assistant.open(settings, embeddings=embeddings))
    settings.ui.port = free_port()
    _, url, _ = launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


def test_every_python_example_is_tested() -> None:
    assert len(examples()) == 4


def test_openai_client_example(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = example("model_extra[\"paperchat\"][\"citations\"]:\n")
    out = run(code.replace("http://127.0.0.1:7860", api_url), capsys)
    assert "\n\nSources:\n[1] SeqDialN" in out
    assert "1 SeqDialN: Sequential Visual Dialog Networks" in out
    assert out.count("Sources:") == 2 and "MRR" in out.split("Sources:")[1]


def test_streamed_example(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(example("stream=True").replace("http://127.0.0.1:7860", api_url), capsys)
    assert "Sources:\n[1] " in out and "Video-MME" in out.splitlines()[-1]


def test_mcp_client_example(
    bundled_db: Path, model_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env = child_env(tmp_path / "data", model_cache)
    args = ["mcp", "--http", "--port", str(port), "--db", str(bundled_db)]
    with paperchat_process(args, env, tmp_path / "mcp.log", lambda: port_open(port)):
        code = example("from mcp import Client").replace("127.0.0.1:8765", f"127.0.0.1:{port}")
        out = run(code, capsys)
    lines = out.splitlines()
    assert lines[0] == "['search_papers', 'get_paper', 'ask', 'list_sources']"
    assert len(lines) == 4 and lines[1].startswith("1 ")


def test_langchain_chain_example(
    bundled_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def reply(request: Recorded) -> Reply:
        titles = re.findall(r"^\[(\d+)\] (.+?) \(http", request.prompt, flags=re.M)
        return text(f"Video moment retrieval is studied in {titles[0][1]} [{titles[0][0]}].")

    with FakeOpenAI(api_key="sk-docs", models={"gpt-4o-mini"}, responder=reply) as llm:
        monkeypatch.setenv("PAPERCHAT_DB_DIR", str(bundled_db))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-docs")
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        code = example("as_retriever(k=4)")
        assert len(code.strip().splitlines()) <= 12
        out = run(code, capsys)
        prompt = llm.chat_requests()[0].prompt
    assert out.startswith("Video moment retrieval is studied in ") and "[1]" in out
    assert prompt.count("\n[") == 4 and "\n\n[4] " in prompt and "Question: Which papers study video moment retrieval?" in prompt
