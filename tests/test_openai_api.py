"""The OpenAI-compatible API of a real `paperchat serve` on 127.0.0.1, called with the real
`openai` client: non-streamed and streamed answers with citations, follow-ups, error objects,
the LLM mode against a loopback chat-completions server, and auth."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_server import FakeOpenAI, Recorded, Reply, error, text
from process_server import child_env, free_port, http_status, paperchat_process
from pydantic import SecretStr

from rag.citations import MARKER, cited_claims
from rag.settings import LLMSettings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"
KEY = "sk-test-upstream-3b9d"


@pytest.fixture(scope="module")
def base_url(
    bundled_db: Path, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`paperchat serve` in its own process over the shared bundled index (read only)."""
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--db", str(bundled_db)]
    env = child_env(root / "data", model_cache)
    with paperchat_process(args, env, root / "serve.log",
                           lambda: http_status(f"{url}/v1/models") == 200):
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=300)


def split_answer(content: str) -> tuple[str, dict[int, str]]:
    """(the answer text, {n: "Title — url"} of its Sources list)."""
    answer, _, rest = content.partition("\n\nSources:\n")
    sources_block = rest.split("\n\nNote: ")[0]
    sources = {}
    for line in sources_block.splitlines():
        match = re.match(r"\[(\d+)\] (.+)", line)
        assert match, f"not a source line: {line!r}"
        sources[int(match.group(1))] = match.group(2)
    return answer, sources


def assert_markers_match_sources(content: str, structured: dict[str, Any]) -> None:
    answer, sources = split_answer(content)
    cited = [n for n, _ in cited_claims(answer)]
    assert cited, "the answer cites nothing"
    assert set(cited) == set(sources) == {c["n"] for c in structured["citations"]}
    for citation in structured["citations"]:
        # "[n] Title (authors, year) — url", "(search)" after a title-search link.
        line = sources[citation["n"]]
        assert line.startswith(citation["title"]) and f" — {citation['url']}" in line
        assert citation["paper_id"] and citation["evidence"]
    assert structured["answer"] == answer


def stream_chat(client: openai.OpenAI, messages: list[dict[str, str]], **extra: Any
                ) -> tuple[list[Any], str]:
    chunks: list[Any] = list(client.chat.completions.create(
        model="paperchat", messages=messages, stream=True, **extra  # type: ignore[arg-type]
    ))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    return chunks, content


