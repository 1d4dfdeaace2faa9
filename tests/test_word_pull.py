"""The words that pull a question away from a paper (rag.word_pull, rag.missing): unit cases
on hand-made token vectors, and the real model on the bundled index."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rag.missing import missing_note, missing_terms, pulling_away
from rag.types import Answer, Citation, Hit, Paper
from rag.word_pull import QuestionVectors, pulls, without_each_word


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_a_word_left_out_is_every_token_of_it_wherever_it_occurs() -> None:
    text = "big cats like big boxes"
    # [CLS], big, cats (two pieces), like, big, boxes, [SEP]
    offsets = [(0, 0), (0, 3), (4, 6), (6, 8), (9, 13), (14, 17), (18, 23), (0, 0)]
    hidden = np.eye(8, dtype=np.float32) + 0.1
    without = without_each_word(text, offsets, hidden)
    assert sorted(without) == ["big", "boxes", "cats", "like"]
    kept = {"big": [0, 2, 3, 4, 6, 7], "cats": [0, 1, 4, 5, 6, 7]}
    for word, rows in kept.items():
        np.testing.assert_allclose(without[word], _unit(hidden[rows].sum(axis=0)), rtol=1e-5)
    # The special tokens (empty spans) belong to no word and are never left out.
    assert all(np.dot(v, _unit(hidden[0])) > 0 for v in without.values())


def test_the_pull_is_how_much_closer_the_question_comes_without_the_word() -> None:
    paper = _unit(np.array([1.0, 0.0, 0.0]))
    question = QuestionVectors(
        vector=_unit(np.array([1.0, 1.0, 0.0])),
        tokens=np.zeros((0, 3)),
        without_word={"audio": paper, "images": _unit(np.array([0.0, 1.0, 0.0]))},
    )
    found = pulls(question, ["audio", "images", "unseen"], paper)
    assert found["audio"] == pytest.approx(1 - 2**-0.5)  # left out, the question is the paper
    assert found["images"] < 0  # a word the paper says in its own terms holds it close
    assert "unseen" not in found  # cut at the model's limit: nothing to measure


def _paper(abstract: str) -> Paper:
    return Paper(id="p1", title="Sound Free Images", abstract=abstract, url="")


def test_only_words_the_paper_never_uses_can_pull_away() -> None:
    paper = _paper("We caption images of animals.")
    vector = _unit(np.array([1.0, 0.0]))
    away = _unit(np.array([1.0, 0.0]))  # leaving the word out reaches the paper exactly
    question = QuestionVectors(
        _unit(np.array([1.0, 1.0])),
        np.zeros((0, 2)),
        {"audio": away, "images": away, "the": away, "podcasts": _unit(np.array([1.0, 1.1]))},
    )
    text = "Which audio podcasts do the images of animals come from?"
    # "images" is the paper's own word; "the" is no content word; "podcasts" pulls too little.
    assert pulling_away(text, question, paper, vector, threshold=0.05) == ["audio"]
    assert pulling_away(text, question, paper, vector, threshold=0.5) == []


def test_pulled_words_join_the_missing_terms_only_when_every_cited_paper_lacks_them() -> None:
    papers = [_paper("We caption images."), Paper(id="p2", title="B", abstract="Audio.", url="")]
    hits = [Hit(paper=p, score=1.0) for p in papers]
    cite = [Citation(n=i + 1, paper_id=p.id, title=p.title, url="", evidence="") for i, p in enumerate(papers)]
    question = "Which papers caption images with audio?"
    one = Answer("…", cite[:1], hits, abstained=False, mode="extractive")
    assert missing_terms(question, [], one, {"p1": ["audio"]}) == ["audio"]
    assert missing_terms(question, [], one) == []
    both = Answer("…", cite, hits, abstained=False, mode="extractive")
    assert missing_terms(question, [], both, {"p1": ["audio"], "p2": []}) == []


def test_the_words_of_the_questions_form_are_no_detail() -> None:
    paper = _paper("We caption images of animals.")
    vector = _unit(np.array([1.0, 0.0]))
    away = _unit(np.array([1.0, 0.0]))
    words = {w: away for w in ("many", "gpus", "study", "studies", "sonar")}
    question = QuestionVectors(_unit(np.array([1.0, 1.0])), np.zeros((0, 2)), words)
    assert pulling_away("How many GPUs caption images?", question, paper, vector, 0.05) == ["gpus"]
    # A list's verb ties the papers to their topic; one paper's verb may be its detail.
    assert pulling_away("Which papers study sonar images?", question, paper, vector, 0.05) == [
        "sonar"
    ]
    assert pulling_away("Which paper studies sonar images?", question, paper, vector, 0.05) == [
        "studies",
        "sonar",
    ]


def test_a_name_is_listed_once_however_its_words_are_found() -> None:
    papers = [_paper("We caption images.")]
    cite = [Citation(n=1, paper_id="p1", title=papers[0].title, url="", evidence="")]
    answer = Answer("…", cite, [Hit(paper=papers[0], score=1.0)], abstained=False, mode="extractive")
    # The name as written, then its words as the pull and the content words read them.
    pulled = {"p1": ["gpus", "bilstm", "crf"]}
    found = missing_terms("How many GPUs does the BiLSTM-CRF tagger need?", ["GPUs", "BiLSTM-CRF"], answer, pulled)
    assert found == ["GPUs", "BiLSTM-CRF"]


def answer(abstract: str) -> Answer:
    """An answer citing one paper with this abstract."""
    paper = _paper(abstract)
    cite = [Citation(n=1, paper_id="p1", title=paper.title, url="", evidence="")]
    return Answer("…", cite, [Hit(paper=paper, score=1.0)], abstained=False, mode="extractive")


def test_a_quantity_asked_of_an_abstract_without_numbers_is_missing() -> None:
    survey = answer("We survey the papers that caption images.")
    question = "How many papers does the survey review?"
    assert missing_terms(question, [], survey) == ["how many papers"]
    assert missing_terms("What percentage of images are captioned?", [], survey) == [
        "what percentage"
    ]
    # A number, in digits or in words, may be the count: nothing to say.
    assert missing_terms(question, [], answer("We survey 120 papers that caption images.")) == []
    assert missing_terms(question, [], answer("We survey over a hundred papers.")) == []
    # Things named in a list are counted by it: "how many datasets" of three named ones.
    datasets = answer("We evaluate on the COCO, LVIS and ADE datasets.")
    assert missing_terms("How many datasets is it evaluated on?", [], datasets) == []
    vague = answer("We evaluate on several datasets.")
    assert missing_terms("How many datasets is it evaluated on?", [], vague) == ["how many datasets"]
    # What it counts, listed already, says it: not "GPUs, how many GPUs".
    assert missing_terms("How many GPUs does it need?", ["GPUs"], survey) == ["GPUs"]


def test_a_quantity_asked_in_a_unit_the_abstract_never_uses_is_missing() -> None:
    # Numbers of other things (a 3K test set, two steps) do not give a latency.
    other_numbers = answer("We build MicroMat-3K and train in two steps.")
    question = "What is its inference time in milliseconds per image?"
    assert missing_terms(question, [], other_numbers) == ["in milliseconds"]
    assert missing_terms("How much memory does it take in GB?", [], other_numbers) == ["in gigabytes"]
    # Symbols ask for their unit too: "in hrs" is answered by "20 hours".
    assert missing_terms("How long does training take in hrs?", [], other_numbers) == ["in hours"]
    assert missing_terms("How long does it train in hrs?", [], answer("It trains for 20 hours.")) == []
    # The unit as a word, or as its symbol after a number, may give it: nothing to say.
    assert missing_terms(question, [], answer("It answers within 40 milliseconds.")) == []
    assert missing_terms(question, [], answer("Latency falls to 35ms per image.")) == []
    pixels = answer("It reads sub-images at 448×448.")
    assert missing_terms("What resolution in pixels does it use?", [], pixels) == []
    # "Of what size" asks a quantity: an abstract without any number lacks it.
    sizes = "Which language model backbone, and of what size, does it build on?"
    assert missing_terms(sizes, [], answer("It builds on a language model.")) == ["what size"]
    assert missing_terms(sizes, [], answer("It builds on a 7B language model.")) == []


def test_the_note_speaks_of_every_cited_abstract_when_there_are_several() -> None:
    papers = [_paper("We caption images."), Paper(id="p2", title="B", abstract="Audio.", url="")]
    cite = [Citation(n=i + 1, paper_id=p.id, title=p.title, url="", evidence="") for i, p in enumerate(papers)]
    hits = [Hit(paper=p, score=1.0) for p in papers]
    one = Answer("…", cite[:1], hits, abstained=False, mode="extractive", missing_terms=["sonar"])
    both = Answer("…", cite, hits, abstained=False, mode="extractive", missing_terms=["sonar"])
    assert missing_note(one) == "The cited abstract does not mention: sonar."
    assert missing_note(both) == "None of the cited abstracts mentions: sonar."


@pytest.mark.integration
def test_a_near_miss_detail_is_named_by_its_pull(assistant: Any) -> None:
    # Video-MME evaluates multimodal LLMs on videos, not underwater footage: no name, no
    # insisting word, only the word's pull tells the detail the abstract lacks.
    question = "Which video benchmark evaluates multimodal LLMs on underwater footage?"
    answer = assistant.ask(question, mode="extractive")
    assert answer.abstained or "underwater" in answer.missing_terms
    retrieval = assistant.retriever.retrieve(question)
    top = retrieval.hits[0].paper
    vector = assistant.index.paper_vectors([top.id])[top.id][0]
    threshold = assistant.settings.answer.missing_word_pull
    assert pulling_away(question, retrieval.question, top, vector, threshold) == ["underwater"]
    # A question the paper answers in its own words pulls nowhere.
    plain = "How many videos does the Video-MME benchmark contain?"
    retrieval = assistant.retriever.retrieve(plain)
    assert retrieval.hits[0].paper.id == top.id
    assert pulling_away(plain, retrieval.question, top, vector, threshold) == []
