"""The external ACLSum set: the converter turns the `aclsum` package into a corpus and a set."""

from __future__ import annotations

import json
from pathlib import Path

from evals.aclsum import convert, detokenize
from evals.sets import load_set
from rag.corpus import load_corpus


def test_detokenize_undoes_the_datasets_spacing() -> None:
    text = detokenize(["Machine Translation ( MT ) does n't scale , they say .", "It 's 5 % ."])
    assert text == "Machine Translation (MT) doesn't scale, they say. It's 5%."


def test_converts_250_papers_and_750_questions(tmp_path: Path) -> None:
    corpus, eval_set = convert(tmp_path)
    papers, _ = load_corpus([corpus], "{query}")
    assert len(papers) == 250
    questions = load_set(eval_set).questions
    assert len(questions) == 750 and {q.type for q in questions} == {"summary"}
    titles = {p.title for p in papers}
    assert all(len(q.gold_titles) == 1 and q.gold_titles[0] in titles for q in questions)
    first = json.loads(corpus.read_text().splitlines()[0])
    assert first["url"].startswith("https://aclanthology.org/") and " ." not in first["abstract"]


def test_distractors_copy_no_bundled_paper() -> None:
    from evals.synthetic import distractor_papers
    from rag.text import split_sentences

    bundled, _ = load_corpus(None, "{query}")
    owner = {s: p.title for p in bundled for s in split_sentences(p.abstract)}
    papers = distractor_papers(200)
    assert len({p["title"] for p in papers}) == 200
    for paper in papers:
        sentences = split_sentences(paper["abstract"])
        donors = [owner[s] for s in sentences if s in owner]
        # Bundled sentences, each from a different paper: no paper is copied. (A sentence
        # without a final full stop can merge with the next when split again.)
        assert len(donors) >= len(sentences) / 2 and len(set(donors)) == len(donors)


def test_distractors_from_another_corpus_use_only_its_sentences(tmp_path: Path) -> None:
    from evals.synthetic import distractor_papers, sentence_pool
    from rag.text import split_sentences

    corpus = tmp_path / "other.jsonl"
    corpus.write_text(
        "".join(
            json.dumps(
                {
                    "title": f"Other Field Paper {i}",
                    "abstract": " ".join(f"Finding {j} of study {i} holds." for j in range(4)),
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    pool = sentence_pool([corpus])
    theirs = {s for _, sentences in pool for s in sentences}
    bundled, _ = load_corpus(None, "{query}")
    ours = {s for p in bundled for s in split_sentences(p.abstract)}
    papers = distractor_papers(40, pool=pool)
    assert len({p["title"] for p in papers}) == 40
    for paper in papers:
        sentences = split_sentences(paper["abstract"])
        assert sentences and set(sentences) <= theirs and not set(sentences) & ours
        # Every sentence from a different paper of the pool: none is copied.
        assert len({s.split(" of study ")[1] for s in sentences}) == len(sentences)