# -- extractive mode, the default of a server without an LLM ---------------------------------------
def test_models_lists_paperchat(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["paperchat"]
    assert client.models.retrieve("paperchat").id == "paperchat"


def test_completion_carries_markers_sources_and_structured_citations(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": QUESTION}]
    )
    assert response.object == "chat.completion" and response.model == "paperchat"
    choice = response.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    structured = response.model_extra["paperchat"]  # type: ignore[index]
    assert_markers_match_sources(content, structured)
    assert structured["citations"][0]["title"].startswith("SeqDialN")
    assert "62.54% NDCG" in content
    assert structured["mode"] == "extractive" and structured["abstained"] is False


def test_stream_sends_marked_text_then_sources_and_citations_before_done(
    client: openai.OpenAI, base_url: str
) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    chunks, content = stream_chat(client, messages)
    assert chunks[0].choices[0].delta.role == "assistant"
    *middle, last = chunks
    text_chunks = [c.choices[0].delta.content for c in middle if c.choices[0].delta.content]
    # The answer arrives in sentence pieces (one or two for this question), each already
    # carrying its marker.
    assert text_chunks
    assert all(MARKER.search(piece) for piece in text_chunks)
    assert all("Sources:" not in piece for piece in text_chunks)
    assert all(c.choices[0].finish_reason is None for c in middle)
    # The final chunk: the source list as delta.content, the structured answer beside it.
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content.startswith("\n\nSources:\n[1] SeqDialN")
    assert "paperchat" not in (middle[-1].model_extra or {})
    assert_markers_match_sources(content, last.model_extra["paperchat"])  # type: ignore[index]
    # What a delta-only client ends with is exactly the non-streamed message.
    response = client.chat.completions.create(model="paperchat", messages=messages)  # type: ignore[arg-type]
    assert content == response.choices[0].message.content
    # On the wire: the chunk with the citations is the last event before [DONE].
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps({"model": "paperchat", "stream": True, "messages": messages}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as wire:
        assert wire.headers["Content-Type"].startswith("text/event-stream")
        events = [e for e in wire.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert "citations" in json.loads(events[-2].removeprefix("data: "))["paperchat"]


def test_follow_up_uses_the_earlier_messages(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": QUESTION}]
    )
    history = [
        {"role": "system", "content": "You are a helpful assistant."},  # ignored
        {"role": "user", "content": QUESTION},
        # Sent back as the client got it, Sources list included.
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "And what MRR did it get?"},
    ]
    response = client.chat.completions.create(model="paperchat", messages=history)  # type: ignore[arg-type]
    structured = response.model_extra["paperchat"]  # type: ignore[index]
    assert structured["citations"][0]["title"].startswith("SeqDialN")
    # The first answer already quoted both MRR sentences, so the follow-up says so rather
    # than repeating them or quoting a sentence that does not answer it.
    content = response.choices[0].message.content or ""
    assert "says nothing more on this than the answer above" in content
    alone = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": "And what MRR did it get?"}]
    )
    alone_titles = [c["title"] for c in alone.model_extra["paperchat"]["citations"]]  # type: ignore[index]
    assert not any(t.startswith("SeqDialN") for t in alone_titles)
    _, streamed = stream_chat(client, history)
    assert streamed == response.choices[0].message.content


def test_bad_requests_get_openai_error_objects(client: openai.OpenAI, base_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert unknown_model.value.code == "model_not_found"
    assert unknown_model.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="question is empty"):
        client.chat.completions.create(model="paperchat", messages=[{"role": "user", "content": " "}])
    with pytest.raises(openai.BadRequestError, match="last message must be the user"):
        client.chat.completions.create(
            model="paperchat", messages=[{"role": "assistant", "content": "hello"}]
        )
    with pytest.raises(openai.BadRequestError, match="characters long"):
        client.chat.completions.create(
            model="paperchat", messages=[{"role": "user", "content": "why " * 1000}], stream=True
        )
    with pytest.raises(openai.BadRequestError, match="LLM mode needs a model"):
        client.chat.completions.create(
            model="paperchat", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"mode": "llm"},
        )
    with pytest.raises(openai.BadRequestError, match="`k` must be"):
        client.chat.completions.create(
            model="paperchat", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"k": 99},
        )
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="paperchat", input="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    # Not JSON at all: still an error object, never a traceback.
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=60)
    assert raw.value.code == 400
    body = json.loads(raw.value.read())
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in json.dumps(body)
    # The right route with the wrong method says which method it takes.
    with pytest.raises(urllib.error.HTTPError) as wrong_method:
        urllib.request.urlopen(f"{base_url}/chat/completions", timeout=60)
    assert wrong_method.value.code == 405 and wrong_method.value.headers["Allow"] == "POST"
    assert "takes POST, not GET" in json.loads(wrong_method.value.read())["error"]["message"]


def test_k_extension_limits_the_papers(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": QUESTION}], extra_body={"k": 2}
    )
    assert len(response.model_extra["paperchat"]["retrieved"]) == 2  # type: ignore[index]


def test_concurrent_clients_all_get_cited_answers(base_url: str) -> None:
    """20 clients x 3 questions at once, half streamed: every reply complete and consistent."""
    from concurrent.futures import ThreadPoolExecutor

    questions = [
        QUESTION,
        "Which dataset records biological experiments from several camera viewpoints?",
        "How does averaging the weights of fine-tuned models improve accuracy?",
        "Which benchmarks evaluate multimodal LLMs on video understanding?",
    ]

    def one_client(c: int) -> list[tuple[str, str, dict[str, Any]]]:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600)
        replies = []
        for i in range(3):
            question = questions[(c + i) % len(questions)]
            messages = [{"role": "user", "content": question}]
            if (c + i) % 2:
                chunks, content = stream_chat(client, messages)
                structured = chunks[-1].model_extra["paperchat"]  # type: ignore[index]
            else:
                reply = client.chat.completions.create(model="paperchat", messages=messages)  # type: ignore[arg-type]
                content = reply.choices[0].message.content or ""
                structured = reply.model_extra["paperchat"]  # type: ignore[index]
            replies.append((question, content, structured))
        return replies

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = [r for replies in pool.map(one_client, range(20)) for r in replies]
    assert len(results) == 60
    by_question: dict[str, set[str]] = {}
    for question, content, structured in results:
        assert_markers_match_sources(content, structured)
        by_question.setdefault(question, set()).add(content)
    # Concurrency changes nothing: each question got one and the same answer every time.
    assert all(len(contents) == 1 for contents in by_question.values())


# -- LLM mode: a server whose LLM is a loopback chat-completions endpoint --------------------------
def start_in_process(settings: Settings, embeddings: Any) -> tuple[Any, str]:
    from rag.pipeline import Assistant
    from ui.app import build_app, launch

    demo = build_app(Assistant.open(settings, embeddings=embeddings))
    settings.ui.port = free_port()
    _, url, _ = launch(demo, settings, prevent_thread_lock=True, quiet=True)
    return demo, url.rstrip("/")


