"""The Markdown export of a conversation is escaped (issue 12, item 8): HTML from abstracts,
questions or the model renders as text, and only http(s) links stay links. Checked by
rendering the export with a real CommonMark renderer that passes raw HTML through."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from rag.types import Answer, Citation, Hit, Paper
from ui.render import Exchange, export_link, export_markdown

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
JS_LINK = "[click me](javascript:alert(3))"


def _render(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


def _unsafe(html: str) -> list[str]:
    tags = re.findall(r"<(script|img|iframe|svg)\b", html, flags=re.I)
    hrefs = [h for h in re.findall(r'href="([^"]*)"', html) if not h.startswith(("http://", "https://"))]
    return tags + hrefs


def _conversation() -> list[Exchange]:
    evil = Paper(
        id="p1",
        title=f"Attacks {IMG} and {SCRIPT}",
        abstract=f"An abstract with {SCRIPT} inside. It also links {JS_LINK}.",
        url="javascript:alert(4)",
        source="evil.jsonl",
    )
    fine = Paper(id="p2", title="A fine paper", abstract="Fine.", url="https://x.example/a b)c")
    citations = [
        Citation(n=1, paper_id="p1", title=evil.title, url=evil.url, evidence=f"It links {JS_LINK}."),
        Citation(n=2, paper_id="p2", title=fine.title, url=fine.url, evidence=f"ok {IMG}"),
    ]
    answer = Answer(
        text=f"The model says {IMG} [1] and {SCRIPT} [2]\n# not a heading\n{JS_LINK} [1]",
        citations=citations,
        retrieved=[Hit(paper=evil, score=0.9), Hit(paper=fine, score=0.8)],
        abstained=False,
        mode="llm",
        note=f"A note with {SCRIPT}",
        timings_ms={"total": 12.0},
    )
    return [
        Exchange(question=f"What about {IMG}? {JS_LINK}", answer=answer),
        Exchange(question=SCRIPT, error=f"Error text with {IMG}"),
    ]


def test_export_renders_no_html_and_no_unsafe_links() -> None:
    markdown = export_markdown(_conversation())
    html = _render(markdown)
    assert _unsafe(html) == []
    # The words are all still there, as text.
    for visible in ("&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;",
                    "[click me](javascript:alert(3))", "# not a heading"):  # fmt: skip
        assert visible in html
    assert "(link removed: not http or https)" in html
    assert 'href="https://x.example/a%20b%29c"' in html


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<b>x</b>", "vbscript:x", "x"]
)
def test_only_http_links_are_links(url: str) -> None:
    assert "](" not in export_link("title", url)


def test_http_links_cannot_break_out_of_the_link() -> None:
    link = export_link("t", "https://x.example/p) [y](javascript:alert(1)")
    assert _unsafe(_render(link)) == []
    assert link.startswith("[t](https://x.example/p%29%20%5By%5D%28javascript:alert%281%29")
