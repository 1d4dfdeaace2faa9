"""Unit tests of the OpenAI protocol layer and the API credentials (no server, no sockets)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from rag.errors import IndexMissingError, InputError
from rag.settings import Settings
from rag.types import Answer, Citation, Hit, Paper, Turn
from ui.api_auth import ApiCredentials
from ui.openai_protocol import (
    APIError,
    completion,
    from_paperchat_error,
    parse_chat_request,
    stream_events,
)

CITATION = Citation(1, "p1", "A Paper", "https://example.org/a", "It works.")


def answer(**overrides: Any) -> Answer:
    values: dict[str, Any] = {
        "text": "It works [1].", "citations": [CITATION], "retrieved": [], "abstained": False,
        "mode": "extractive",
    }
    values.update(overrides)
    return Answer(**values)


def request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "paperchat", "messages": list(messages), **extra}


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


# -- requests ---------------------------------------------------------------------------------------
def test_last_user_message_is_the_question_and_earlier_ones_the_history() -> None:
    chat = parse_chat_request(request(
        {"role": "system", "content": "Be brief."},
        user("What is X?"),
        {"role": "assistant", "content": "X is Y [1].\n\nSources:\n[1] A Paper — https://a\n\nNote: n"},
        {"role": "tool", "content": "ignored"},
        user([{"type": "text", "text": "And Z?"}]),
        stream=True, k=3, mode="extractive",
    ))
    assert chat.question == "And Z?" and chat.stream and chat.k == 3 and chat.mode == "extractive"
    # The source list and note paperchat appended are not part of the conversation.
    assert chat.history == [Turn("user", "What is X?"), Turn("assistant", "X is Y [1].")]


def test_an_empty_question_is_left_to_the_question_check() -> None:
    chat = parse_chat_request(request(user("First?"), {"role": "assistant", "content": "A."},
                                      user("  ")))
    assert chat.question.strip() == "" and chat.history[-1] == Turn("assistant", "A.")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ([], 400, "JSON object"),
        ({"messages": [user("q")]}, 400, "`model` is required"),
        ({"model": "gpt-4o", "messages": [user("q")]}, 404, "does not exist"),
        (request(), 400, "non-empty list"),
        (request("hi"), 400, "must be an object"),  # type: ignore[arg-type]
        (request(user("q"), {"role": "assistant", "content": "a"}), 400, "last message"),
        (request(user([{"type": "image_url", "image_url": {"url": "x"}}])), 400, "content part"),
        (request(user(42)), 400, "must be a string"),
        (request(user("q"), n=2), 400, "one choice"),
        (request(user("q"), stream="yes"), 400, "`stream`"),
        (request(user("q"), k=0), 400, "`k`"),
        (request(user("q"), k=True), 400, "`k`"),
        (request(user("q"), mode="fast"), 400, "`mode`"),
    ],
)
def test_bad_requests_are_api_errors(body: Any, status: int, fragment: str) -> None:
    with pytest.raises(APIError) as raised:
        parse_chat_request(body)
    assert raised.value.status == status and fragment in raised.value.message
    assert set(raised.value.body()["error"]) == {"message", "type", "param", "code"}


def test_paperchat_errors_map_to_statuses() -> None:
    assert from_paperchat_error(InputError("bad")).status == 400
    unavailable = from_paperchat_error(IndexMissingError("run paperchat ingest"))
    assert unavailable.status == 503 and unavailable.type == "server_error"


# -- responses ------------------------------------------------------------------------------------
def test_completion_content_and_extra_field() -> None:
    data = completion(answer(note="Something degraded."))
    content = data["choices"][0]["message"]["content"]
    assert content == (
        "It works [1].\n\nSources:\n[1] A Paper — https://example.org/a\n\nNote: Something degraded."
    )
    assert data["paperchat"]["citations"] == [CITATION.to_json()]
    assert data["paperchat"]["note"] == "Something degraded."
    assert data["object"] == "chat.completion" and data["model"] == "paperchat"


def test_an_abstention_has_no_sources_list() -> None:
    content = completion(answer(text="The papers don't say.", citations=[], abstained=True))
    assert content["choices"][0]["message"]["content"] == "The papers don't say."


def test_an_abstention_lists_the_closest_papers_and_a_follow_up_drops_them() -> None:
    near = Hit(paper=Paper(id="p2", title="Near Paper", abstract="…", url="https://b"), score=1.0)
    refused = answer(text="The papers don't say.", citations=[], abstained=True, retrieved=[near])
    content = completion(refused)["choices"][0]["message"]["content"]
    assert content == (
        "The papers don't say.\n\nClosest papers (none clearly answers it):\n- Near Paper — https://b"
    )
    chat = parse_chat_request(request(user("What is X?"), {"role": "assistant", "content": content},
                                      user("And Z?")))
    assert chat.history == [Turn("user", "What is X?"), Turn("assistant", "The papers don't say.")]


def events(lines: list[str]) -> list[Any]:
    out = []
    for line in lines:
        assert line.startswith("data: ") and line.endswith("\n\n")
        payload = line[len("data: "):-2]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_stream_events_order() -> None:
    final = answer(text="It works [1]. Really [1].")
    rest: list[str | Answer] = [" Really [1].", final]
    got = events(list(stream_events("It works [1].", iter(rest), "chatcmpl-x")))
    assert got[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in got[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:]] == [
        "It works [1].", " Really [1].", "\n\nSources:\n[1] A Paper — https://example.org/a"
    ]
    assert [e["choices"][0]["finish_reason"] for e in got[:-1]] == [None, None, None, "stop"]
    assert "paperchat" in got[-2] and all("paperchat" not in e for e in got[:-2])
    assert {e["id"] for e in got[:-1]} == {"chatcmpl-x"}


def test_stream_error_after_start_is_an_error_event() -> None:
    def failing() -> Iterator[str]:
        yield " more"
        raise IndexMissingError("The index is gone: run paperchat ingest.")

    got = events(list(stream_events("Some text", failing())))
    assert got[-1] == "[DONE]"
    assert got[-2]["error"]["message"] == "The index is gone: run paperchat ingest."


def test_stream_without_an_answer_reports_it() -> None:
    got = events(list(stream_events("Some text", iter([]))))
    assert got[-1] == "[DONE]" and "stopped before" in got[-2]["error"]["message"]


# -- credentials ----------------------------------------------------------------------------------
def credentials(auth: str | None = None, token: str | None = None) -> ApiCredentials:
    return ApiCredentials(Settings(auth=SecretStr(auth) if auth else None,
                                   api_token=SecretStr(token) if token else None))


def basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


def test_no_credentials_configured_lets_everyone_in() -> None:
    open_ = credentials()
    assert not open_.required and open_.allows(None) and open_.allows("Bearer anything")


def test_token_and_login_credentials() -> None:
    both = credentials("alice:wonderland", "tok-1")
    assert both.required
    for accepted in ("Bearer tok-1", "bearer  tok-1", "Bearer alice:wonderland",
                     basic("alice:wonderland")):
        assert both.allows(accepted), accepted
    for refused in (None, "", "Bearer", "Bearer tok-2", "Bearer alice:guess", basic("alice:guess"),
                    "Basic !!!", basic("tok-1"), "Token tok-1"):
        assert not both.allows(refused), refused
    assert "PAPERCHAT_API_TOKEN" in both.refusal_message(None)


def test_token_alone_turns_auth_on_and_login_alone_works_without_a_token() -> None:
    token_only = credentials(token="tok-1")
    assert token_only.required and token_only.allows("Bearer tok-1")
    assert not token_only.allows(basic("alice:wonderland"))
    login_only = credentials("alice:wonderland")
    assert login_only.allows("Bearer alice:wonderland") and not login_only.allows("Bearer tok-1")
    assert "PAPERCHAT_API_TOKEN" not in login_only.refusal_message("Bearer x")