def seqdialn_number(request: Recorded) -> int:
    for n, title in re.findall(r'<source id="(\d+)">\ntitle: ([^\n]*)', request.prompt):
        if title.startswith("SeqDialN"):
            return int(n)
    raise AssertionError("SeqDialN is not among the sources sent")


@pytest.fixture(scope="module")
def llm_api(
    bundled_db: Path, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FakeOpenAI, openai.OpenAI]]:
    with FakeOpenAI(api_key=KEY, models={"test-model"}) as upstream:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("llm-api"),
            db_dir=bundled_db,
            llm=LLMSettings(model="test-model", api_key=SecretStr(KEY), base_url=upstream.base_url,
                            timeout_s=2.0, max_retries=0),
        )
        demo, url = start_in_process(settings, embeddings)
        try:
            yield upstream, openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        finally:
            demo.close()


def test_llm_stream_shows_only_verified_markers(
    llm_api: tuple[FakeOpenAI, openai.OpenAI]
) -> None:
    upstream, client = llm_api

    def reply(request: Recorded) -> Reply:
        n = seqdialn_number(request)
        return text(f"SeqDialN reaches 62.54% NDCG on VisDial v1.0 [{n}], as paper [9] agrees.",
                    chunk_chars=4)

    upstream.responder = reply
    chunks, content = stream_chat(client, [{"role": "user", "content": QUESTION}])
    pieces = [c.choices[0].delta.content or "" for c in chunks[:-1]]
    assert len([p for p in pieces if p]) >= 3  # the model's stream, passed on as it came
    # The invented [9] never reached the client, not even in a piece.
    assert "[9]" not in split_answer(content)[0] and not any("9]" in p for p in pieces[:-1])
    structured = chunks[-1].model_extra["paperchat"]  # type: ignore[index]
    assert structured["mode"] == "llm"
    assert_markers_match_sources(content, structured)
    assert structured["citations"][0]["title"].startswith("SeqDialN")
    assert structured["note"] and f"Note: {structured['note']}" in content
    response = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": QUESTION}]
    )
    assert response.choices[0].message.content == content
    assert KEY not in content + json.dumps(structured)


def test_llm_failure_falls_back_to_extractive_with_a_note(
    llm_api: tuple[FakeOpenAI, openai.OpenAI]
) -> None:
    upstream, client = llm_api
    upstream.responder = lambda request: error(500, "upstream exploded")
    _, content = stream_chat(client, [{"role": "user", "content": QUESTION}])
    response = client.chat.completions.create(
        model="paperchat", messages=[{"role": "user", "content": QUESTION}], extra_body={"mode": "llm"}
    )
    for text_, structured in ((content, None), (response.choices[0].message.content or "",
                                                 response.model_extra["paperchat"])):  # type: ignore[index]
        answer, sources = split_answer(text_)
        assert "62.54% NDCG" in answer and sources[1].startswith("SeqDialN")
        assert "extractive answer instead" in text_.split("\n\nNote: ")[1]
        if structured is not None:
            assert structured["mode"] == "extractive"
            assert_markers_match_sources(text_, structured)


# -- auth ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def locked_url(
    bundled_db: Path, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("locked"), db_dir=bundled_db,
        auth=SecretStr("alice:wonderland"), api_token=SecretStr("tok-123"),
    )
    demo, url = start_in_process(settings, embeddings)
    try:
        yield url
    finally:
        demo.close()


def test_auth_refuses_calls_without_accepted_credentials(locked_url: str) -> None:
    anonymous = openai.OpenAI(base_url=f"{locked_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        anonymous.chat.completions.create(
            model="paperchat", messages=[{"role": "user", "content": QUESTION}]
        )
    assert refused.value.code == "invalid_api_key"
    assert "PAPERCHAT_API_TOKEN" in refused.value.message
    with pytest.raises(openai.AuthenticationError):
        anonymous.models.list()
    assert http_status(f"{locked_url}/v1/models") == 401
    assert http_status(f"{locked_url}/v1/nothing-here") == 401  # no route map for strangers
    basic = base64.b64encode(b"alice:wonderland").decode()
    assert http_status(f"{locked_url}/v1/models", {"Authorization": f"Basic {basic}"}) == 200
    wrong_basic = base64.b64encode(b"alice:guess").decode()
    assert http_status(f"{locked_url}/v1/models", {"Authorization": f"Basic {wrong_basic}"}) == 401


def test_auth_accepts_the_token_or_the_login(locked_url: str) -> None:
    for key in ("tok-123", "alice:wonderland"):
        client = openai.OpenAI(base_url=f"{locked_url}/v1", api_key=key, max_retries=0)
        response = client.chat.completions.create(
            model="paperchat", messages=[{"role": "user", "content": QUESTION}]
        )
        assert response.model_extra["paperchat"]["citations"]  # type: ignore[index]
