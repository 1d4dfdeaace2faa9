"""Turning answers into what the page shows: chat Markdown, the sources panel HTML, the status
line and the Markdown export.

Everything that comes from abstracts, questions or an LLM is untrusted text. It is escaped
here, once, so an abstract containing `<script>` or `<img onerror=...>` shows as those
characters and never as markup; the only markup on the page is what these functions write.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rag.citations import MARKER
from rag.metadata import byline
from rag.text import split_sentences
from rag.types import Answer, Citation, Hit, Turn

MODE_LABELS = {"extractive": "extractive (quotes from abstracts)", "llm": "LLM"}
REPHRASE_HINT = (
    "Try rephrasing the question, e.g. name the method, dataset or task you are after, "
    "or add papers that cover it."
)
_MD_INLINE = re.compile(r"([\\`*_\[\]$~|{}])")
# Markdown that only means something at the start of a line: headings, lists, rules, quotes.
_MD_LINE_START = re.compile(r"^([#+=-])")
_MD_LIST_NUMBER = re.compile(r"^(\d+)([.)])")
_SAFE_SCHEMES = ("http://", "https://")


@dataclass
class Exchange:
    """One question and what came back: an Answer, or the error message shown instead."""

    question: str
    history: list[Turn] = field(default_factory=list)
    answer: Answer | None = None
    error: str = ""
    asked_at: str = ""


# ---- escaping ------------------------------------------------------------------------


def md_text(text: str, *, line_start: bool = True) -> str:
    """Untrusted text as Markdown that renders as exactly these characters. `line_start`
    False: the text continues a line (e.g. after a citation marker)."""
    escaped = _MD_INLINE.sub(r"\\\1", html.escape(text, quote=False))
    lines = []
    for n, line in enumerate(escaped.split("\n")):
        if n or line_start:
            # Leading spaces would turn a line into a code block.
            line = _MD_LINE_START.sub(r"\\\1", line.lstrip(" \t"))
            line = _MD_LIST_NUMBER.sub(r"\1\\\2", line)
        lines.append(line)
    return "\n".join(lines)


def html_text(text: str) -> str:
    """Untrusted text for the HTML panel. `{`, `}` and `$` are encoded too, so no client-side
    template syntax (`${...}`, `{{...}}`) can be formed out of an abstract."""
    return (
        html.escape(text, quote=True)
        .replace("{", "&#123;")
        .replace("}", "&#125;")
        .replace("$", "&#36;")
    )


def safe_url(url: str) -> str:
    """http(s) links only (no `javascript:`), with characters that could end the link encoded."""
    url = (url or "").strip()
    if not url.lower().startswith(_SAFE_SCHEMES):
        return ""
    return urllib.parse.quote(url, safe=":/?#@!&'*+,;=%~-._[]")


def _md_title(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=False).replace("\\", "/").replace('"', "'")


# ---- chat messages -------------------------------------------------------------------


def linked_markers(text: str, citations: Sequence[Citation]) -> str:
    """The answer text escaped, each [n] a link to paper n that shows its evidence on hover."""
    by_n = {c.n: c for c in citations}
    out: list[str] = []
    last = 0
    for match in MARKER.finditer(text):
        out.append(md_text(text[last : match.start()], line_start=last == 0))
        for part in match.group(1).split(","):
            n = int(part)
            cite = by_n.get(n)
            url = safe_url(cite.url) if cite else ""
            if cite and url:
                # A title search is not the paper: the hover says so, as the sources panel does.
                search = " (link: title search)" if cite.link_kind == "search" else ""
                hover = _md_title(f"{cite.title}{search} — {cite.evidence}")
                out.append(f'[\\[{n}\\]]({url} "{hover}")')
            else:
                out.append(f"\\[{n}\\]")
        last = match.end()
    out.append(md_text(text[last:], line_start=last == 0))
    return "".join(out)


def streaming_markdown(partial: str) -> str:
    """Text still arriving: escaped, markers plain until the Answer says what they point to."""
    return md_text(partial) + " ▌"


def answer_markdown(answer: Answer) -> str:
    """The finished answer as it stays in the chat."""
    if answer.abstained:
        body = md_text(answer.text.strip())
        # Both refusals of rag.answer already say what to try; a caller's own may not.
        says_what_to_try = any(w in answer.text.lower() for w in ("rephras", "ask about"))
        hint = "" if says_what_to_try else " " + md_text(REPHRASE_HINT)
        text = f"**No answer in the indexed papers.** {body}{hint}"
    else:
        text = linked_markers(answer.text.strip(), answer.citations)
    if answer.note:
        text += f"\n\n*Note: {md_text(answer.note)}*"
    return text


def error_markdown(message: str) -> str:
    return f"⚠️ {md_text(message)}"


def messages(exchanges: Sequence[Exchange]) -> list[dict[str, str]]:
    """The chat as Gradio-style message dicts: exactly two messages per exchange, so the
    assistant message of exchange i is message 2*i + 1."""
    out: list[dict[str, str]] = []
    for ex in exchanges:
        out.append({"role": "user", "content": md_text(ex.question)})
        if ex.answer is not None:
            content = answer_markdown(ex.answer)
        else:
            content = error_markdown(ex.error or "No answer.")
        out.append({"role": "assistant", "content": content})
    return out


# ---- status line ---------------------------------------------------------------------


def status_markdown(answer: Answer) -> str:
    total = answer.timings_ms.get("total")
    took = f" in {total:.0f} ms" if total is not None else ""
    mode = MODE_LABELS.get(answer.mode, answer.mode)
    if answer.abstained:
        what = f"no supporting paper among {len(answer.retrieved)} retrieved"
    else:
        what = f"{len(answer.citations)} cited of {len(answer.retrieved)} retrieved"
    line = f"Answered by **{mode}**{took} · {what}"
    if answer.note:
        line += f" · {md_text(answer.note)}"
    return line


# ---- sources panel -------------------------------------------------------------------

SOURCES_EMPTY = (
    '<div class="pc-sources pc-empty">The papers behind each answer appear here: the '
    "abstract with the quoted sentences highlighted and the retrieval score.</div>"
)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def highlighted_abstract(abstract: str, evidence: Sequence[str]) -> str:
    """The abstract as HTML, each sentence used as evidence wrapped in <mark>."""
    wanted = [_norm(e) for e in evidence if e.strip()]
    parts = []
    for sentence in split_sentences(abstract) or [abstract]:
        key = _norm(sentence)
        hit = bool(key) and any(key == w or (len(key) > 20 and key in w) for w in wanted)
        parts.append(f"<mark>{html_text(sentence)}</mark>" if hit else html_text(sentence))
    return " ".join(parts)


def _link(url: str, label: str) -> str:
    href = safe_url(url)
    if not href:
        return html_text(label)
    return (
        f'<a href="{html.escape(href, quote=True)}" target="_blank" '
        f'rel="noopener noreferrer nofollow">{html_text(label)}</a>'
    )


def _byline(authors: Sequence[str], year: str) -> str:
    """`Lin et al., 2024` beside a title, when the source gave authors or a year."""
    text = byline(authors, year)
    return f' <span class="pc-byline">{html_text(text)}</span>' if text else ""


def _search_label(link_kind: str) -> str:
    """Says so when the link only searches for the title (no DOI, arXiv id or url known)."""
    if link_kind != "search":
        return ""
    return (
        ' <span class="pc-search" title="no DOI, arXiv id or paper URL is known: the link '
        'searches for the title">search</span>'
    )


def _score(hit: Hit | None) -> str:
    if hit is None:
        return ""
    return f'<span class="pc-score" title="fused retrieval score">score {hit.score:.2f}</span>'


def sources_html(answer: Answer | None, heading: str = "Sources") -> str:
    """Cited papers with highlighted evidence and scores; other retrieved papers collapsed."""
    if answer is None:
        return SOURCES_EMPTY
    hits = {h.paper.id: h for h in answer.retrieved}
    cited_ids = set()
    blocks = [f'<div class="pc-sources"><h3>{html_text(heading)}</h3>']
    for cite in answer.citations:
        cited_ids.add(cite.paper_id)
        hit = hits.get(cite.paper_id)
        abstract = hit.paper.abstract if hit else cite.evidence
        # The sentences rag.citations chose for this marker, by the rule that verified it.
        evidence = list(cite.highlights) or [cite.evidence]
        blocks.append(
            f'<div class="pc-source" id="pc-src-{cite.n}">'
            f'<div class="pc-source-head"><span class="pc-n">[{cite.n}]</span> '
            f"{_link(cite.url, cite.title)}{_search_label(cite.link_kind)}"
            f"{_byline(cite.authors, cite.year)} {_score(hit)}</div>"
            f'<p class="pc-abstract">{highlighted_abstract(abstract, evidence)}</p></div>'
        )
    if not answer.citations:
        blocks.append('<p class="pc-none">No paper was cited for this answer.</p>')
    others = [h for h in answer.retrieved if h.paper.id not in cited_ids]
    if others:
        label = "Closest papers" if answer.abstained else "Also retrieved, not cited"
        blocks.append(
            f'<details class="pc-uncited"><summary>{label} ({len(others)})</summary><ul>'
        )
        for hit in others:
            blocks.append(
                f"<li>{_link(hit.paper.url, hit.paper.title)}"
                f"{_search_label(hit.paper.link_kind)}"
                f"{_byline(hit.paper.authors, hit.paper.year)} {_score(hit)}"
                f"<details><summary>abstract</summary><p>{html_text(hit.paper.abstract)}</p>"
                "</details></li>"
            )
        blocks.append("</ul></details>")
    blocks.append("</div>")
    return "".join(blocks)


# ---- export --------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def export_link(text: str, url: str) -> str:
    """`[text](url)` for an http(s) URL (characters that could end the link percent-encoded);
    for any other scheme (javascript:, data:, ...) the text alone, saying the link was dropped."""
    label = md_text(text, line_start=False)
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        return f"{label} (link removed: not http or https)" if url.strip() else label
    safe = "".join(
        f"%{ord(ch):02X}" if ch in ' ()<>[]"\'`\\' or ord(ch) < 33 else ch for ch in url.strip()
    )
    return f"[{label}]({safe})"


def export_markdown(exchanges: Sequence[Exchange], now: datetime | None = None) -> str:
    """The conversation as a Markdown document: questions, answers, sources with evidence.

    Every text in it came from a user, an abstract or a model, so all of it is escaped
    (HTML renders as text in any Markdown viewer) and only http(s) links stay links.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# paperchat conversation", "", f"Exported {stamp}.", ""]
    for number, ex in enumerate(exchanges, start=1):
        lines += [f"## {number}. {md_text(_one_line(ex.question))}", ""]
        answer = ex.answer
        if answer is None:
            lines += [f"Error: {md_text(ex.error or '', line_start=False)}", ""]
            continue
        lines += [md_text(answer.text.strip()), ""]
        if answer.abstained:
            lines += ["(No answer in the indexed papers.)", ""]
        if answer.note:
            lines += [f"Note: {md_text(answer.note, line_start=False)}", ""]
        if answer.citations:
            hits = {h.paper.id: h for h in answer.retrieved}
            lines += ["Sources:", ""]
            for c in answer.citations:
                hit = hits.get(c.paper_id)
                score = f" (score {hit.score:.2f})" if hit else ""
                by = byline(c.authors, c.year)
                by = f" ({md_text(by)})" if by else ""
                search = " (title search)" if c.link_kind == "search" else ""
                link = export_link(_one_line(c.title), c.url)
                lines.append(f"- \\[{c.n}\\] {link}{search}{by}{score}")
                if c.evidence:
                    lines.append(f"  > {md_text(_one_line(c.evidence), line_start=False)}")
            lines.append("")
        total = answer.timings_ms.get("total")
        took = f", {total:.0f} ms" if total is not None else ""
        lines += [f"*Mode: {md_text(answer.mode, line_start=False)}{took}.*", ""]
    return "\n".join(lines).rstrip() + "\n"
