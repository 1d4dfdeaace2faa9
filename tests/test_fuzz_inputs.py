"""Property-based fuzzing (hypothesis) of what users hand paperchat: corpus files as raw
bytes or as JSON records, questions, and histories. Every input ends in papers (or a
question, or turns) or in a PaperchatError, never another exception (issue 12)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.corpus import read_file
from rag.errors import PaperchatError
from rag.inputs import parse_history, validate_question
from rag.papers import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, normalize_title
from rag.text import invalid_text_at

SEARCH = "https://papers.example/search?q={query}"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text of any code point, lone surrogates included (JSON escapes make them).
_CHARS = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())
# Surrogates, NUL, zero-width and compatibility characters made more likely than by chance.
_TRICKY = st.sampled_from(["\ud800", "\udcff", "\udfff", "\x00", "\u200b", "ﬁ", "Ｖ", "\n", "?"])
ANY_TEXT = st.text(alphabet=_CHARS | _TRICKY, max_size=300)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
RECORDS = st.dictionaries(
    st.sampled_from(["title", "abstract", "url", "authors", "date", "extra"]),
    JSON_VALUES | ANY_TEXT,
    max_size=6,
)


def _check_papers(papers: list[Any]) -> None:
    for paper in papers:
        assert paper.id and normalize_title(paper.title)
        assert len(paper.title) <= MAX_TITLE_CHARS and len(paper.abstract) <= MAX_ABSTRACT_CHARS
        for value in (paper.title, paper.abstract, paper.url, paper.date, *paper.authors):
            assert invalid_text_at(value) is None


def _read(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            papers = read_file(path, SEARCH)
        except PaperchatError:
            return
        assert papers
        _check_papers(papers)


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".jsonl", ".json", ".txt", ".md"]))
def test_readers_on_arbitrary_bytes(data: bytes, suffix: str) -> None:
    _read(data, suffix)


@FUZZ
@given(records=st.lists(RECORDS | JSON_VALUES, min_size=1, max_size=5))
def test_jsonl_reader_on_arbitrary_records(records: list[Any]) -> None:
    lines = "\n".join(json.dumps(r) for r in records)  # ASCII: surrogates become \ud800
    _read(lines.encode(), ".jsonl")


@FUZZ
@given(paragraphs=st.lists(ANY_TEXT.filter(lambda t: invalid_text_at(t) is None), max_size=6))
def test_listing_reader_on_arbitrary_paragraphs(paragraphs: list[str]) -> None:
    _read("\n\n".join(paragraphs).encode("utf-8"), ".txt")


@FUZZ
@given(question=JSON_VALUES | ANY_TEXT | st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_question_validation(question: Any) -> None:
    try:
        text = validate_question(question, 2000)
    except PaperchatError:
        return
    assert text and text == text.strip() and len(text) <= 2000
    assert invalid_text_at(text) is None
    text.encode("utf-8")


@FUZZ
@given(
    history=JSON_VALUES
    | st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", ""]), "content": ANY_TEXT}
        )
        | JSON_VALUES,
        max_size=5,
    )
)
def test_history_validation(history: Any) -> None:
    try:
        turns = parse_history(history)
    except PaperchatError:
        return
    for turn in turns:
        assert turn.role in ("user", "assistant")
        turn.content.encode("utf-8")
