"""The OpenAI-compatible routes `paperchat serve` adds beside the web chat (same host and port):

    GET  /v1/models               the one model, "paperchat"
    GET  /v1/models/paperchat
    POST /v1/chat/completions     streamed (SSE) or not; citations in the text and structured

The only module that imports fastapi (gradio's server is a FastAPI app; ui/app.py passes
these routes to it when it launches). The protocol itself lives in ui/openai_protocol.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import BaseRoute

from rag.errors import PaperchatError
from rag.inputs import validate_question
from rag.types import Answer
from ui import openai_protocol as protocol
from ui.api_auth import REALM, ApiCredentials
from ui.openai_protocol import APIError, ChatRequest

log = logging.getLogger("paperchat.api")

# Events of Assistant.stream: text pieces, then the Answer.
_Events = Iterator[str | Answer]


def api_routes(service: Any, settings: Any) -> list[BaseRoute]:
    """The /v1 routes over a ui.handlers.ChatService (its assistant may still be opening:
    requests wait for it, as chat questions do)."""
    credentials = ApiCredentials(settings)
    created = int(time.time())
    router = APIRouter(prefix="/v1")

    def refuse(request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if credentials.allows(header):
            return None
        error = APIError(401, credentials.refusal_message(header), code="invalid_api_key")
        return _error_response(error, {"WWW-Authenticate": f'Bearer realm="{REALM}"'})

    @router.get("/models")
    async def list_models(request: Request) -> Response:
        return refuse(request) or JSONResponse(protocol.models(created))

    @router.get("/models/{model_id}")
    async def get_model(model_id: str, request: Request) -> Response:
        if refused := refuse(request):
            return refused
        if model_id != protocol.MODEL_ID:
            return _error_response(
                APIError(404, f"The model {model_id!r} does not exist here; the only model is "
                         f"{protocol.MODEL_ID!r}.", param="model", code="model_not_found")
            )
        return JSONResponse(protocol.model_card(created))

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        if refused := refuse(request):
            return refused
        try:
            try:
                body = await request.json()
            except ValueError:
                raise APIError(400, "The request body is not valid JSON.") from None
            chat = protocol.parse_chat_request(body)
            if not chat.stream:
                answer = await run_in_threadpool(_ask, service, chat)
                return JSONResponse(protocol.completion(answer))
            events = await run_in_threadpool(_open_stream, service, chat)
            # The first event is taken before the response starts, so an error before any
            # text still gets its own status code rather than an error event in a 200 stream.
            first = await run_in_threadpool(next, events, None)
            if first is None:
                raise APIError(500, "The answer stream was empty. Ask again.", type="server_error")
        except APIError as exc:
            return _error_response(exc)
        except PaperchatError as exc:
            return _error_response(protocol.from_paperchat_error(exc))
        except Exception:
            log.exception("chat completion failed")
            return _error_response(_internal_error())
        return StreamingResponse(
            _guarded(protocol.stream_events(first, events)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def not_found(path: str, request: Request) -> Response:
        if refused := refuse(request):
            return refused
        route = path.strip("/")
        method = _SERVED.get(route)
        if method:  # the right route, the wrong method
            return _error_response(
                APIError(405, f"/v1/{route} takes {method}, not {request.method}.",
                         code="method_not_allowed"),
                headers={"Allow": method},
            )
        served = " and ".join(f"{m} /v1/{r}" for r, m in _SERVED.items())
        return _error_response(
            APIError(404, f"There is no /v1/{path} here: paperchat serves {served}.",
                     code="not_found")
        )

    return list(router.routes)


# The routes above and their methods, for the replies to any other request.
_SERVED = {"models": "GET", "chat/completions": "POST"}


def _checked(service: Any, chat: ChatRequest) -> Any:
    """The assistant, once the question and mode are known to be usable (400 otherwise)."""
    assistant = service.assistant  # waits while the index opens
    validate_question(chat.question, assistant.settings.answer.max_question_chars)
    assistant.resolve_mode(chat.mode)
    return assistant


def _ask(service: Any, chat: ChatRequest) -> Answer:
    return _checked(service, chat).ask(chat.question, chat.history, chat.k, chat.mode)  # type: ignore[no-any-return]


def _open_stream(service: Any, chat: ChatRequest) -> _Events:
    return _checked(service, chat).stream(chat.question, chat.history, chat.k, chat.mode)  # type: ignore[no-any-return]


def _guarded(events: Iterator[str]) -> Iterator[str]:
    """An unexpected failure mid-stream ends it with an error event, not a broken connection."""
    try:
        yield from events
    except Exception:
        log.exception("chat completion stream failed")
        yield protocol.sse(_internal_error().body())
        yield protocol.sse("[DONE]")


def _internal_error() -> APIError:
    return APIError(500, "paperchat failed to answer; the server log has the details.",
                    type="server_error")


def _error_response(error: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)
