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

from rag.corpus import read_file, read_source
from rag.errors import PaperchatError
from rag.inputs import parse_history, validate_question
from rag.missing import contrasted_terms, missing_insisted, paper_stems
from rag.papers import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, make_paper, normalize_title
from rag.text import content_words, insisted_terms, invalid_text_at

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
            papers = []
        else:
            assert papers
            _check_papers(papers)
        try:  # --skip-bad: the good records, bad ones skipped with a note
            read = read_source(path, SEARCH, skip_bad=True)
        except PaperchatError:
            return
        _check_papers(read.papers)
        for note in read.skipped:
            note.encode("utf-8")  # shown on a terminal and in the web page


@FUZZ
@given(
    data=st.binary(max_size=2000),
    suffix=st.sampled_from([".jsonl", ".json", ".txt", ".md", ".bib", ".ris"]),
)
def test_readers_on_arbitrary_bytes(data: bytes, suffix: str) -> None:
    _read(data, suffix)


@FUZZ
@given(records=st.lists(RECORDS | JSON_VALUES, min_size=1, max_size=5))
def test_jsonl_reader_on_arbitrary_records(records: list[Any]) -> None:
    lines = "\n".join(json.dumps(r) for r in records)  # ASCII: surrogates become \ud800
    _read(lines.encode(), ".jsonl")


# Field names the BibTeX, RIS and CSL-JSON readers look at.
_BIB_FIELDS = st.sampled_from(["title", "abstract", "author", "year", "doi", "eprint", "url", "journal"])
_RIS_TAGS = st.sampled_from(["TI", "T1", "AB", "N2", "AU", "PY", "DO", "UR", "JO", "ID", "ER", "TY"])
_CSL_FIELDS = ("title", "abstract", "id", "author", "issued", "DOI", "URL", "number")
_LINE_TEXT = ANY_TEXT.map(lambda t: t.replace("\n", " "))


@FUZZ
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["article", "inproceedings", "misc"]),
            _LINE_TEXT,
            st.lists(st.tuples(_BIB_FIELDS, _LINE_TEXT), max_size=6).map(
                lambda fields: [("title", "T" + fields[0][1]), ("abstract", "A" + fields[-1][1]), *fields]
                if fields else fields
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_bibtex_reader_on_arbitrary_entries(entries: list[Any]) -> None:
    text = "".join(
        f"@{kind}{{{key},\n" + "".join(f"  {name} = {{{value}}},\n" for name, value in fields) + "}\n\n"
        for kind, key, fields in entries
    )
    _read(text.encode("utf-8", "surrogatepass"), ".bib")


@FUZZ
@given(
    records=st.lists(
        st.lists(st.tuples(_RIS_TAGS, _LINE_TEXT), max_size=8), min_size=1, max_size=4
    )
)
def test_ris_reader_on_arbitrary_records(records: list[Any]) -> None:
    text = "".join(
        "TY  - JOUR\n" + "".join(f"{tag}  - {value}\n" for tag, value in fields) + "ER  - \n\n"
        for fields in records
    )
    _read(text.encode("utf-8", "surrogatepass"), ".ris")


@FUZZ
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {"title": ANY_TEXT, "abstract": ANY_TEXT},
            optional={name: JSON_VALUES | ANY_TEXT for name in _CSL_FIELDS[2:]},
        )
        | JSON_VALUES,
        max_size=5,
    )
)
def test_csl_json_reader_on_arbitrary_items(items: list[Any]) -> None:
    _read(json.dumps(items).encode(), ".json")  # ASCII: surrogates become \ud800


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


@FUZZ
@given(question=ANY_TEXT, abstract=ANY_TEXT)
def test_missing_term_checks_on_arbitrary_valid_questions(question: str, abstract: str) -> None:
    """What a validated question insists on, or asks in a contrasting form, is always some of
    its own words, whatever the text (the checks run on every answer)."""
    try:
        text = validate_question(question, 2000)
        # An indexed paper passed make_paper's checks; what they refuse never reaches these.
        paper = make_paper("A Study", abstract or "Empty.", source="t", search_url_template=SEARCH)
    except PaperchatError:
        return
    have = paper_stems(paper)
    words = set(content_words(text))
    assert set(contrasted_terms(text, have)) <= words
    assert set(missing_insisted(insisted_terms(text), have)) <= words
