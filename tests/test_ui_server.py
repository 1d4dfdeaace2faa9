"""The /ask API of a real chat server on a free loopback port, called with gradio_client."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(settings: Settings, embeddings: Any) -> tuple[Any, str]:
    from rag.pipeline import Assistant
    from ui.app import build_app, launch

    assistant = Assistant.open(settings, embeddings=embeddings)
    demo = build_app(assistant)
    settings.ui.port = free_port()
    _, url, _ = launch(demo, settings, prevent_thread_lock=True, quiet=True)
    return demo, url


@pytest.fixture(scope="module")
def server(
    bundled_db: Path, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A chat server over the shared bundled index (read-only: nothing here ingests)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        settings = Settings(data_dir=tmp_path_factory.mktemp("ui-server"), db_dir=bundled_db)
        demo, url = start_server(settings, embeddings)
        try:
            yield url
        finally:
            demo.close()


@pytest.fixture(scope="module")
def client(server: str) -> Any:
    from gradio_client import Client

    return Client(server, verbose=False, download_files=False)


def test_ask_returns_the_cli_json_with_citations(client: Any) -> None:
    result = client.predict(
        question="What NDCG scores did SeqDialN achieve on VisDial v1.0?",
        history=[],
        api_name="/ask",
    )
    assert set(result) >= {"answer", "abstained", "citations", "retrieved", "mode", "timings_ms"}
    assert result["abstained"] is False and result["mode"] == "extractive"
    assert result["citations"][0]["title"].startswith("SeqDialN")
    assert result["citations"][0]["url"].startswith("https://")
    assert "[1]" in result["answer"]
    assert result["timings_ms"]["total"] > 0


def test_ask_uses_history_for_follow_ups(client: Any) -> None:
    history = [
        {"role": "user", "content": "What NDCG scores did SeqDialN achieve on VisDial v1.0?"},
        {"role": "assistant", "content": "SeqDialN reaches 62.54% NDCG [1]."},
    ]
    result = client.predict(question="And what MRR did it get?", history=history, api_name="/ask")
    assert result["citations"][0]["title"].startswith("SeqDialN")


def test_bad_input_gives_the_message_not_a_traceback(client: Any) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(question="   ", history=[], api_name="/ask")
    assert "The question is empty" in str(caught.value)
    assert "Traceback" not in str(caught.value)
    with pytest.raises(AppError, match="History item 1"):
        client.predict(question="q", history=[{"role": "bot", "content": "x"}], api_name="/ask")


def test_ask_is_documented_with_question_and_history(client: Any) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/ask"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["question", "history"]
    # Only /ask is public: the page's own events are not part of the API.
    assert list(info["named_endpoints"]) == ["/ask"]


def test_several_clients_are_served_at_once(server: str) -> None:
    from gradio_client import Client

    questions = [
        "What NDCG scores did SeqDialN achieve on VisDial v1.0?",
        "How does averaging the weights of fine-tuned models improve accuracy?",
        "Which dataset records biological experiments from several camera viewpoints?",
    ]
    results: dict[int, Any] = {}

    def ask(i: int) -> None:
        c = Client(server, verbose=False, download_files=False)
        results[i] = c.predict(question=questions[i], history=[], api_name="/ask")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1, 2]
    assert results[0]["citations"][0]["title"].startswith("SeqDialN")
    assert all(r["citations"] for r in results.values())


def test_login_is_required_when_auth_is_set(
    bundled_db: Path, embeddings: Any, tmp_path: Path
) -> None:
    import httpx
    from gradio_client import Client

    settings = Settings(data_dir=tmp_path / "data", db_dir=bundled_db, auth="ann:s3cret")
    demo, url = start_server(settings, embeddings)
    try:
        assert httpx.get(url + "config", timeout=10).status_code == 401
        bad = httpx.post(url + "login", data={"username": "ann", "password": "x"}, timeout=10)
        assert bad.status_code == 400
        client = Client(url, auth=("ann", "s3cret"), verbose=False, download_files=False)
        result = client.predict(question="What is SeqDialN?", history=[], api_name="/ask")
        assert result["citations"]
    finally:
        demo.close()


@pytest.mark.parametrize("saved_summary", [True, False], ids=["summary-saved", "no-summary"])
def test_paperchat_serve_answers_once_the_model_has_loaded(
    bundled_db: Path, tmp_path: Path, saved_summary: bool
) -> None:
    """The real entry point: the page comes up before the model (and, with the corpus
    summary saved beside the index, before the index opens); /ask waits for them."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    import httpx
    from gradio_client import Client

    db = tmp_path / "db"
    shutil.copytree(bundled_db, db)
    assert (db / "summary.json").is_file()
    if not saved_summary:  # as an index written before summaries were saved
        (db / "summary.json").unlink()
    port = free_port()
    env = {**os.environ, "PAPERCHAT_DATA_DIR": str(tmp_path / "data")}
    paperchat = str(Path(sys.executable).parent / "paperchat")
    server = subprocess.Popen(
        [paperchat, "serve", "--port", str(port), "--db", str(db)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "paperchat serve did not come up"
            time.sleep(0.2)
        client = Client(url, verbose=False, download_files=False)
        result = client.predict(question="What is SeqDialN?", history=[], api_name="/ask")
        assert result["citations"][0]["title"].startswith("SeqDialN")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # It stopped because it was asked to (SIGTERM, or a clean exit on it), not by crashing.
    assert server.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), server.returncode


def test_gradio_is_imported_without_regenerating_its_stubs() -> None:
    """ui.app.import_gradio switches off gradio's per-import .pyi regeneration (1.1 s of
    its 1.8 s import) and nothing else: a fresh interpreter still builds a working page."""
    import subprocess
    import sys

    code = (
        "from ui.app import import_gradio; import_gradio()\n"
        "import gradio, gradio.component_meta as meta\n"
        "assert meta.create_or_modify_pyi('any', 'Class', []) is None\n"
        "with gradio.Blocks() as demo:\n"
        "    gradio.Textbox(); gradio.Chatbot()\n"
        "print(len(demo.config['components']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) >= 2
