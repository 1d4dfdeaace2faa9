"""A stream that trickles (one piece at a time, each well inside the per-read timeout) is
bounded by llm.deadline_s (issue 12, item 7). Real openai client, loopback server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from openai_server import FakeOpenAI, Recorded, Reply, text
from test_llm import GOOD, SEQDIALN, make_assistant, run, server, source_number

from rag.pipeline import Assistant

__all__ = ["make_assistant", "server"]  # fixtures used by the tests below

FILLER = " This sentence keeps the stream going without citing anything." * 120


@pytest.mark.integration
def test_trickling_stream_keeps_the_verified_part_at_the_deadline(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    def reply(request: Recorded) -> Reply:
        full = GOOD.format(n=source_number(request, SEQDIALN)) + FILLER
        # One piece every 0.25 s: each arrives long before the 5 s read timeout.
        return text(full, chunk_chars=160, chunk_delay_s=0.25)

    server.responder = reply
    pieces, answer = run(make_assistant(timeout_s=5.0, deadline_s=1.5), mode="llm")
    assert answer.mode == "llm" and answer.citations[0].title.startswith(SEQDIALN)
    assert "62.54% NDCG" in answer.text
    assert len(answer.text) < len(GOOD + FILLER) // 2  # stopped long before the end
    assert "cut off (no complete answer within 1.5 s; PAPERCHAT_LLM_DEADLINE_S" in answer.note
    assert "".join(pieces) == answer.text


@pytest.mark.integration
def test_trickling_stream_without_a_citation_falls_back_at_the_deadline(
    server: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    server.responder = lambda request: text(FILLER, chunk_chars=40, chunk_delay_s=0.25)
    _, answer = run(make_assistant(timeout_s=5.0, deadline_s=1.5), mode="llm")
    assert answer.mode == "extractive" and answer.citations
    assert "no complete answer within 1.5 s" in answer.note
    assert "before it cited a paper, so the extractive answer is shown instead" in answer.note
