"""The examples of docs/integrations.md (Python code, curl commands, MCP client configurations)
and the README's MCP configuration, run as written against real servers on 127.0.0.1 (only the
host:port in their URLs and the paths in the configurations are changed)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
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
from openai_server import FakeOpenAI, Recorded, Reply, text
from process_server import child_env, free_port, http_status, paperchat_process, port_open

from rag.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "integrations.md"
README = ROOT / "README.md"
TOOLS = {"search_papers", "get_paper", "ask", "list_sources"}


def blocks(language: str, path: Path = DOC) -> list[str]:
    """The fenced code blocks of one language (indented ones in list items included)."""
    found = re.findall(rf"^( *)```{language}\n(.*?)^\1```", path.read_text(encoding="utf-8"),
                       flags=re.S | re.M)
    return [re.sub(rf"^{indent}", "", block, flags=re.M) for indent, block in found]


def examples() -> list[str]:
    return blocks("python")


def shell_block(first_line: str) -> str:
    found = [block for block in blocks("sh") if block.startswith(first_line)]
    assert len(found) == 1, f"{first_line!r} starts {len(found)} sh blocks"
    return found[0]


def shell(command: str) -> str:
    """A pasted command's standard output (bash, as a user's shell would run it)."""
    assert shutil.which("curl"), "the curl examples need curl on PATH (.ci/run installs it)"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          check=True)
    return done.stdout


def mcp_configs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(block)["mcpServers"]["paperchat"] for block in blocks("json", path)
            if '"mcpServers"' in block]


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


def test_curl_examples(api_url: str) -> None:
    block = shell_block('curl -s http://127.0.0.1:7860/v1/chat/completions')
    plain, streamed, models = (shell(command.replace("http://127.0.0.1:7860", api_url))
                               for command in block.strip().split("\n\n"))
    completion = json.loads(plain)
    assert "\n\nSources:\n[1] SeqDialN" in completion["choices"][0]["message"]["content"]
    assert completion["paperchat"]["citations"][0]["title"].startswith("SeqDialN")
    events = [event for event in streamed.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    final = json.loads(events[-2].removeprefix("data: "))
    assert final["choices"][0]["delta"]["content"].startswith("\n\nSources:\n[1] FineBio")
    assert final["paperchat"]["citations"][0]["title"].startswith("FineBio")
    assert [model["id"] for model in json.loads(models)["data"]] == ["paperchat"]


def test_auth_example(bundled_db: Path, model_cache: Path, tmp_path: Path) -> None:
    """The server block's variables on a real `paperchat serve`; the client block pasted as is."""
    server = shell_block("# the server\n")
    exported = dict(
        pair.split("=", 1) for pair in shlex.split(
            next(line for line in server.splitlines() if line.startswith("export ")))[1:]
    )
    assert set(exported) == {"PAPERCHAT_AUTH", "PAPERCHAT_API_TOKEN"}
    assert "\npaperchat serve\n" in server
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env(tmp_path / "data", model_cache, **exported)
    args = ["serve", "--port", str(port), "--db", str(bundled_db)]
    with paperchat_process(args, env, tmp_path / "serve.log",
                           lambda: http_status(f"{url}/v1/models") == 401):
        commands = shell_block("# a client").replace("http://127.0.0.1:7860", url)
        curls = [line for line in commands.splitlines() if line.startswith("curl ")]
        assert len(curls) == 2  # the token, the login
        for command in curls:
            assert [m["id"] for m in json.loads(shell(command))["data"]] == ["paperchat"]
        refused = json.loads(shell(f"curl -s {url}/v1/models"))
        assert refused["error"]["code"] == "invalid_api_key"


def test_desktop_mcp_configs_start_the_stdio_server(
    bundled_db: Path, model_cache: Path, tmp_path: Path
) -> None:
    """The README's and the doc's desktop configurations, with this checkout's paths: the
    installed `paperchat` command starts the MCP server a client can use."""
    configs = mcp_configs(README) + [c for c in mcp_configs(DOC) if "command" in c]
    assert len(configs) == 2
    installed = Path(sys.executable).parent / "paperchat"
    for config in configs:
        assert config["command"].endswith("/.venv/bin/paperchat")
        assert config["args"][0] == "mcp"
        args = [str(bundled_db) if arg.endswith("/db") else arg for arg in config["args"]]
        env = child_env(tmp_path / "data", model_cache)
        if "--db" not in args:  # the README's: the index in the default data directory
            env["PAPERCHAT_DB_DIR"] = str(bundled_db)
        params = StdioServerParameters(command=str(installed), args=args, env=env)
        assert anyio.run(list_tools_and_sources, params) == (TOOLS, 182)


async def list_tools_and_sources(params: StdioServerParameters) -> tuple[set[str], int]:
    async with Client(params, read_timeout_seconds=300) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        sources = await client.call_tool("list_sources", {})
        return names, sources.structured_content["papers"]  # type: ignore[index]


def test_http_mcp_config_with_the_token_header(
    bundled_db: Path, model_cache: Path, tmp_path: Path
) -> None:
    (config,) = [c for c in mcp_configs(DOC) if "url" in c]
    token = "docs-mcp-token-51c8"
    port = free_port()
    url = config["url"].replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    headers = {name: value.replace("<PAPERCHAT_API_TOKEN>", token)
               for name, value in config["headers"].items()}
    env = child_env(tmp_path / "data", model_cache, PAPERCHAT_API_TOKEN=token)
    args = ["mcp", "--http", "--port", str(port), "--db", str(bundled_db)]

    async def session() -> set[str]:
        client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))
        async with Client(streamable_http_client(url, http_client=client)) as mcp_client:
            return {tool.name for tool in (await mcp_client.list_tools()).tools}

    with paperchat_process(args, env, tmp_path / "mcp.log", lambda: port_open(port)):
        assert http_status(url) == 401  # the header is what lets the client in
        assert anyio.run(session) == TOOLS
