"""The LLM path's weak spots a real llama.cpp server exposed (issue 12, item 10), here with
the loopback OpenAI-protocol server: the context budget, empty replies, the rejected-text
separator of `ask --stream`, and follow-up rewrites that are not questions."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai_server import FakeOpenAI, Recorded, Reply, raw, text
from test_llm import GOOD, KEY, QUESTION, SEQDIALN, make_assistant, run, server, source_number

from rag.llm import usable_rewrite
from rag.pipeline import Assistant
from rag.types import Rejected, Turn

__all__ = ["make_assistant", "server"]  # fixtures used by the tests below

HISTORY = [
    Turn("user", "What NDCG scores did SeqDialN achieve on VisDial v1.0?"),
    Turn("assistant", "SeqDialN reaches 62.54% NDCG [1]."),
]


def _sources(request: Recorded) -> list[str]:
    return re.findall(r'<source id="\d+">.*?</source>', request.prompt, flags=re.S)


@pytest.mark.integration
def test_sources_are_shortened_to_fit_the_context_and_the_answer_says_so(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    server.responder = lambda r: text(GOOD.format(n=source_number(r, SEQDIALN)))
    _, full = run(make_assistant(context_tokens=100_000), mode="llm", k=8)
    _, short = run(make_assistant(context_tokens=1800), mode="llm", k=8)
    first, second = server.chat_requests()
    assert len(_sources(first)) == 8 and "shortened" not in full.note
    assert len(second.prompt) < len(first.prompt)
    assert "The sources were shortened to fit the model's context of 1800 tokens" in short.note
    assert "PAPERCHAT_LLM_CONTEXT_TOKENS" in short.note
    assert short.mode == "llm" and short.citations[0].title.startswith(SEQDIALN)


@pytest.mark.integration
def test_papers_are_dropped_when_one_sentence_each_does_not_fit(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    server.responder = lambda r: text(GOOD.format(n=source_number(r, SEQDIALN)))
    _, answer = run(make_assistant(context_tokens=1100), mode="llm", k=12)
    [request] = server.chat_requests()
    kept = len(_sources(request))
    assert 1 <= kept < 12
    assert f"only the first {kept} of 12 papers" in answer.note
    # A context too small for anything: the extractive answer, and what to change.
    _, tiny = run(make_assistant(context_tokens=600), mode="llm")
    assert tiny.mode == "extractive" and "PAPERCHAT_LLM_CONTEXT_TOKENS" in tiny.note
    assert len(server.chat_requests()) == 1  # nothing sent that could not fit


@pytest.mark.integration
@pytest.mark.parametrize(
    "reply",
    [
        text("", finish=True),  # an empty stream, as llama.cpp sends on overflow
        raw(b"data: {not json}\n\n", content_type="text/event-stream"),
    ],
)
def test_empty_or_unreadable_reply_names_the_context_size(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant], reply: Reply
) -> None:
    server.script(reply)
    _, answer = run(make_assistant(max_retries=0), mode="llm")
    assert answer.mode == "extractive"
    assert re.search(r"The prompt was about \d+ tokens", answer.note), answer.note
    assert "Set PAPERCHAT_LLM_CONTEXT_TOKENS to the model's context size (now 4096)" in answer.note


@pytest.mark.integration
def test_reply_cut_at_the_length_limit_names_the_context_size(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    # llama.cpp ends a reply that fills the context with finish_reason "length".
    server.responder = lambda r: text(GOOD.format(n=source_number(r, SEQDIALN)), finish_reason="length")
    _, answer = run(make_assistant(), mode="llm")
    assert answer.mode == "llm" and answer.citations[0].title.startswith(SEQDIALN)
    assert "reached the model's length limit and may be incomplete" in answer.note
    assert re.search(r"The prompt was about \d+ tokens", answer.note), answer.note
    assert "Set PAPERCHAT_LLM_CONTEXT_TOKENS to the model's context size (now 4096)" in answer.note


@pytest.mark.integration
def test_rejected_model_text_is_marked_in_the_stream(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    server.script(text("SeqDialN improves NDCG by 6.2% over all baselines."))
    pieces, answer = run(make_assistant(), mode="llm")
    rejections = [p for p in pieces if isinstance(p, Rejected)]
    assert len(rejections) == 1 and rejections[0] == "\n\n"
    assert "cited none of the retrieved papers" in rejections[0].reason
    assert pieces.index(rejections[0]) == len(pieces) - 2  # just before the fallback text
    assert answer.mode == "extractive"


@pytest.mark.integration
def test_cli_stream_prints_a_rule_before_the_fallback(
    server: FakeOpenAI, bundled_db: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from rag.cli import main

    monkeypatch.setenv("PAPERCHAT_LLM_MODEL", "test-model")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script(text("SeqDialN improves NDCG by 6.2% over all baselines."))
    assert main(["ask", QUESTION, "--db", str(bundled_db), "--stream"]) == 0
    out, err = capsys.readouterr()
    assert "6.2%" in out, err
    rule = "— the model's answer above was rejected: The LLM's answer cited none of the retrieved papers —"
    assert rule in out
    before, after = out.split(rule)
    assert "6.2%" in before and "6.2%" not in after and "62.54% NDCG" in after


@pytest.mark.parametrize(
    ("rewrite", "usable"),
    [
        ("What MRR did SeqDialN get on VisDial v1.0?", True),
        ("Which dataset does SeqDialN use", True),
        ("The architecture of SeqDialN is a hybrid of LSTM and Transformer layers.", False),
        ("SeqDialN achieves 62.54% NDCG.", False),
        ("What is the capital of France?", False),  # a question, but another subject
        ("What MRR did SeqDialN get? " + "And more words about it? " * 20, False),
    ],
)
def test_rewrite_must_be_a_short_question_on_the_subject(rewrite: str, usable: bool) -> None:
    assert usable_rewrite(rewrite, "And what MRR did it get?", HISTORY) is usable


@pytest.mark.integration
def test_answer_instead_of_rewrite_falls_back_and_json_shows_the_query(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    def reply(request: Recorded) -> Reply:
        if "Standalone question:" in request.prompt:
            return text("The architecture of SeqDialN is a hybrid of LSTM and Transformer.")
        return text(GOOD.format(n=source_number(request, SEQDIALN)))

    server.responder = reply
    _, answer = run(make_assistant(), "And what MRR did it get?", history=HISTORY, mode="llm")
    assert "hybrid" not in answer.query
    assert "MRR" in answer.query and "SeqDialN" in answer.query  # the rule-based form
    data: dict[str, Any] = answer.to_json()
    assert data["query"] == answer.query
    answer_prompt = server.chat_requests()[-1].prompt
    assert "hybrid" not in answer_prompt
