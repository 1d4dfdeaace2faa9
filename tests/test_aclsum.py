"""The external ACLSum set: the converter turns the `aclsum` package into a corpus and a set."""

from __future__ import annotations

import json
from pathlib import Path

from evals.aclsum import _detokenize, convert
from evals.sets import load_set
from rag.corpus import load_corpus


def test_detokenize_undoes_the_datasets_spacing() -> None:
    text = _detokenize(["Machine Translation ( MT ) does n't scale , they say .", "It 's 5 % ."])
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
