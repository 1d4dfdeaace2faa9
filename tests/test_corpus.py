import json
from pathlib import Path

import pytest

from rag.corpus import bundled_corpus_paths, load_corpus, merge_duplicates, read_file
from rag.errors import CorpusError
from rag.papers import normalize_title, paper_id

SEARCH = "https://papers.example/search?q={query}"
ABSTRACT = (
    "We study a problem of some importance. We propose a method that works well. "
    "Code: https://github.com/example/repo."
)


def listing(tmp_path: Path, body: str, name: str = "page.txt") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_listing_skips_header_and_date_lines(tmp_path: Path) -> None:
    path = listing(
        tmp_path,
        f"new\n\nSubscribe\n\nMar 11\n\nFirst Paper: A Title\n\n{ABSTRACT}\n\n"
        f"Mar 12\n\nSecond Paper\n\n{ABSTRACT.replace('Code', 'More')} Extra sentence here.\n",
    )
    papers = read_file(path, SEARCH)
    assert [p.title for p in papers] == ["First Paper: A Title", "Second Paper"]
    # A URL in the abstract is code, not the paper: the link searches for the title.
    assert papers[0].url == "https://papers.example/search?q=First+Paper%3A+A+Title"
    assert papers[0].link_kind == "search"
    assert papers[0].source == "page.txt"


def test_link_falls_back_to_title_search(tmp_path: Path) -> None:
    path = listing(tmp_path, f"No Link Here\n\n{ABSTRACT.split(' Code')[0]}\n")
    (paper,) = read_file(path, SEARCH)
    assert paper.url == "https://papers.example/search?q=No+Link+Here"


def test_ids_are_stable_and_ignore_case_and_punctuation() -> None:
    assert paper_id("Hello, World!") == paper_id("hello world")
    assert normalize_title("A-B: C") == "abc"


def test_jsonl_reader_and_duplicates_merge(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"title": "Alpha", "abstract": ABSTRACT, "authors": ["A. One", "B. Two"], "date": "2024"},
        {"title": "alpha", "abstract": ABSTRACT, "url": "https://x.example/alpha"},
        {"title": "Beta", "abstract": "Short but fine abstract.", "url": "https://x.example/beta"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    papers = merge_duplicates(read_file(path, SEARCH))
    assert [p.title for p in papers] == ["Alpha", "Beta"]
    assert papers[0].authors == ("A. One", "B. Two")
    assert papers[1].url == "https://x.example/beta"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"abstract": "x"}', 'line 2: missing or empty "title"'),
        ('{"title": "T", "abstract": ""}', 'line 2: missing or empty "abstract"'),
        ("[1, 2]", "line 2: expected a JSON object"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"title": "Fine", "abstract": ABSTRACT}) + "\n" + line + "\n")
    with pytest.raises(CorpusError, match=message):
        read_file(path, SEARCH)


def test_unreadable_inputs_have_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus([tmp_path / "missing.txt"], SEARCH)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (empty_dir / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(CorpusError, match="no readable corpus files"):
        load_corpus([empty_dir], SEARCH)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\xe9 title\n\nabstract".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus([latin], SEARCH)
    nothing = listing(tmp_path, "just a line\n\nanother line\n", "nothing.txt")
    with pytest.raises(CorpusError, match="yields no papers"):
        load_corpus([nothing], SEARCH)


def test_bundled_corpus_has_182_unique_papers_of_191_entries() -> None:
    assert len(bundled_corpus_paths()) == 2
    papers, entries = load_corpus(None, SEARCH)
    assert (len(papers), entries) == (182, 191)
    both = [p for p in papers if "," in p.source]
    assert len(both) == 9
