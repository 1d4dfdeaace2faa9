from rag.answer import ABSTAIN_TEXT, asks_for_several, choose_papers, extractive_answer, support
from rag.citations import marker_numbers
from rag.corpus import make_paper
from rag.lexical import LexicalIndex
from rag.settings import AnswerSettings, RetrievalSettings
from rag.text import split_sentences
from rag.types import Hit

ABSTRACTS = {
    "Video Moment Finder": (
        "We study video moment retrieval from text queries. Our model localizes the segment "
        "matching a sentence. It is evaluated on Charades-STA and ActivityNet Captions. "
        "Results improve recall by 5 points."
    ),
    "Moment Retrieval Two": (
        "Video moment retrieval finds the clip described by a query. We propose a proposal-free "
        "detector. Experiments on TACoS show gains."
    ),
    "Unrelated Graph Paper": (
        "We study graph neural networks for molecules. Message passing is improved. "
        "Results on QM9 are strong."
    ),
}


def make_hits(scores: dict[str, tuple[float, float]]) -> list[Hit]:
    hits = []
    for title, (fused, dense) in scores.items():
        paper = make_paper(title, ABSTRACTS[title], source="t", search_url_template="{query}")
        hits.append(Hit(paper=paper, score=fused, dense=dense, evidence=[]))
    return hits


def lexical_for(hits: list[Hit]) -> LexicalIndex:
    return LexicalIndex.build(
        [h.paper.id for h in hits], [(h.paper.title, h.paper.abstract) for h in hits], "g"
    )


def test_single_paper_question_cites_one_paper_with_its_sentences() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7), "Moment Retrieval Two": (4.0, 0.6)})
    question = "Which datasets is the video moment retrieval model evaluated on?"
    answer = extractive_answer(
        question, question, hits, lexical_for(hits), AnswerSettings(), RetrievalSettings(), 5
    )
    assert not answer.abstained
    assert [c.title for c in answer.citations] == ["Video Moment Finder"]
    assert marker_numbers(answer.text) == [1]
    assert "Charades-STA" in answer.text
    # Every sentence of the answer is copied verbatim from the cited abstract.
    abstract_sentences = set(split_sentences(ABSTRACTS["Video Moment Finder"]))
    for piece in answer.text.split(" [1]"):
        if piece.strip():
            assert piece.strip() in abstract_sentences
    assert answer.citations[0].evidence in abstract_sentences


def test_several_papers_when_the_question_asks_for_them() -> None:
    hits = make_hits(
        {
            "Video Moment Finder": (5.0, 0.7),
            "Moment Retrieval Two": (4.0, 0.6),
            "Unrelated Graph Paper": (0.5, 0.2),
        }
    )
    question = "Which papers address video moment retrieval?"
    assert asks_for_several(question)
    chosen = choose_papers(question, hits, 5)
    assert [h.paper.title for h in chosen] == ["Video Moment Finder", "Moment Retrieval Two"]
    answer = extractive_answer(
        question, question, hits, lexical_for(hits), AnswerSettings(), RetrievalSettings(), 5
    )
    assert marker_numbers(answer.text) == [1, 2]
    assert [c.n for c in answer.citations] == [1, 2]


def test_abstains_when_both_signals_are_weak() -> None:
    hits = make_hits({"Unrelated Graph Paper": (1.0, 0.2)})
    question = "Which paper estimates optical flow between frames?"
    lexical = lexical_for(hits)
    signal = support(question, hits[0], lexical)
    assert signal.dense < 0.41 and signal.term_coverage < 0.58
    answer = extractive_answer(
        question, question, hits, lexical, AnswerSettings(), RetrievalSettings(), 5
    )
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == []
    assert answer.retrieved  # what was looked at is still reported


def test_keyword_match_alone_is_enough_to_answer() -> None:
    hits = make_hits({"Unrelated Graph Paper": (1.0, 0.2)})
    question = "What are the results of message passing for molecules on QM9?"
    answer = extractive_answer(
        question, question, hits, lexical_for(hits), AnswerSettings(), RetrievalSettings(), 5
    )
    assert not answer.abstained
    assert "QM9" in answer.text


def test_no_hits_abstains() -> None:
    answer = extractive_answer(
        "q", "q", [], LexicalIndex.build([], [], "g"), AnswerSettings(), RetrievalSettings(), 5
    )
    assert answer.abstained
