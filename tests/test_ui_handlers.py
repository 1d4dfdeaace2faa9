"""The web chat's behaviour without gradio: a scripted assistant at the layer under test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from rag.errors import CorpusError, InputError, LLMError, StorageError
from rag.settings import Settings
from rag.text import split_sentences
from rag.types import Answer, Citation, CorpusSummary, Hit, IngestReport, Paper, Turn
from ui import render
from ui.handlers import ChatService, history_of, parse_auth
from ui.render import Exchange

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> ${7*7} {{x}}'

SEQ = Paper(
    id="p1",
    title="SeqDialN: Sequential Visual Dialog Networks",
    abstract="We study visual dialog. Code is public. Our model reaches 62.54% NDCG on VisDial.",
    url="https://github.com/example/seqdialn",
    source="page_a.txt",
)
OTHER = Paper(
    id="p2",
    title="Model soups",
    abstract="Averaging weights of fine-tuned models improves accuracy.",
    url="https://example.org/soups",
    source="page_a.txt, page_b.txt",
)
EVIL = Paper(
    id="p3",
    title="Evil <b>title</b>",
    abstract=f"A paper about {XSS} attacks. It is dangerous.",
    url="javascript:alert(1)",
    source="page_b.txt",
)


def answer_for(text: str, cited: Sequence[Paper], retrieved: Sequence[Paper], **kw: Any) -> Answer:
    # As rag.answer builds them: the evidence plus every quoted sentence to highlight.
    citations = [
        Citation(
            n=n,
            paper_id=p.id,
            title=p.title,
            url=p.url,
            evidence=p.abstract.split(". ")[-1],
            highlights=tuple(s for s in split_sentences(p.abstract) if s in text),
        )
        for n, p in enumerate(cited, start=1)
    ]
    hits = [Hit(paper=p, score=9.5 - i) for i, p in enumerate(retrieved)]
    return Answer(
        text=text,
        citations=citations,
        retrieved=hits,
        abstained=kw.pop("abstained", False),
        mode=kw.pop("mode", "extractive"),
        timings_ms=kw.pop("timings_ms", {"total": 42.0}),
        **kw,
    )


class FakeIndex:
    def __init__(self, papers: list[Paper]) -> None:
        self.papers = papers
        self.reads = 0

    def count(self) -> int:
        return len(self.papers)

    def all_papers(self) -> Iterator[Paper]:
        self.reads += 1
        yield from self.papers

    def summary(self) -> CorpusSummary:
        self.reads += 1
        return CorpusSummary.of(self.papers)


class FakeAssistant:
    """Yields scripted pieces then a scripted Answer (or raises), recording each call."""

    def __init__(self, settings: Settings, answer: Answer | None = None,
                 pieces: Sequence[str] = (), error: Exception | None = None) -> None:
        self.settings = settings
        self.index = FakeIndex([SEQ, OTHER, EVIL])
        self.answer = answer
        self.pieces = list(pieces)
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.ingested: list[list[Path]] = []

    def stream(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
               mode: str | None = None) -> Iterator[str | Answer]:
        self.calls.append({"question": question, "history": list(history), "k": k, "mode": mode})
        yield from self.pieces
        if self.error:
            raise self.error
        assert self.answer is not None
        yield self.answer

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
            mode: str | None = None) -> Answer:
        *_, last = self.stream(question, history, k, mode)
        assert isinstance(last, Answer)
        return last

    def ingest(self, paths: list[Path]) -> IngestReport:
        self.ingested.append(paths)
        if paths[0].name.startswith("bad"):
            raise CorpusError(f"{paths[0]}, line 1: not valid JSON. Fix that line.")
        self.index.papers.append(
            Paper(
                id="new", title="Brand new", abstract="New.", url="https://x.org",
                source=paths[0].name,  # as load_corpus names a paper's source
            )
        )
        return IngestReport(papers=len(self.index.papers), new=1, chunks=9)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


SEQ_TEXT = "We study visual dialog. [1] Our model reaches 62.54% NDCG on VisDial. [1]"


def service_with(settings: Settings, **kw: Any) -> tuple[ChatService, FakeAssistant]:
    fake = FakeAssistant(settings, **kw)
    return ChatService(settings, fake, export_dir=settings.data_dir / "exports"), fake


def test_stream_shows_question_then_growing_text_then_linked_answer(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ, OTHER])
    service, fake = service_with(
        settings, answer=answer, pieces=["We study visual dialog. [1]", " Our model [1]"]
    )
    views = list(service.respond("  What NDCG did SeqDialN get?  ", [], "extractive", 3))

    first = views[0]
    assert first.textbox == ""  # the box clears as soon as the question is sent
    assert first.messages[-2] == {"role": "user", "content": "What NDCG did SeqDialN get?"}
    assert not first.done and first.exchanges == []
    streamed = [v.messages[-1]["content"] for v in views[1:-1]]
    assert streamed == [
        render.streaming_markdown("We study visual dialog. [1]"),
        render.streaming_markdown("We study visual dialog. [1] Our model [1]"),
    ]
    final = views[-1]
    assert final.done and len(final.exchanges) == 1
    assert final.exchanges[0].answer is answer
    assert '[\\[1\\]](https://github.com/example/seqdialn "' in final.messages[-1]["content"]
    assert "Answered by **extractive" in final.status and "42 ms" in final.status
    assert "1 cited of 2 retrieved" in final.status
    assert 'id="pc-src-1"' in final.sources
    assert fake.calls == [
        {"question": "What NDCG did SeqDialN get?", "history": [], "k": 3, "mode": "extractive"}
    ]


def test_follow_up_sends_the_answered_history(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ])
    service, fake = service_with(settings, answer=answer)
    first = list(service.respond("What NDCG did SeqDialN get?", [], "auto", 5))[-1]
    failed = Exchange(question="broken", error="LLM down")
    second = list(service.respond("And its code?", [*first.exchanges, failed], "auto", 5))[-1]

    assert fake.calls[1]["history"] == [
        Turn("user", "What NDCG did SeqDialN get?"),
        Turn("assistant", SEQ_TEXT),
    ]
    assert len(second.exchanges) == 3
    assert [m["role"] for m in second.messages] == ["user", "assistant"] * 3


def test_empty_question_is_not_sent(settings: Settings) -> None:
    service, fake = service_with(settings, answer=answer_for(SEQ_TEXT, [SEQ], [SEQ]))
    views = list(service.respond("   ", [], "auto", 5))
    assert len(views) == 1 and views[0].done
    assert "Type a question" in views[0].status
    assert fake.calls == []


def test_sources_panel_highlights_evidence_and_collapses_uncited() -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ, OTHER, EVIL])
    html = render.sources_html(answer)

    assert '<a href="https://github.com/example/seqdialn" target="_blank"' in html
    assert "SeqDialN: Sequential Visual Dialog Networks</a>" in html
    assert "score 9.50" in html
    assert "<mark>Our model reaches 62.54% NDCG on VisDial.</mark>" in html
    assert "<mark>We study visual dialog.</mark>" in html  # quoted in the answer too
    assert "Code is public." in html and "<mark>Code is public." not in html
    uncited = html.split('<details class="pc-uncited">', 1)[1]
    assert "Also retrieved, not cited (2)" in uncited
    assert "Model soups" in uncited and "score 8.50" in uncited
    assert "SeqDialN" not in uncited


def test_untrusted_text_is_escaped_everywhere(settings: Settings) -> None:
    answer = answer_for(f"It says {XSS} [1]", [EVIL], [EVIL, SEQ])
    html = render.sources_html(answer)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    assert "&#36;&#123;7*7&#125;" in html and "&#123;&#123;x&#125;&#125;" in html
    assert "javascript:" not in html  # the unsafe link is shown as plain text
    chat = render.answer_markdown(answer)
    assert "<script" not in chat and "<img" not in chat
    assert "&lt;script&gt;" in chat
    assert "javascript:" not in chat
    question = render.messages([Exchange(question=XSS, answer=answer)])[0]["content"]
    assert "<script" not in question and "&lt;img src=x onerror=" in question


def test_markdown_specials_render_literally() -> None:
    text = "a_b *c* [2] `code` $$x$$ ~~s~~ | t\n  # not a heading\n1. not a list\n- nor this"
    md = render.md_text(text)
    assert md == (
        "a\\_b \\*c\\* \\[2\\] \\`code\\` \\$\\$x\\$\\$ \\~\\~s\\~\\~ \\| t\n"
        "\\# not a heading\n1\\. not a list\n\\- nor this"
    )


def test_marker_links_keep_spacing_and_skip_unknown_numbers() -> None:
    answer = answer_for("First claim. [1] Second claim [3].", [SEQ], [SEQ])
    text = render.answer_markdown(answer)
    assert text.startswith("First claim. [\\[1\\]](https://github.com/example/seqdialn ")
    assert '") Second claim \\[3\\].' in text


def test_abstained_answer_says_so_and_suggests_rephrasing(settings: Settings) -> None:
    answer = answer_for("Nothing here answers that.", [], [OTHER], abstained=True)
    service, _ = service_with(settings, answer=answer)
    final = list(service.respond("Weather in Paris?", [], "auto", 5))[-1]
    reply = final.messages[-1]["content"]
    assert reply.startswith("**No answer in the indexed papers.** Nothing here answers that.")
    assert "rephrasing" in reply
    assert "no supporting paper among 1 retrieved" in final.status
    assert "Closest papers (1)" in final.sources


def test_a_refusal_that_says_what_to_ask_gets_no_second_hint() -> None:
    from rag.answer import NOTHING_ASKED

    text = render.answer_markdown(answer_for(NOTHING_ASKED, [], [OTHER], abstained=True))
    assert "Ask about a topic" in text and "rephrasing" not in text


def test_error_shows_short_message_without_traceback(settings: Settings) -> None:
    service, _ = service_with(
        settings, pieces=["partial"], error=LLMError("The LLM endpoint is down. Try later.")
    )
    final = list(service.respond("What is X?", [], "llm", 5))[-1]
    reply = final.messages[-1]["content"]
    assert reply == "⚠️ The LLM endpoint is down. Try later."
    assert "Traceback" not in reply and "Traceback" not in final.status
    assert final.exchanges[0].error and final.exchanges[0].answer is None
    assert history_of(final.exchanges) == []


def test_note_of_fallback_is_shown(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ], note="LLM timed out. Showing the extractive answer.")
    service, _ = service_with(settings, answer=answer)
    final = list(service.respond("q", [], "auto", 5))[-1]
    assert "*Note: LLM timed out. Showing the extractive answer.*" in final.messages[-1]["content"]
    assert "LLM timed out" in final.status


def test_vote_appends_an_eval_like_record(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ, OTHER])
    service, _ = service_with(settings, answer=answer)
    history = [Turn("user", "earlier"), Turn("assistant", "before")]
    exchanges = [Exchange(question="What NDCG?", history=history, answer=answer, asked_at="t0")]

    message = service.vote(exchanges, 1, True, "  spot on ")
    assert message.startswith("Thanks")
    service.vote(exchanges, 1, False, "")
    assert service.vote(exchanges, 1, "", "").startswith("Vote withdrawn")
    assert service.vote(exchanges, 7, True, "").startswith("That message")

    lines = service.feedback_path.read_text(encoding="utf-8").splitlines()
    assert service.feedback_path == settings.data_dir / "feedback.jsonl"
    assert len(lines) == 2
    up, down = (json.loads(line) for line in lines)
    assert up["question"] == "What NDCG?"
    assert up["history"] == [
        {"role": "user", "content": "earlier"}, {"role": "assistant", "content": "before"}
    ]
    assert up["gold_titles"] == [SEQ.title] and up["key_points"] == []
    assert up["vote"] == "up" and up["comment"] == "spot on"
    assert up["answer"] == SEQ_TEXT and up["mode"] == "extractive"
    assert up["citations"][0]["title"] == SEQ.title
    assert up["retrieved_titles"] == [SEQ.title, OTHER.title]
    assert up["time"] and up["id"].startswith("fb-")
    assert down["vote"] == "down" and down["gold_titles"] == []


def test_concurrent_votes_never_interleave(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT * 50, [SEQ], [SEQ])
    service, _ = service_with(settings, answer=answer)
    exchanges = [Exchange(question="q", answer=answer)]
    threads = [
        threading.Thread(target=service.vote, args=(exchanges, 1, True, f"c{i}" * 200))
        for i in range(24)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(x) for x in service.feedback_path.read_text().splitlines()]
    assert sorted(r["comment"] for r in records) == sorted(f"c{i}" * 200 for i in range(24))


def test_export_markdown_has_questions_answers_sources(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ])
    service, _ = service_with(settings, answer=answer)
    exchanges = [
        Exchange(question="What NDCG?", answer=answer),
        Exchange(question="Broken?", error="The index is busy."),
    ]
    path = service.write_export(exchanges)
    assert path is not None and path.suffix == ".md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# paperchat conversation")
    # Escaped Markdown (see test_export_escaping.py): renders as exactly these characters.
    assert "## 1. What NDCG?" in text and SEQ_TEXT.replace("[1]", "\\[1\\]") in text
    assert f"- \\[1\\] [{SEQ.title}]({SEQ.url}) (score 9.50)" in text
    assert "  > Our model reaches 62.54% NDCG on VisDial" in text
    assert "## 2. Broken?" in text and "Error: The index is busy." in text
    assert service.write_export([]) is None


def test_intro_names_the_corpus_and_reads_it_once(settings: Settings) -> None:
    service, fake = service_with(settings)
    intro = service.intro_markdown()
    assert (
        "**3 papers** from page\\_a.txt (listing page, 2 papers) and "
        "page\\_b.txt (listing page, 2 papers)"
    ) in intro
    service.intro_markdown()
    service.examples()
    assert fake.index.reads == 1
    summary = CorpusSummary.of(fake.index.papers)
    assert summary.sources == {"page_a.txt": 2, "page_b.txt": 2}
    assert service.examples() == [f"What does “{p.title}” propose?" for p in fake.index.papers]


def test_page_shows_a_saved_summary_while_the_assistant_is_still_opening(
    settings: Settings,
) -> None:
    # serve builds the page from the summary saved beside the index; questions wait for
    # the assistant, and a failure to open it is shown as its message.
    opening: Future[Any] = Future()
    saved = CorpusSummary.of([SEQ, OTHER])
    service = ChatService(settings, opening, summary=saved)
    assert "**2 papers** from page\\_a.txt (listing page" in service.intro_markdown()
    assert service.examples()[0] == f"What does “{SEQ.title}” propose?"
    fake = FakeAssistant(settings, answer_for("Answer [1].", [SEQ], [SEQ]))
    threading.Timer(0.2, opening.set_result, [fake]).start()
    views = list(service.respond("What is SeqDialN?", [], "extractive", 5))
    assert views[-1].done and "Answer" in views[-1].messages[-1]["content"]

    failed: Future[Any] = Future()
    failed.set_exception(StorageError("Cannot open the index (boom). Rebuild it."))
    views = list(ChatService(settings, failed, summary=saved).respond("Q?", [], "auto", 5))
    assert "Cannot open the index" in views[-1].messages[-1]["content"]
    assert "Traceback" not in views[-1].messages[-1]["content"]


@pytest.mark.integration
def test_examples_are_curated_for_the_bundled_corpus(assistant: Any) -> None:
    service = ChatService(assistant.settings, assistant)
    assert service.examples()[0].startswith("What NDCG scores did SeqDialN")
    assert "**182 papers** from two Hugging Face daily-papers pages." in service.intro_markdown()


def test_ingest_reports_summary_or_clear_error(settings: Settings, tmp_path: Path) -> None:
    service, fake = service_with(settings)
    service.intro_markdown()
    good = tmp_path / "upload" / "mine.jsonl"
    message = service.ingest(str(good))
    assert message.startswith("Added mine.jsonl: Indexed 4 papers (1 new")
    assert fake.ingested == [[good]]
    assert "**4 papers**" in service.intro_markdown() and "mine.jsonl" in service.intro_markdown()

    bad = tmp_path / "upload" / "bad.jsonl"
    error = service.ingest(str(bad))
    assert error == "⚠️ bad.jsonl, line 1: not valid JSON. Fix that line."
    assert "⚠️" in service.ingest(str(tmp_path / "paper.pdf"))
    assert service.ingest(None).startswith("Choose a")


def test_ask_json_is_the_cli_json(settings: Settings) -> None:
    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ])
    service, fake = service_with(settings, answer=answer)
    data = service.ask_json("q", [{"role": "user", "content": "hi"}])
    bibtex = data.pop("bibtex")
    assert data == answer.to_json()
    assert bibtex.startswith("@misc{") and "SeqDialN" in bibtex
    assert fake.calls[0]["history"] == [Turn("user", "hi")]
    with pytest.raises(InputError, match="History item 1"):
        service.ask_json("q", [{"role": "robot", "content": "x"}])


def test_parse_auth() -> None:
    assert parse_auth(None) is None and parse_auth("") is None
    assert parse_auth("ann:s3cr:et") == ("ann", "s3cr:et")
    with pytest.raises(InputError, match="user:password"):
        parse_auth("justuser")


def test_sources_for_a_clicked_message(settings: Settings) -> None:
    a1 = answer_for(SEQ_TEXT, [SEQ], [SEQ])
    a2 = answer_for("Soups work. [1]", [OTHER], [OTHER])
    exchanges = [Exchange(question="1", answer=a1), Exchange(question="2", answer=a2)]
    assert "Sources of answer 1" in ChatService.sources_for_message(exchanges, 1)
    assert "SeqDialN" in ChatService.sources_for_message(exchanges, 0)
    assert "Model soups" in ChatService.sources_for_message(exchanges, 3)


@pytest.mark.integration
def test_real_assistant_streams_a_cited_answer_and_follows_up(assistant: Any) -> None:
    service = ChatService(assistant.settings, assistant)
    views = list(service.respond("What NDCG scores did SeqDialN achieve?", [], "extractive", 5))
    assert len(views) >= 3  # question, at least one streamed piece, final
    final = views[-1]
    assert "SeqDialN" in final.sources and "<mark>" in final.sources
    assert "](https://" in final.messages[-1]["content"]
    follow = list(service.respond("What about its MRR?", final.exchanges, "extractive", 5))[-1]
    answer = follow.exchanges[-1].answer
    assert answer is not None and not answer.abstained
    assert answer.citations[0].title.startswith("SeqDialN")


def test_old_export_files_are_removed(settings: Settings) -> None:
    import os

    answer = answer_for(SEQ_TEXT, [SEQ], [SEQ])
    service, _ = service_with(settings, answer=answer)
    old = service.export_dir / "old"
    old.mkdir(parents=True)
    (old / "paperchat-conversation.md").write_text("x")
    os.utime(old, (0, 0))
    fresh = service.write_export([Exchange(question="q", answer=answer)])
    assert fresh is not None and fresh.exists()
    assert not old.exists()
