"""LLM answers through any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp, LM Studio).

The only module that imports openai / langchain_openai. An LCEL chain (prompt | ChatOpenAI)
streams the answer; rag.citations checks every marker while it streams and the whole
answer after it. Faults end in a PaperchatError (the pipeline then shows the extractive
answer with a note) or, once text has been shown, in an Answer that says what went wrong.

Retries are paperchat's, not the client's: the openai client retries timeouts too, which
turns a hung endpoint into (1 + max_retries) x timeout. Here a timeout ends the attempt
at once; 429/5xx are retried with backoff (or after Retry-After); connection failures are
retried once. After a timeout or an unreachable endpoint, questions skip the LLM for a
short while, so a chat with a dead endpoint stays as fast as the extractive mode.
"""

from __future__ import annotations

import email.utils
import html
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_openai import ChatOpenAI

from rag import prompts
from rag.citations import CitationStream, check_citations
from rag.errors import LLMError
from rag.metadata import byline
from rag.retrieve import Retrieval
from rag.settings import Settings
from rag.text import split_sentences, stems
from rag.types import Answer, Hit, Rejected, Turn

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
# A server asking to wait longer than this is treated as "not now": fall back instead.
MAX_RETRY_AFTER_S = 10.0
CONNECT_RETRY_DELAY_S = 0.25
# Connecting is quick when the endpoint is up; waiting the whole timeout for a dead host
# would make --mode auto slow.
CONNECT_TIMEOUT_S = 5.0
UNREACHABLE_COOLDOWN_S = 30.0
HISTORY_TURNS = 6
# Tokens of llm.context_tokens kept free for the answer.
ANSWER_RESERVE_TOKENS = 512
# The bundled tokenizer's count of a prompt times this is the estimate. Measured: SmolLM2's
# tokenizer counted 0.97-0.99x the bundled model's tokens for paperchat's prompts (k=5 and
# k=12); the margin is for tokenizers that split finer.
PROMPT_TOKEN_MARGIN = 1.2
HISTORY_CHARS = 1500
DEFAULT_ENDPOINT = "https://api.openai.com/v1"

# Errors the client stack raises for a reply it cannot use. ValueError/TypeError/KeyError come
# from JSON decoding and from langchain_openai parsing a body that is not a chat completion.
_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    openai.OpenAIError,
    httpx.HTTPError,
    ValueError,
    TypeError,
    KeyError,
)
_ABSTAIN = re.compile(
    r"\b(papers?|sources?|abstracts?)\b[^.]{0,60}?\b(don't|do not|doesn't|does not|cannot|can't)\b"
    r"[^.]{0,20}?\b(answer|contain|address|cover|mention|say|provide|discuss)",
    re.IGNORECASE,
)


class LLMUnavailable(LLMError):
    """The endpoint is unreachable, timed out, or keeps failing; a later try may work."""


@dataclass
class _Reply:
    """How the model's answer stream went."""

    markers: CitationStream  # the text shown so far, with its markers renumbered and checked
    finish: str | None = None  # the last finish_reason the stream sent
    cut: str = ""  # why the stream stopped before the model finished ("" if it did not)
    shown: bool = False  # whether any text reached the reader


