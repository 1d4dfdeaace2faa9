"""Paper ids for titles in any script (issue 12, item 1), and re-keying an older index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import HashEmbeddings

import rag.ingest
from rag.corpus import load_corpus, read_file
from rag.errors import CorpusError
from rag.index import PaperIndex
from rag.papers import legacy_paper_id, make_paper, paper_id
from rag.settings import Settings
from rag.types import Paper

SEARCH = "https://papers.example/search?q={query}"
# Titles with no ASCII letter or digit: scheme 1 gave all of them sha1("").
TITLES = {
    "zh": "基于图神经网络的视觉对话",
    "ja": "視覚対話のための注意機構",
    "ru": "Нейронные сети для визуального диалога",
    "el": "Νευρωνικά δίκτυα για οπτικό διάλογο",
}
ABSTRACTS = {
    "zh": "我们提出一种基于图神经网络的视觉对话模型。实验表明该方法有效。",
    "ja": "視覚対話のための新しい注意機構を提案する。実験で有効性を示す。",
    "ru": "Мы предлагаем нейронную сеть для визуального диалога. Эксперименты показывают её пользу.",
    "el": "Προτείνουμε ένα νευρωνικό δίκτυο για οπτικό διάλογο. Τα πειράματα δείχνουν τη χρησιμότητά του.",
}


def _jsonl(tmp_path: Path, rows: list[dict[str, str]], name: str = "papers.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_titles_in_any_script_get_distinct_stable_ids() -> None:
    ids = {lang: paper_id(title) for lang, title in TITLES.items()}
    assert len(set(ids.values())) == len(TITLES)
    assert all(legacy_paper_id(t) == legacy_paper_id("") for t in TITLES.values())  # the bug
    # NFKC and case folding: width variants, ligatures and case give the same paper.
    assert paper_id("ＶＩＳＵＡＬ Dialog") == paper_id("visual dialog")
    assert paper_id("ﬁnding Σίσυφος") == paper_id("FINDING ΣΊΣΥΦΟΣ")
    # Marks are kept, so Devanagari vowel signs tell titles apart.
    assert paper_id("कि") != paper_id("का")
    # ASCII titles keep the ids scheme 1 gave them: nothing to migrate for them.
    assert paper_id("SeqDialN: Sequential Visual Dialog Network") == legacy_paper_id(
        "SeqDialN: Sequential Visual Dialog Network"
    )


def test_four_scripts_ingest_as_four_papers_each_with_its_own_abstract(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [{"title": TITLES[k], "abstract": ABSTRACTS[k]} for k in TITLES])
    papers, entries = load_corpus([path], SEARCH)
    assert (len(papers), entries) == (4, 4)
    index = PaperIndex(Settings(db_dir=tmp_path / "db"), HashEmbeddings(), create=True)  # type: ignore[arg-type]
    report = index.ingest(papers)
    assert (report.papers, report.new) == (4, 4)
    stored = index.papers([paper_id(t) for t in TITLES.values()])
    for lang, title in TITLES.items():
        paper = stored[paper_id(title)]
        assert (paper.title, paper.abstract) == (title, ABSTRACTS[lang])
    # A later file with another such title adds a paper, it does not "update" one.
    more = _jsonl(tmp_path, [{"title": "Ἀρχαῖα ἑλληνικά", "abstract": ABSTRACTS["el"]}], "b.jsonl")
    report = index.ingest(load_corpus([more], SEARCH)[0])
    assert (report.papers, report.new, report.updated) == (5, 1, 0)


@pytest.mark.parametrize("title", ["!!! ???", "—", "  ★ ☆ "])
def test_title_without_letters_is_refused_with_its_line(tmp_path: Path, title: str) -> None:
    path = _jsonl(
        tmp_path,
        [{"title": "Fine", "abstract": ABSTRACTS["ru"]}, {"title": title, "abstract": ABSTRACTS["el"]}],
    )
    with pytest.raises(CorpusError, match=r"papers\.jsonl, line 2: the title .* no letters or digits"):
        read_file(path, SEARCH)


def test_listing_title_without_letters_names_its_line(tmp_path: Path) -> None:
    abstract = "We study a problem of some importance. We propose a method that works well."
    path = tmp_path / "page.txt"
    path.write_text(f"Header\n\nGood Title\n\n{abstract}\n\n\n*** ***\n\n{abstract} More.\n")
    with pytest.raises(CorpusError, match=r"page\.txt, line 8: the title '\*\*\* \*\*\*'"):
        read_file(path, SEARCH)
    with pytest.raises(CorpusError, match="no letters or digits"):
        make_paper("...", abstract, source="x", search_url_template=SEARCH)


def _legacy(paper: Paper) -> Paper:
    return Paper(**{**paper.__dict__, "id": legacy_paper_id(paper.title)})


def test_older_index_is_rekeyed_once_and_reingest_adds_no_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(db_dir=tmp_path / "db")
    bundled, _ = load_corpus(None, SEARCH)
    ascii_papers = bundled[:6]
    unicode_rows = [{"title": TITLES[k], "abstract": ABSTRACTS[k]} for k in ("zh", "el")]
    path = _jsonl(tmp_path, unicode_rows)
    unicode_papers, _ = load_corpus([path], SEARCH)
    # An index as an older paperchat left it: scheme-1 ids, no id scheme recorded. The two
    # Unicode titles collided into one record there (the Greek abstract under... whichever).
    with monkeypatch.context() as m:
        m.setattr(rag.ingest, "ID_SCHEME", 1)
        old = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
        old.ingest([_legacy(p) for p in ascii_papers] + [_legacy(unicode_papers[0])])
    assert old.id_scheme() == 1
    assert old.count() == 7

    index = PaperIndex(settings, HashEmbeddings(), create=True)  # type: ignore[arg-type]
    report = index.ingest(ascii_papers + unicode_papers)
    assert report.migrated == 1  # the Chinese paper, re-keyed with its vectors
    assert (report.new, report.updated, report.unchanged) == (1, 0, 7)
    assert (report.papers, index.count()) == (8, 8)
    assert index.id_scheme() == 2
    chunks = index.store._chunks.get(include=["metadatas"])
    owners = {str(m["paper_id"]) for m in chunks["metadatas"]}
    assert owners == {p.id for p in ascii_papers + unicode_papers}  # no orphaned chunks
    assert "Moved 1 papers" in report.summary()
    assert json.loads(json.dumps(report.to_json()))["migrated"] == 1
    # BM25 follows the new ids.
    assert set(index.lexical.ids) == owners
    again = index.ingest(ascii_papers + unicode_papers)
    assert (again.migrated, again.new, again.unchanged, again.papers) == (0, 0, 8, 8)
