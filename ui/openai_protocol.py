"""The OpenAI chat-completions protocol over paperchat's answers, as plain functions.

ui/openai_api.py wires these to HTTP routes; nothing here imports a web framework, so the
request parsing, the completion and chunk objects and the error objects are unit-tested
alone. What a client gets (docs/integrations.md):

- `message.content` (or the concatenated `delta.content` of a stream): the answer with its
  `[n]` markers, then a blank line, `Sources:` and one `[n] Title — url` line per citation
  (under a refusal, `Closest papers (none clearly answers it):` and a `- Title — url` line
  for each of the three closest), then `Note: ...` when something degraded or the cited
  abstracts lack a word the question asks about.
- `paperchat`, an extra top-level field of the completion (of the final chunk when
  streamed): the object `paperchat ask --json` prints (answer, abstained, citations with n,
  paper_id, title, url, evidence, retrieved, mode, timings_ms, note), so programs need not
  parse the text.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rag.answer import CLOSEST_HEADING, closest_papers
from rag.citations import format_sources
from rag.errors import InputError, PaperchatError
from rag.types import Answer, Turn

MODEL_ID = "paperchat"
EXTRA_FIELD = "paperchat"
MODES = ("auto", "extractive", "llm")
MAX_K = 20

# What paperchat itself appends to an answer; removed again when a client sends the answer
# back as history, so a follow-up sees the conversation, not the source list.
_APPENDED = re.compile(rf"\n\n(?:Sources:\n\[\d+\] |{re.escape(CLOSEST_HEADING)}\n- |Note: )")


class APIError(Exception):
    """An error the client gets as an OpenAI error object with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None  # noqa: A002
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def from_paperchat_error(exc: PaperchatError) -> APIError:
    """A bad question or option is the client's (400); anything else is the server's state
    (no index yet, storage unreachable, ...), which the message explains (503)."""
    if isinstance(exc, InputError):
        return APIError(400, str(exc))
    return APIError(503, str(exc), type="server_error", code="unavailable")


@dataclass
class ChatRequest:
    question: str
    history: list[Turn] = field(default_factory=list)
    stream: bool = False
    k: int | None = None
    mode: str | None = None


def parse_chat_request(body: Any) -> ChatRequest:
    """A chat-completions request body -> what paperchat needs, or an APIError (400/404).

    The last message is the question and must be the user's; earlier user and assistant
    messages are the history. System and developer messages are ignored (paperchat answers
    from the papers with its own instructions), as are sampling options such as temperature.
    Two optional extensions: `k` (papers to use, 1-20) and `mode` (auto, extractive, llm).
    """
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object with `model` and `messages`.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, f"`model` is required; use {MODEL_ID!r}.", param="model")
    if model != MODEL_ID:
        raise APIError(
            404,
            f"The model {model!r} does not exist here; the only model is {MODEL_ID!r}.",
            param="model",
            code="model_not_found",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(
            400,
            "`messages` must be a non-empty list of {role, content} objects whose last one is "
            "the user's question.",
            param="messages",
        )
    history: list[Turn] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise APIError(
                400, f"messages[{index}] must be an object with a `role`.", param="messages"
            )
        role = message["role"]
        if role not in ("user", "assistant"):
            continue  # system/developer/tool: not part of the conversation about papers
        text = message_text(message.get("content"), index)
        if role == "assistant":
            text = _APPENDED.split(text, maxsplit=1)[0]
        if text.strip():
            history.append(Turn(role, text))
    last = len(messages) - 1
    if messages[last].get("role") != "user":
        raise APIError(
            400, "The last message must be the user's question (role 'user').", param="messages"
        )
    # validate_question (in the Assistant) explains an empty or over-long question.
    question = message_text(messages[last].get("content"), last)
    if question.strip():
        history.pop()
    n = body.get("n", 1)
    if n not in (1, None):
        raise APIError(400, "paperchat returns one choice per request; set `n` to 1.", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise APIError(400, "`stream` must be true or false.", param="stream")
    k = body.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K):
        raise APIError(400, f"`k` must be a whole number from 1 to {MAX_K}.", param="k")
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        raise APIError(400, f"`mode` must be one of {', '.join(MODES)}.", param="mode")
    return ChatRequest(question, history, bool(stream), k, mode)


def message_text(content: Any, index: int) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(
                part.get("text"), str
            ):
                texts.append(part["text"])
            else:
                raise APIError(
                    400,
                    f"messages[{index}] has a content part paperchat cannot read; send text "
                    "(a string, or parts of type 'text').",
                    param="messages",
                )
        return "\n".join(texts)
    raise APIError(400, f"messages[{index}].content must be a string.", param="messages")


def appended_text(answer: Answer) -> str:
    """What follows the answer text: the source list (a refusal's closest papers), then the
    note."""
    tail = ""
    if answer.citations:
        tail += "\n\nSources:\n" + format_sources(answer.citations)
    elif closest := closest_papers(answer):
        tail += f"\n\n{closest}"
    if answer.note:
        tail += f"\n\nNote: {answer.note}"
    return tail


def extra(answer: Answer) -> dict[str, Any]:
    """The structured answer: Answer.to_json(), so fields added to it reach API clients too."""
    return dict(answer.to_json())


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(answer: Answer, completion_id: str | None = None, created: int | None = None
               ) -> dict[str, Any]:
    """A non-streamed chat.completion object."""
    return {
        "id": completion_id or new_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer.text + appended_text(answer),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        EXTRA_FIELD: extra(answer),
    }


def chunk(
    completion_id: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    answer: Answer | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk; the final one carries the structured answer."""
    data: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if answer is not None:
        data[EXTRA_FIELD] = extra(answer)
    return data


def sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


def stream_events(
    first: str | Answer, rest: Iterable[str | Answer], completion_id: str | None = None
) -> Iterator[str]:
    """Server-sent events for one streamed answer.

    `first` and `rest` are the events of Assistant.stream (text pieces, then the Answer);
    the caller takes the first one before answering with a stream, so errors that happen
    before any text (bad question, no index) still get a proper status code. Text pieces go
    out as they come (in LLM mode their markers are already verified); the final chunk's
    delta.content is the source list (and note), and it carries the structured answer.
    An error after the stream has started becomes an `error` event, then `[DONE]`.
    """
    completion_id = completion_id or new_id()
    created = int(time.time())
    yield sse(chunk(completion_id, created, {"role": "assistant", "content": ""}))
    answer: Answer | None = None
    try:
        for event in _chain(first, rest):
            if isinstance(event, Answer):
                answer = event
                break
            if event:
                yield sse(chunk(completion_id, created, {"content": event}))
    except PaperchatError as exc:
        yield sse(from_paperchat_error(exc).body())
        yield sse("[DONE]")
        return
    if answer is None:
        message = "The answer stopped before it was complete. Ask again."
        yield sse(error_body(message, "server_error", code="incomplete"))
    else:
        yield sse(chunk(completion_id, created, {"content": appended_text(answer)}, "stop", answer))
    yield sse("[DONE]")


def _chain(first: str | Answer, rest: Iterable[str | Answer]) -> Iterator[str | Answer]:
    yield first
    yield from rest


def models(created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(created)]}


def model_card(created: int) -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": created, "owned_by": "paperchat"}