class LLMAnswerer:
    """Answers from retrieved papers with the configured chat model. Safe to share between
    chat sessions: the only state is the model client and the endpoint's recent health."""

    def __init__(self, settings: Settings, assistant: Any) -> None:
        self.settings = settings
        self.llm_settings = settings.llm
        self.assistant = assistant
        self.endpoint = _safe_url(settings.llm.base_url or DEFAULT_ENDPOINT)
        self._model: ChatOpenAI | None = None
        self._lock = threading.Lock()
        self._down: tuple[float, str] | None = None  # (monotonic time, message) of last outage
        self.sleep: Callable[[float], None] = time.sleep
        self._answer_prompt = ChatPromptTemplate.from_messages(
            [
                ("system", prompts.ANSWER_SYSTEM),
                MessagesPlaceholder("history"),
                ("human", prompts.ANSWER_HUMAN),
            ]
        )
        self._rewrite_prompt = ChatPromptTemplate.from_messages(
            [
                ("system", prompts.REWRITE_SYSTEM),
                MessagesPlaceholder("history"),
                ("human", prompts.REWRITE_HUMAN),
            ]
        )

    # -- the chat model ------------------------------------------------------------------------
    @property
    def model(self) -> ChatOpenAI:
        with self._lock:
            if self._model is None:
                self._model = self._build_model()
            return self._model

    def _build_model(self) -> ChatOpenAI:
        s = self.llm_settings
        key = s.api_key.get_secret_value() if s.api_key else ""
        if not key:
            if not s.base_url:
                raise LLMError(
                    "No API key for OpenAI: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a "
                    "local OpenAI-compatible server."
                )
            key = "not-needed"  # local servers (llama.cpp, Ollama, vLLM) usually ignore it
        timeout = httpx.Timeout(s.timeout_s, connect=min(s.timeout_s, CONNECT_TIMEOUT_S))
        return ChatOpenAI(
            model=s.model,
            api_key=key,  # type: ignore[arg-type]
            base_url=s.base_url,
            timeout=timeout,
            max_retries=0,  # see the module docstring
            temperature=s.temperature,
            stream_usage=False,  # some compatible servers reject stream_options
            use_responses_api=False,  # local servers speak chat completions only
        )

    # -- follow-up rewriting ---------------------------------------------------------------------
    def standalone_question(self, question: str, history: Sequence[Turn]) -> str | None:
        """The retrieval query for `question`: with a conversation, the model rewrites it into
        a standalone question naming what it refers to; without one, the question itself.
        None when the model's rewrite is not usable: retrieve as without an LLM then."""
        if not history:
            return question
        chain = self._rewrite_prompt | self.model
        inputs = {"history": _history_messages(history), "question": question}
        reply = self._call(lambda: chain.invoke(inputs))
        rewritten = _clean_rewrite(_text_of(reply.content), self.settings.answer.max_question_chars)
        # A rewrite that answers instead of asking, runs long or changes the subject would
        # put the model's own claims into the search; the rule-based handling is used then.
        if rewritten and usable_rewrite(rewritten, question, history):
            return rewritten
        return None

    # -- answering -------------------------------------------------------------------------------
    def stream(
        self, question: str, history: Sequence[Turn], retrieval: Retrieval, k: int
    ) -> Iterator[str | Answer]:
        """Answer text as it streams (markers already verified), then the Answer."""
        start = time.perf_counter()
        hits = list(retrieval.hits[:k])
        idf = self.assistant.index.lexical.idf
        # Computed up front (a few ms): it carries the retrieval's abstention decision and is
        # the answer shown if the model's turns out unusable.
        fallback = self.assistant.extractive(question, retrieval, k, history)
        if not hits or fallback.abstained:
            # Nothing relevant was retrieved (the same test as the extractive mode's), so the
            # model is not asked: it could only answer from its own memory.
            yield fallback.text
            yield Answer(fallback.text, [], hits, abstained=True, mode="llm", query=retrieval.query)
            return
        inputs = _answer_inputs(question, history, retrieval.query, hits)
        hits, trimmed = self._fit_context(inputs, hits)
        chain = self._answer_prompt | self.model
        timings = {"prompt": _ms_since(start)}
        first, rest = self._open_answer(chain, inputs)
        reply = _Reply(CitationStream(len(hits)))
        yield from self._relay(first, rest, reply, start, timings)
        timings["llm"] = _ms_since(start)
        if not reply.shown:
            raise self._nothing_shown(reply, inputs)
        markers = reply.markers
        cited = [hits[n - 1] for n in markers.order]
        verified = check_citations(markers.text, cited, markers.removed, idf, hits)
        notes = verified.notes()
        if markers.order:
            notes = [*trimmed, *notes, *self._ending_notes(reply, inputs)]
            yield Answer(
                markers.text,
                verified.citations,
                hits,
                abstained=False,
                mode="llm",
                timings_ms=timings,
                note=" ".join(notes),
                query=retrieval.query,
            )
        elif not reply.cut and _ABSTAIN.search(markers.text):
            yield _model_abstention(markers.text, hits, notes, timings, retrieval.query)
        else:
            # Uncited text may come from the model's memory: replace it, visibly.
            yield from _instead_of_uncited(reply.cut, fallback, [*trimmed, *notes], timings)

    def _open_answer(self, chain: Any, inputs: dict[str, Any]) -> tuple[Any, Iterator[Any]]:
        """Send the answer request (retried as `_call` retries) -> (first chunk, the rest)."""
        try:
            return self._call(lambda: _open_stream(chain, inputs))
        except LLMError as exc:
            if "not an OpenAI chat completion" in str(exc):
                raise LLMError(f"{exc} {self._context_hint(inputs)}") from None
            raise

    def _relay(
        self, first: Any, rest: Iterator[Any], reply: _Reply, start: float, timings: dict[str, float]
    ) -> Iterator[str]:
        """The model's text as reply.markers releases it (markers checked), until the model
        finishes, the stream fails or llm.deadline_s has passed; `reply` records how it ended."""
        # A stream that trickles never hits the per-read timeout: this bounds the whole answer.
        deadline = start + self.llm_settings.deadline_s
        try:
            chunk = first
            while chunk is not None:
                reply.finish = chunk.response_metadata.get("finish_reason") or reply.finish
                piece = _text_of(chunk.content)
                if piece:
                    out = reply.markers.feed(piece)
                    if out:
                        if not reply.shown:
                            timings["llm_first_token"] = _ms_since(start)
                        reply.shown = True
                        yield out
                if time.perf_counter() > deadline and reply.finish is None:
                    reply.cut = (
                        f"no complete answer within {self.llm_settings.deadline_s:g} s; "
                        "PAPERCHAT_LLM_DEADLINE_S sets this limit"
                    )
                    break
                chunk = next(rest, None)
        except _CLIENT_ERRORS as exc:
            reply.cut = self._describe(exc)
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()
        tail = reply.markers.close()
        if tail:
            reply.shown = True
            yield tail
        if not reply.cut and reply.finish is None:
            reply.cut = "the stream ended before the model finished"

    def _nothing_shown(self, reply: _Reply, inputs: dict[str, Any]) -> LLMError:
        """The error for a reply that showed no text: the pipeline falls back on it."""
        if reply.cut:
            return LLMError(
                f"The LLM's answer broke off before any text arrived ({reply.cut}). "
                + self._context_hint(inputs)
            )
        return LLMError(f"The LLM returned an empty answer. {self._context_hint(inputs)}")

    def _ending_notes(self, reply: _Reply, inputs: dict[str, Any]) -> list[str]:
        """What a cited answer's note says about how the stream ended, if it ended early."""
        if reply.cut:
            return [f"The answer was cut off ({reply.cut}); the part shown may be incomplete."]
        if reply.finish == "length":
            return [
                "The answer reached the model's length limit and may be incomplete. "
                + self._context_hint(inputs)
            ]
        return []

    # -- the context budget ----------------------------------------------------------------------
    def _prompt_tokens(self, inputs: dict[str, Any]) -> int:
        """The prompt's size in tokens, estimated with the bundled model's tokenizer plus a
        margin (chat models' tokenizers differ; they split about as finely on English)."""
        from rag.model_files import count_tokens

        messages = self._answer_prompt.format_messages(**inputs)
        text = "\n".join(_text_of(m.content) for m in messages)
        return int(count_tokens(text) * PROMPT_TOKEN_MARGIN) + 8 * len(messages)

    def _fit_context(
        self, inputs: dict[str, Any], hits: list[Hit]
    ) -> tuple[list[Hit], list[str]]:
        """Shorten the sources until prompt + ANSWER_RESERVE_TOKENS fit llm.context_tokens:
        fewer sentences per paper (the evidence first), then fewer papers. Changes `inputs`;
        -> (the hits still in the prompt, notes saying what was cut)."""
        budget = self.llm_settings.context_tokens - ANSWER_RESERVE_TOKENS
        if self._prompt_tokens(inputs) <= budget:
            return hits, []
        fits = False
        per_paper = 0
        for per_paper in (8, 5, 3, 2, 1):
            inputs["sources"] = _sources_block(hits, per_paper)
            if self._prompt_tokens(inputs) <= budget:
                fits = True
                break
        kept = len(hits)
        while not fits and kept > 1:
            kept -= 1
            inputs["sources"] = _sources_block(hits[:kept], per_paper)
            inputs["count"] = kept
            fits = self._prompt_tokens(inputs) <= budget
        if not fits:
            raise LLMError(
                f"The question and one source sentence do not fit the model's context of "
                f"{self.llm_settings.context_tokens} tokens (llm.context_tokens, with "
                f"{ANSWER_RESERVE_TOKENS} kept for the answer). Set "
                "PAPERCHAT_LLM_CONTEXT_TOKENS to the model's real context size, or start the "
                "server with a larger one."
            )
        papers = "" if kept == len(hits) else f", and only the first {kept} of {len(hits)} papers"
        note = (
            f"The sources were shortened to fit the model's context of "
            f"{self.llm_settings.context_tokens} tokens (PAPERCHAT_LLM_CONTEXT_TOKENS): at most "
            f"{per_paper} sentence{'s' if per_paper > 1 else ''} per abstract{papers}."
        )
        return hits[:kept], [note]

    def _context_hint(self, inputs: dict[str, Any]) -> str:
        """The likely cause of an empty or cut-off reply, and the setting to change."""
        return (
            f"The prompt was about {self._prompt_tokens(inputs)} tokens; a model whose context "
            "is smaller answers with nothing (llama.cpp's server defaults to 2048). Set "
            "PAPERCHAT_LLM_CONTEXT_TOKENS to the model's context size (now "
            f"{self.llm_settings.context_tokens}) so paperchat shortens the sources to fit, "
            "or start the server with a larger context."
        )

    # -- faults ----------------------------------------------------------------------------------
    def _call(self, attempt: Callable[[], T]) -> T:
        """Run one request with bounded retries; every failure ends in an LLMError."""
        self._check_reachable()
        tries = 0
        while True:
            try:
                result = attempt()
            except _CLIENT_ERRORS as exc:
                wait = self._retry_wait(exc, tries)
                if wait is None:
                    raise self._error(exc, tries + 1) from None
                self.sleep(wait)
                tries += 1
                continue
            with self._lock:
                self._down = None
            return result

    def _retry_wait(self, exc: BaseException, tries: int) -> float | None:
        if _is_timeout(exc):
            return None
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            return CONNECT_RETRY_DELAY_S if tries < min(1, self.llm_settings.max_retries) else None
        if isinstance(exc, openai.APIStatusError) and exc.status_code in RETRYABLE_STATUS:
            if tries >= self.llm_settings.max_retries:
                return None
            asked = retry_after(exc.response.headers)
            if asked is not None:
                return asked if asked <= MAX_RETRY_AFTER_S else None
            return min(BACKOFF_BASE_S * 2**tries, BACKOFF_MAX_S) * (1 - 0.25 * random.random())
        return None

    def _check_reachable(self) -> None:
        with self._lock:
            down = self._down
        if down is None:
            return
        ago = time.monotonic() - down[0]
        if ago >= UNREACHABLE_COOLDOWN_S:
            return
        raise LLMUnavailable(
            f"{down[1]} (paperchat tries it again in {UNREACHABLE_COOLDOWN_S - ago:.0f} s)."
        )

    def _error(self, exc: BaseException, attempts: int) -> LLMError:
        """A message a user can act on; never the key, never a traceback."""
        where = f"The LLM endpoint {self.endpoint}"
        model = self.llm_settings.model
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(
                f"{where} rejected the API key (HTTP 401). Check OPENAI_API_KEY "
                "(or PAPERCHAT_LLM_API_KEY)."
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return LLMError(
                f"{where} refused access to model '{model}' (HTTP 403). Check that your key "
                "may use it, or choose another with PAPERCHAT_LLM_MODEL."
            )
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"{where} has no model '{model}' (HTTP 404). Set PAPERCHAT_LLM_MODEL to a model "
                "it serves, and check that OPENAI_BASE_URL ends in /v1."
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 429 or status >= 500 or status in RETRYABLE_STATUS:
                asked = retry_after(exc.response.headers)
                wait = f"; it asks to wait {asked:.0f} s" if asked else ""
                what = "is rate-limiting requests" if status == 429 else "failed"
                return LLMUnavailable(
                    f"{where} {what} (HTTP {status}, {_times(attempts)}{wait})."
                )
            detail = _redact(_server_message(exc), self.llm_settings)
            return LLMError(f"{where} rejected the request (HTTP {status}): {detail}")
        if _is_timeout(exc):
            return self._mark_down(
                f"{where} did not answer within {self.llm_settings.timeout_s:g} s"
            )
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            cause = _redact(_root_cause(exc), self.llm_settings)
            return self._mark_down(f"Cannot reach the LLM endpoint {self.endpoint} ({cause})")
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return LLMError(
                f"{where} reported an error: {_redact(exc.message, self.llm_settings)[:200]}"
            )
        return LLMError(
            f"{where} sent a reply that is not an OpenAI chat completion. Check that "
            "OPENAI_BASE_URL points at an OpenAI-compatible API (it usually ends in /v1)."
        )

    def _mark_down(self, message: str) -> LLMUnavailable:
        with self._lock:
            self._down = (time.monotonic(), message)
        return LLMUnavailable(f"{message}.")

    def _describe(self, exc: BaseException) -> str:
        """Why a stream stopped early, for the note."""
        if _is_timeout(exc):
            return f"no data for {self.llm_settings.timeout_s:g} s"
        if isinstance(exc, httpx.TransportError | openai.APIConnectionError):
            return "the connection was closed"
        if isinstance(exc, openai.APIError):
            return f"the endpoint reported an error: {_redact(exc.message, self.llm_settings)[:120]}"
        return "the endpoint sent data paperchat cannot read"


# -- helpers ------------------------------------------------------------------------------------
def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _answer_inputs(
    question: str, history: Sequence[Turn], query: str, hits: Sequence[Hit]
) -> dict[str, Any]:
    """The answer prompt's variables, with every retrieved paper's whole abstract."""
    return {
        "count": len(hits),
        "sources": _sources_block(hits),
        "question": _question_text(question, history, query),
        "history": _history_messages(history),
    }


def _model_abstention(
    text: str, hits: list[Hit], notes: list[str], timings: dict[str, float], query: str
) -> Answer:
    """The model said the papers do not answer: an abstention, keeping only that statement."""
    if len(split_sentences(text)) > 1:
        # "The papers don't say, but ...": what follows is uncited, so not kept.
        text = prompts.ABSTAIN_SENTENCE
        notes.append(
            "The LLM added uncited text to its statement that the papers don't "
            "answer the question; only the statement is kept."
        )
    return Answer(
        text, [], hits, abstained=True, mode="llm", timings_ms=timings,
        note=" ".join(notes), query=query,
    )  # fmt: skip


def _instead_of_uncited(
    cut: str, fallback: Answer, notes: list[str], timings: dict[str, float]
) -> Iterator[str | Answer]:
    """The model's text cited nothing: reject what streamed, then show the extractive answer."""
    why = (
        f"The LLM's answer was cut off ({cut}) before it cited a paper"
        if cut
        else "The LLM's answer cited none of the retrieved papers"
    )
    yield Rejected(why)
    yield fallback.text
    fallback.note = " ".join([*notes, f"{why}, so the extractive answer is shown instead."])
    fallback.timings_ms = {**timings, **fallback.timings_ms}
    yield fallback


def _open_stream(chain: Any, inputs: dict[str, Any]) -> tuple[Any, Iterator[Any]]:
    """Start the stream and take its first chunk: that is when the request is made and
    when HTTP errors surface, so retrying stops here, before any text is shown."""
    rest = iter(chain.stream(inputs))
    return next(rest, None), rest


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return ""


def _data(text: str) -> str:
    """Source text as inert data: it cannot open or close the <source> delimiters. Quotes
    stay as they are: they cannot end a block, and the model should read titles verbatim."""
    return html.escape(text, quote=False)


def _sources_block(hits: Sequence[Hit], max_sentences: int | None = None) -> str:
    return "\n".join(
        prompts.SOURCE.format(
            n=n,
            title=_data(hit.paper.title),
            meta=_source_meta(hit),
            abstract=_data(_shortened(hit, max_sentences)),
        )
        for n, hit in enumerate(hits, start=1)
    )


def _source_meta(hit: Hit) -> str:
    """Authors and year for the model to name papers by, when the source gave them."""
    by = byline(hit.paper.authors, hit.paper.year)
    return f"\nby: {_data(by)}" if by else ""
def _shortened(hit: Hit, max_sentences: int | None) -> str:
    """At most `max_sentences` of the abstract, in their order: the evidence retrieval found
    first, then the opening sentences."""
    sentences = split_sentences(hit.paper.abstract)
    if max_sentences is None or len(sentences) <= max_sentences:
        return hit.paper.abstract
    evidence = set(hit.evidence)
    ranked = sorted(range(len(sentences)), key=lambda i: (sentences[i] not in evidence, i))
    keep = sorted(ranked[:max_sentences])
    return " ".join(sentences[i] for i in keep)


def _question_text(question: str, history: Sequence[Turn], query: str) -> str:
    if history and query.strip() and query.strip() != question.strip():
        return prompts.FOLLOWUP_QUESTION.format(question=question, standalone=query)
    return question


def _history_messages(history: Sequence[Turn]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for turn in history[-HISTORY_TURNS:]:
        content = turn.content[:HISTORY_CHARS]
        messages.append(HumanMessage(content) if turn.role == "user" else AIMessage(content))
    return messages


def _clean_rewrite(text: str, max_chars: int) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = re.sub(r"^(standalone question|question|rewritten question)\s*:\s*", "", lines[0], flags=re.I)
    line = line.strip().strip("\"'`“”").strip()
    return line if 3 <= len(line) <= max_chars else ""


_QUESTION_START = re.compile(
    r"^(what|which|how|why|who|whom|whose|when|where|does|do|did|is|are|was|were|can|could|"
    r"should|would|will|has|have|had|compare|list|name|explain|describe|tell|give|show|find)\b",
    re.IGNORECASE,
)


def usable_rewrite(rewritten: str, question: str, history: Sequence[Turn]) -> bool:
    """A standalone question the search can use: it asks (ends with "?" or opens like a
    question), stays short (at most 3x the follow-up, or 150 characters more), and keeps the
    conversation's subject (shares a content word with the follow-up or the conversation)."""
    text = rewritten.strip()
    if not (text.endswith("?") or _QUESTION_START.match(text)):
        return False
    if len(text) > max(3 * len(question), len(question) + 150):
        return False
    said = set(stems(question + " " + " ".join(t.content for t in history)))
    return bool(set(stems(text)) & said)


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: retry-after-ms, Retry-After seconds or HTTP date."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, openai.APITimeoutError | httpx.TimeoutException)


def _times(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    text = str(seen) or type(seen).__name__
    return text[:160]


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(message, str):
            return message[:300]
    return str(getattr(exc, "message", "") or exc)[:300]


_KEYLIKE = re.compile(r"(sk-)[A-Za-z0-9_\-*.]{4,}|(Bearer\s+)\S+")


def _redact(text: str, settings: Any) -> str:
    """Remove the configured key and anything key-like from server-supplied text."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if key:
        text = text.replace(key, "***")
    return _KEYLIKE.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


def _safe_url(url: str) -> str:
    """The endpoint as shown in messages: no user:password, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")) or url
