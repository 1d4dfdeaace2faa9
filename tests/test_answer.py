from collections.abc import Sequence

import pytest

from rag.answer import (
    ABSTAIN_TEXT,
    Support,
    asks_for_several,
    choose_papers,
    concise,
    extractive_answer,
    support,
)
from rag.citations import cited_claims
from rag.lexical import LexicalIndex
from rag.missing import contrasted_terms, missing_insisted, missing_names, paper_stems
from rag.papers import make_paper
from rag.record import record_fields
from rag.retrieve import asked_names, dense_margin
from rag.settings import AnswerSettings, RetrievalSettings
from rag.text import insisted_terms, split_sentences, without_request
from rag.types import Answer, Hit, Turn

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
    "Packer: Compact Visual Tokens": (
        "The code of Packer is at github.com/x/Packer. Multimodal models spend most compute "
        "on visual tokens. Packing them halves the latency."
    ),
    "Token Merging Study": (
        "Visual token merging reduces the cost of multimodal models but loses detail. "
        "To address this issue, we propose a token merger that keeps small objects. "
        "Code is available at https://github.com/x/merger-tokens."
    ),
    "Brain Response Study": (
        "We explore how multimodal transformers predict fMRI brain responses. "
        "Future fMRI experiments on multimodal transformers can test this insight."
    ),
    "Preference Alignment Study": (
        "This work represents a significant step forward in aligning multimodal models with "
        "human feedback, paving the way for reliable multimodal applications. "
        "We introduce a preference dataset built by retrieving contrasting images. "
        "We hope our release will inspire work on aligning multimodal models."
    ),
    "Alignment Probe Study": (
        "In this work, we probe frozen language models with image inputs. "
        "A negative correlation exists with hallucinations in their answers. "
        "We propose skipping layers to reduce inference cost."
    ),
    "Chart Reader: Questions About Plots": (
        "Plots are common in scientific papers. Our model reads every plot as an image. "
        "We present Chart Reader, which answers questions about scientific plots by reading "
        "their axes and legends. It learns from two million synthetic examples."
    ),
    "Video-QB: Questions on Long Videos": (
        "Models are rarely tested on long inputs. We present Video-QB, a benchmark of "
        "questions on long clips. The strongest model, Gemini 1.5, trails human viewers. "
        "In all, 900 videos were annotated with 2,700 questions."
    ),
    "Sparse Router: Faster Mixture Layers": (
        "Dense layers spend the same compute on easy tokens. We present Sparse Router, which "
        "sends each token to two of sixteen experts. Inference runs 3.1 times faster at equal "
        "accuracy."
    ),
    "TrailerSet: Trailers With Music": (
        "Movie trailers mix music and video. We present TrailerSet, a collection of trailers. "
        "In particular, (1) the music of trailers is composed for their video."
    ),
    "Training Data Notes": (
        "Most vision models learn from web images. What a model learns from shapes its biases."
    ),
    "Unrelated Graph Paper": (
        "We study graph neural networks for molecules. Message passing is improved. "
        "Results on QM9 are strong."
    ),
}


def answer_to(
    question: str,
    hits: list[Hit],
    settings: AnswerSettings | None = None,
    history: Sequence[Turn] = (),
    names: Sequence[str] = (),
) -> Answer:
    """The extractive answer (default settings unless given), the question as its own query."""
    return extractive_answer(
        question,
        question,
        hits,
        lexical_for(hits),
        settings or AnswerSettings(),
        RetrievalSettings(),
        5,
        names=names,
        history=history,
    )


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


def test_single_paper_question_leads_with_the_sentence_that_answers() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7), "Moment Retrieval Two": (4.0, 0.6)})
    question = "Which datasets is the video moment retrieval model evaluated on?"
    answer = answer_to(question, hits)
    assert not answer.abstained
    assert [c.title for c in answer.citations] == ["Video Moment Finder"]
    assert {n for n, _ in cited_claims(answer.text)} == {1}
    pieces = [p.strip() for p in answer.text.split(" [1]") if p.strip()]
    # The answer (the datasets) comes first, not the abstract's opening; two sentences at most.
    assert pieces[0] == "It is evaluated on Charades-STA and ActivityNet Captions."
    assert len(pieces) <= AnswerSettings().max_sentences
    # Every sentence is copied verbatim from the cited abstract, and all are highlighted.
    abstract_sentences = set(split_sentences(ABSTRACTS["Video Moment Finder"]))
    assert set(pieces) <= abstract_sentences
    assert answer.citations[0].evidence == pieces[0]
    assert set(answer.citations[0].highlights) == set(pieces)


def test_several_papers_get_one_line_each() -> None:
    hits = make_hits(
        {
            "Video Moment Finder": (5.0, 0.7),
            "Moment Retrieval Two": (4.0, 0.6),
            "Unrelated Graph Paper": (0.5, 0.2),
        }
    )
    question = "Which papers address video moment retrieval?"
    assert asks_for_several(question)
    lexical = lexical_for(hits)
    settings = RetrievalSettings()
    chosen = choose_papers(question, question, hits, lexical, settings, [], 5)
    assert [h.paper.title for h in chosen] == ["Video Moment Finder", "Moment Retrieval Two"]
    answer = extractive_answer(question, question, hits, lexical, AnswerSettings(), settings, 5)
    lines = answer.text.splitlines()
    assert len(lines) == 2
    for n, (line, hit) in enumerate(zip(lines, chosen, strict=True), start=1):
        assert line.startswith(f"- {hit.paper.title}: ") and line.endswith(f"[{n}]")
        assert [m for m, _ in cited_claims(line)] == [n]
    assert [c.n for c in answer.citations] == [1, 2]


def test_a_paper_scoring_far_below_the_ones_that_fit_stays_out_of_the_list() -> None:
    # Both moment papers support the question; the second scores near the first, the third
    # (also supported, by its dense score) far below them, just above the last hit.
    scores = {
        "Video Moment Finder": (10.0, 0.7),
        "Moment Retrieval Two": (9.0, 0.6),
        "Packer: Compact Visual Tokens": (1.5, 0.7),
        "Unrelated Graph Paper": (1.0, 0.1),
    }
    hits = make_hits(scores)
    question = "Which papers address video moment retrieval?"
    lexical = lexical_for(hits)
    chosen = choose_papers(question, question, hits, lexical, RetrievalSettings(), [], 5)
    assert [h.paper.title for h in chosen] == ["Video Moment Finder", "Moment Retrieval Two"]
    everyone = RetrievalSettings(several_min_share=0.0)
    chosen = choose_papers(question, question, hits, lexical, everyone, [], 5)
    assert "Packer: Compact Visual Tokens" in [h.paper.title for h in chosen]


def test_a_follow_up_never_repeats_what_was_said() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7)})
    lexical = lexical_for(hits)
    first = "Which model localizes video moments, and on which datasets is it evaluated?"
    said = extractive_answer(first, first, hits, lexical, AnswerSettings(), RetrievalSettings(), 5)
    history = [Turn("user", first), Turn("assistant", said.text)]
    follow = "How much does it improve recall?"
    answer = extractive_answer(
        follow,
        f"{first} {said.text} {follow}",
        hits,
        lexical,
        AnswerSettings(),
        RetrievalSettings(),
        5,
        history=history,
    )
    before = {p.strip() for p in said.text.split("[1]") if p.strip()}
    now = {p.strip() for p in answer.text.split("[1]") if p.strip()}
    assert not before & now
    assert "Results improve recall by 5 points." in now
    # Asked again, the only sentence with its words was given: the answer says so.
    history += [Turn("user", follow), Turn("assistant", answer.text)]
    again = "And the recall gain?"
    repeat = extractive_answer(
        again, again, hits, lexical, AnswerSettings(), RetrievalSettings(), 5, history=history
    )
    assert repeat.text.startswith("The abstract of Video Moment Finder says nothing more")


def test_missing_names_are_those_the_abstract_never_mentions() -> None:
    [hit] = make_hits({"Video Moment Finder": (5.0, 0.7)})
    names = ["Charades-STA", "Japanese", "TACoS"]
    assert missing_names(names, hit.paper) == ["Japanese", "TACoS"]
    lexical = lexical_for([hit])
    assert support("q", hit, lexical, names).missing_names == 2 / 3
    assert support("q", hit, lexical, []).missing_names == 0.0
    # An acronym is mentioned where its words are written out.
    [probe] = make_hits({"Alignment Probe Study": (5.0, 0.7)})
    assert missing_names(["FLMs", "LLMs", "VQA"], probe.paper) == ["LLMs", "VQA"]


def test_abstains_when_both_signals_are_weak() -> None:
    hits = make_hits({"Unrelated Graph Paper": (1.0, 0.2)})
    question = "Which paper predicts rainfall from radar echoes?"
    lexical = lexical_for(hits)
    signal = support(question, hits[0], lexical)
    assert signal.probability(RetrievalSettings()) < 0.5
    answer = extractive_answer(
        question, question, hits, lexical, AnswerSettings(), RetrievalSettings(), 5
    )
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == []
    assert answer.retrieved  # what was looked at is still reported


def test_keyword_match_alone_is_enough_to_answer() -> None:
    hits = make_hits({"Unrelated Graph Paper": (1.0, 0.2)})
    question = "What are the results of message passing for molecules on QM9?"
    answer = answer_to(question, hits)
    assert not answer.abstained
    assert "QM9" in answer.text


def test_no_hits_abstains() -> None:
    answer = extractive_answer(
        "q", "q", [], LexicalIndex.build([], [], "g"), AnswerSettings(), RetrievalSettings(), 5
    )
    assert answer.abstained


def test_insisted_words_are_the_contrasted_or_restricted_ones() -> None:
    assert insisted_terms(
        "Is there a matting model that works on video rather than single images?"
    ) == ["video"]
    assert insisted_terms("Which open LLM was pretrained mainly on Japanese and Korean text?") == [
        "japanese",
        "korean",
    ]
    # "training-only" is not a restriction, and short words after "only" are function words.
    assert insisted_terms("a training-only module that lets a picture act as a decoy") == []
    assert insisted_terms("needing only per-image tags") == ["image", "tags"]
    assert insisted_terms("How many tokens was Yi pretrained on?") == []
    # "X specifically" and "X, not Y" insist on X; a plain negation insists on nothing.
    assert insisted_terms("I need tumour photographs specifically, not slides.") == [
        "tumour",
        "photographs",
    ]
    assert insisted_terms("a corpus of speech, not text") == ["speech"]
    # The modifier before ", not" is often what is insisted on: a *video* haystack.
    assert insisted_terms("I mean a video haystack, not stitched still images.") == [
        "video",
        "haystack",
    ]
    assert insisted_terms("I mean radiology specifically, not microscopy.") == ["radiology"]
    assert insisted_terms("Which method does not need labels?") == []


def test_an_insisted_word_the_abstract_lacks_is_reported_by_stem() -> None:
    paper = make_paper(
        "ZIM: Zero-Shot Image Matting",
        "We match images. Mattes are precise.",
        source="t",
        search_url_template="{query}",
    )
    assert missing_insisted(["video", "images", "matting"], paper_stems(paper)) == ["video"]


def test_a_word_whose_contrasting_form_the_abstract_uses_is_reported() -> None:
    paper = make_paper(
        "Brain Encoding With Transformers",
        "We study brain encoding of multilingual text. Models predict fMRI responses.",
        source="t",
        search_url_template="{query}",
    )
    question = "Which paper decodes fMRI with monolingual, pretrained, unlabeled models?"
    # decodes/encoding and monolingual/multilingual contrast; "pretrained" has no contrasting
    # form in the abstract, and negating prefixes (un-) do not count.
    assert contrasted_terms(question, paper_stems(paper)) == ["decodes", "monolingual"]
    assert contrasted_terms("Which paper studies encoding of fMRI?", paper_stems(paper)) == []


def test_the_papers_own_name_does_not_choose_the_sentence() -> None:
    """The name found the paper; the sentence that answers is the one with the asked facts,
    not the code link that repeats the name."""
    hits = make_hits(
        {"Packer: Compact Visual Tokens": (5.0, 0.6), "Unrelated Graph Paper": (1.0, 0.1)}
    )
    question = "What is the latency of Packer?"
    answer = answer_to(question, hits, AnswerSettings(fill_words=0))
    assert answer.text == "Packing them halves the latency. [1]"


def test_a_paper_line_answers_a_second_part_from_the_papers_own_work() -> None:
    hits = make_hits(
        {
            "Video Moment Finder": (5.0, 0.7),
            "Moment Retrieval Two": (4.0, 0.6),
            "Unrelated Graph Paper": (0.5, 0.2),
        }
    )
    question = (
        "Which papers find the clip a text query describes, and what recall gains do they report?"
    )
    answer = answer_to(question, hits)
    first, second = answer.text.splitlines()
    # The second part (recall gains) is answered on the same line, from what the paper did.
    assert first.startswith("- Video Moment Finder: We study video moment retrieval")
    assert first.endswith("Results improve recall by 5 points. [1]")
    assert answer.citations[0].highlights[-1] == "Results improve recall by 5 points."
    # The field's background ("... finds the clip described by a query") has the question's
    # rarest word, but a paper's line says what the paper did.
    assert second == "- Moment Retrieval Two: Experiments on TACoS show gains. [2]"
    # `line_sentences` caps each line: with one, the second part goes unanswered.
    one = AnswerSettings(line_sentences=1)
    short = answer_to(question, hits, one).text.splitlines()[0]
    assert short == "- Video Moment Finder: We study video moment retrieval from text queries. [1]"


def test_questions_asking_for_several_papers_in_their_usual_phrasings() -> None:
    several = (
        "Which papers study brain encoding?",
        "What are some approaches that compress visual tokens?",
        "Which two models use a mixture of experts?",
        "Name the methods that prune visual tokens.",
        "List models that handle video and audio.",
        "Are there several systems that caption videos?",
        "What are related works on moment retrieval?",
        "Which two works study person retrieval?",
        "List every paper on state space models.",
        "What work has been done on multilingual vision-language models?",
        "Find research on text-video retrieval.",
        "Which benchmarks evaluate video understanding?",
        "Which vision-language models target medical images?",
        "Which LLMs are evaluated on multilingual benchmarks?",
    )
    one = (
        # A follow-up's "it" is the one paper the conversation is about.
        "Which methods does it compare against?",
        "What models did this paper evaluate?",
        "Which benchmarks does Yi report?",
        "Which datasets does the model use?",
        "Which model hands the language model one vision token per image?",
        "Which datasets does SeqDialN use?",
        "Is there a matting model that works on video rather than single images?",
        "What is the model size of Yi?",
    )
    assert all(asks_for_several(q) for q in several)
    assert not any(asks_for_several(q) for q in one)


def test_the_papers_own_work_answers_before_its_background() -> None:
    hits = make_hits({"Token Merging Study": (5.0, 0.7)})
    question = "Which method merges visual tokens in multimodal models?"
    answer = answer_to(question, hits)
    # Background and link sentences share the question's words, yet the contribution leads,
    # without its opening discourse marker; the highlight is still the abstract's sentence.
    assert answer.text.startswith("We propose a token merger that keeps small objects. [1]")
    assert "github" not in answer.text.split("[1]")[0]
    assert answer.citations[0].evidence.startswith("To address this issue, we propose")
    why = "Why is visual token merging a problem for multimodal models?"
    answer = answer_to(why, hits)
    assert answer.text.startswith("Visual token merging reduces the cost")
    # A statement rather than a question asks for the text most like it, wherever it stands.
    statement = "visual token merging reduces the cost of multimodal models but loses detail"
    answer = answer_to(statement, hits)
    assert answer.text.startswith("Visual token merging reduces the cost")


def test_which_paper_is_answered_by_what_it_presents_not_by_any_sentence_with_a_name() -> None:
    hits = make_hits({"TrailerSet: Trailers With Music": (5.0, 0.6), "Training Data Notes": (1, 0.1)})
    text = answer_to("Which paper builds a dataset of trailers with music?", hits).text
    # "dataset" asks for a name, so "(1) the music of trailers ..." gets that bonus, but it
    # does not say what the paper is.
    assert text.startswith("We present TrailerSet, a collection of trailers. [1]")


def test_a_contribution_sentence_leads_only_when_it_shares_the_question() -> None:
    hits = make_hits({"Alignment Probe Study": (5.0, 0.7)})
    # "We propose skipping layers" is the contribution, but says nothing of what is asked.
    leads = {
        "Which paper studies hallucinations?": "A negative correlation exists with hallucinations",
        "Which paper proposes skipping layers?": "We propose skipping layers",
    }
    for question, lead in leads.items():
        assert answer_to(question, hits).text.startswith(lead), question


def test_what_the_paper_leaves_to_future_work_answers_last() -> None:
    hits = make_hits({"Brain Response Study": (5.0, 0.7)})
    question = "Which paper uses multimodal transformers on fMRI experiments?"
    answer = answer_to(question, hits)
    # The future-work sentence shares more of the question's words, yet what the paper did leads.
    assert answer.text.startswith("We explore how multimodal transformers predict fMRI")


def test_what_the_paper_hopes_for_its_work_answers_last() -> None:
    hits = make_hits({"Preference Alignment Study": (5.0, 0.7)})
    question = "Which paper aligns multimodal models with human feedback?"
    answer = answer_to(question, hits)
    # Both outlook sentences share more of the question's words than what the paper did.
    assert answer.text.startswith("We introduce a preference dataset")
    assert "We hope" not in answer.text.split("[1]")[0]


def test_concise_drops_only_opening_discourse_markers() -> None:
    assert concise("Specifically, to this end, we train X.") == "We train X."
    assert concise("To address these two limitations, we add Y.") == "We add Y."
    assert concise("However the model fails.") == "However the model fails."
    assert concise("We train X, however, on Z.") == "We train X, however, on Z."
    assert concise("Experiments on two sets show that, overall, X wins.") == "X wins."
    # A list's item numbers go with the markers; the numbers inside a sentence stay.
    assert concise("Yet, (2) both tokens activate similar weights.") == (
        "Both tokens activate similar weights."
    )
    assert concise("(iii) a matching module aligns them.") == "A matching module aligns them."
    assert concise("We propose (1) X and (2) Y.") == "We propose (1) X and (2) Y."
    assert concise("Yet another model is proposed.") == "Yet another model is proposed."
    assert concise("Motivated by this, we sample sub-captions.") == "We sample sub-captions."
    assert concise("To address this, we propose MEAP.") == "We propose MEAP."
    assert concise("For example, X is 50% faster.") == "X is 50% faster."
    # LaTeX escapes that arXiv abstracts keep are written out.
    assert concise("It reaches 84.7\\% on ImageNet.") == "It reaches 84.7% on ImageNet."
    assert concise("{\\mu}-Bench spans 22 tasks, e.g.~cells.") == "μ-Bench spans 22 tasks, e.g. cells."
    # A purpose with content of its own stays.
    assert concise("To address the lack of positives, we add Y.") == (
        "To address the lack of positives, we add Y."
    )
    assert concise("One expert per vertical (e.g. cars, birds) is costly.") == (
        "One expert per vertical is costly."
    )


def test_a_short_answer_fills_its_room_with_the_next_best_sentence() -> None:
    hits = make_hits(
        {"Packer: Compact Visual Tokens": (5.0, 0.6), "Unrelated Graph Paper": (1.0, 0.1)}
    )
    question = "What is the latency of Packer?"
    filled = answer_to(question, hits)
    # The answering sentence first, then the next best; the code link stays out.
    assert filled.text == (
        "Packing them halves the latency. [1] Multimodal models spend most compute on visual "
        "tokens. [1]"
    )
    tight = AnswerSettings(fill_words=8)
    answer = answer_to(question, hits, tight)
    assert answer.text == "Packing them halves the latency. [1]"


def test_support_weighs_how_far_the_best_chunk_stands_above_the_next() -> None:
    assert dense_margin({"a": 0.9, "b": 0.5, "c": 0.3}, cap=1.0) == pytest.approx(0.5)
    assert dense_margin({"a": 0.9}, cap=1.0) == 0.0
    # In a small or mixed collection the lead only says how few papers share the topic.
    assert dense_margin({"a": 0.9, "b": 0.5, "c": 0.3}, cap=0.2) == pytest.approx(0.2)
    settings = RetrievalSettings()
    near_many = Support(dense=0.6, term_coverage=0.2, missing_names=0.0, dense_margin=0.05)
    lone_match = Support(dense=0.6, term_coverage=0.2, missing_names=0.0, dense_margin=0.3)
    # Fitted weight (docs/evaluation.md): a lone outlier match is weaker support.
    assert settings.support_weights[4] < 0
    assert lone_match.probability(settings) < near_many.probability(settings)


def test_support_falls_when_the_paper_matches_only_without_the_unused_words() -> None:
    settings = RetrievalSettings()
    plain = Support(dense=0.6, term_coverage=0.3, missing_names=0.0, dense_margin=0.1)
    pulled = Support(0.6, 0.3, 0.0, 0.1, unknown_pull=0.1)  # "watermarking" dropped: closer
    paraphrased = Support(0.6, 0.3, 0.0, 0.1, unknown_pull=-0.1)  # "pictures" meant images
    # Fitted weight (docs/evaluation.md): words no paper uses that pull the question away
    # from the paper mean it is about something else.
    assert settings.support_weights[5] < 0
    assert pulled.probability(settings) < plain.probability(settings)
    assert plain.probability(settings) < paraphrased.probability(settings)


def test_each_further_part_of_a_question_gets_the_sentence_that_answers_it() -> None:
    hits = make_hits(
        {"Chart Reader: Questions About Plots": (5.0, 0.6), "Training Data Notes": (1.0, 0.1)}
    )
    question = "How does Chart Reader answer questions about plots, and what does it learn from?"

    def answer(part_words: int) -> str:
        return answer_to(question, hits, AnswerSettings(fill_words=0, part_words=part_words)).text

    lead = (
        "We present Chart Reader, which answers questions about scientific plots by reading "
        "their axes and legends. [1]"
    )
    # The second part ("what does it learn from?") is answered by its own sentence, though
    # its word is common in the corpus (not one of the question's heavier terms).
    assert answer(80) == f"{lead} It learns from two million synthetic examples. [1]"
    # Only within the words allowed for it; without the rule the lead stands alone.
    assert answer(20) == lead
    assert answer(0) == lead


def test_a_further_part_asking_how_many_gets_the_sentence_that_counts_it() -> None:
    hits = make_hits(
        {"Video-QB: Questions on Long Videos": (5.0, 0.6), "Training Data Notes": (1.0, 0.1)}
    )
    question = "What benchmark did Video-QB introduce, and how many videos does it have?"
    text = answer_to(question, hits, AnswerSettings(fill_words=0, part_words=80)).text
    # The part has no word but the paper's own name and "how many": a number that counts
    # videos answers it, a version number ("Gemini 1.5") does not.
    assert "900 videos" in text and "Gemini" not in text


def test_a_further_part_in_words_the_paper_never_uses_gets_the_kind_it_asks_for() -> None:
    hits = make_hits(
        {"Sparse Router: Faster Mixture Layers": (5.0, 0.6), "Training Data Notes": (1.0, 0.1)}
    )
    question = "How does Sparse Router route tokens to experts, and how much does it gain?"
    text = answer_to(question, hits, AnswerSettings(fill_words=0, part_words=80)).text
    # The abstract never says "gain": the number it gives is the answer to that part.
    assert text.startswith("We present Sparse Router, which sends each token")
    assert "3.1 times faster" in text


def test_a_question_asking_only_a_quantity_its_paper_cannot_give_is_refused() -> None:
    hits = make_hits(
        {"Sparse Router: Faster Mixture Layers": (5.0, 0.6), "Training Data Notes": (1.0, 0.1)}
    )
    # The abstract gives a speed-up, never a latency in milliseconds: its sentences would
    # answer something else.
    refused = answer_to("What is Sparse Router's latency in milliseconds?", hits)
    assert refused.abstained and refused.citations == []
    assert "Sparse Router: Faster Mixture Layers" in refused.text
    assert "in milliseconds" in refused.text
    # The quantity it gives is answered; so is a question with another part to answer.
    assert not answer_to("How much faster does Sparse Router run?", hits).abstained
    two_parts = "How does Sparse Router route tokens, and what is its latency in milliseconds?"
    assert not answer_to(two_parts, hits).abstained


def test_a_request_about_a_named_paper_is_answered_by_what_the_paper_is() -> None:
    hits = make_hits(
        {"Chart Reader: Questions About Plots": (5.0, 0.6), "Training Data Notes": (1.0, 0.1)}
    )
    for request in (
        "Tell me about Chart Reader.",
        "Summarize Chart Reader",
        "What is Chart Reader?",
    ):
        answer = answer_to(request, hits)
        # Its contribution first, then its own work in the abstract's order; the field's
        # background ("Plots are common ...") is not what it is.
        assert answer.text.startswith("We present Chart Reader, which answers questions"), request
        assert "Plots are common" not in answer.text


def test_request_framing_is_not_part_of_the_query() -> None:
    assert without_request("Summarize the Yi paper.") == "the Yi paper."
    assert without_request("Can you briefly explain TokenPacker?") == "TokenPacker?"
    assert without_request("Give me an overview of Cambrian-1") == "Cambrian-1"
    assert (
        without_request("Describe how SeqDialN encodes rounds.") == "how SeqDialN encodes rounds."
    )
    # Nothing else left, or no framing: the question as it is.
    assert without_request("Summarize.") == "Summarize."
    assert without_request("What is the main contribution of Florence-VL?") == "Florence-VL?"
    assert without_request("What are the key ideas of TokenPacker?") == "TokenPacker?"
    assert without_request("Which model explains its answers?") == (
        "Which model explains its answers?"
    )


def test_a_question_naming_two_papers_gets_a_line_for_each() -> None:
    hits = make_hits(
        {
            "Packer: Compact Visual Tokens": (5.0, 0.6),
            "Training Data Notes": (4.0, 0.5),
            "Chart Reader: Questions About Plots": (3.0, 0.4),
        }
    )
    question = "Compare Packer and Chart Reader."
    answer = answer_to(question, hits, names=asked_names(question, []))
    assert [c.title for c in answer.citations] == [
        "Packer: Compact Visual Tokens",
        "Chart Reader: Questions About Plots",
    ]
    lines = answer.text.splitlines()
    assert lines[0].startswith("- Packer: ") and lines[1].startswith("- Chart Reader: ")


def test_a_comparison_is_answered_by_what_each_named_paper_is() -> None:
    # Dense support too weak for a question of its own words: naming both papers, found by
    # their titles, is the support.
    hits = make_hits(
        {
            "Chart Reader: Questions About Plots": (5.0, 0.1),
            "Alignment Probe Study": (4.0, 0.1),
            "Packer: Compact Visual Tokens": (3.0, 0.1),
        }
    )
    for question in ("Compare Chart Reader and Packer.", "How do Chart Reader and Packer differ?"):
        answer = answer_to(question, hits, names=asked_names(question, []))
        assert not answer.abstained
        # Each line says what its paper is; the other paper's name does not pick its sentence.
        assert answer.text.startswith("- Chart Reader: We present Chart Reader")
    alone = "How do Chart Reader models differ?"
    assert answer_to(alone, hits, names=asked_names(alone, [])).abstained


# A several-paper answer and the question it answered: what follow-ups about "they", "the
# second one" and "which of them" point into.
AFTER_A_LIST = (
    Turn("user", "Which papers study video moment retrieval?"),
    Turn(
        "assistant",
        "- Video Moment Finder: We study video moment retrieval from text queries. [1]\n"
        "- Moment Retrieval Two: Video moment retrieval finds the clip described by a "
        "query. [2]",
    ),
)


def test_a_follow_up_about_they_answers_for_each_paper_listed_before() -> None:
    hits = make_hits(
        {
            "Moment Retrieval Two": (5.0, 0.7),
            "Unrelated Graph Paper": (4.5, 0.6),
            "Video Moment Finder": (4.0, 0.6),
        }
    )
    history = AFTER_A_LIST
    question = "Which datasets do they evaluate on?"
    answer = answer_to(question, hits, history=history)
    # The papers of the list, in its order, whatever the new ranking; nothing said is repeated.
    assert [c.title for c in answer.citations] == ["Video Moment Finder", "Moment Retrieval Two"]
    first, second = answer.text.splitlines()
    assert (
        first
        == "- Video Moment Finder: It is evaluated on Charades-STA and ActivityNet Captions. [1]"
    )
    assert second.startswith("- Moment Retrieval Two: ")
    assert "We study video moment retrieval" not in answer.text
    assert "finds the clip described" not in answer.text


@pytest.mark.parametrize(
    ("question", "fields"),
    [
        ("Who wrote it?", ["authors"]),
        ("Who are the authors of the first one?", ["authors"]),
        ("List its authors", ["authors"]),
        ("When was Video Moment Finder published?", ["date"]),
        ("What year did it come out?", ["date"]),
        ("Which conference was it published at?", ["venue"]),
        ("What do the authors propose?", []),
        ("Who proposed the moment finder?", []),
        ("When searching clips with a written query, which model works?", []),
    ],
)
def test_questions_about_the_record_are_told_from_questions_about_the_content(
    question: str, fields: list[str]
) -> None:
    assert record_fields(question) == fields


def _with_record(hit: Hit, **fields: object) -> Hit:
    paper = make_paper(
        hit.paper.title, hit.paper.abstract, source="t", search_url_template="{query}", **fields
    )
    return Hit(paper=paper, score=hit.score, dense=hit.dense, evidence=[])


def test_who_wrote_it_is_answered_from_the_record_not_the_abstract() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7), "Moment Retrieval Two": (4.0, 0.6)})
    history = [Turn("user", "Which model finds video moments?"), Turn("assistant", "...")]
    recorded = [_with_record(hits[0], authors=["Ada Lovelace", "Alan Turing"], year="2024")]
    answer = answer_to("Who wrote it?", recorded + hits[1:], history=history)
    assert answer.text == "Video Moment Finder is by Ada Lovelace and Alan Turing [1]."
    assert [c.title for c in answer.citations] == ["Video Moment Finder"]
    dated = answer_to("When was it published?", recorded + hits[1:], history=history)
    assert dated.text == "Video Moment Finder is dated 2024 [1]."
    # A record without the field says so instead of quoting the abstract.
    bare = answer_to("Who wrote it?", hits, history=history)
    assert bare.text.startswith("The index has no author list for Video Moment Finder")
    assert not any(s in bare.text for s in split_sentences(hits[0].paper.abstract))


def test_a_record_question_naming_a_paper_is_answered_only_when_that_paper_is_found() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7), "Moment Retrieval Two": (4.0, 0.6)})
    recorded = [_with_record(hits[0], year="2023"), hits[1]]
    question = "When was Video Moment Finder published?"
    answer = answer_to(question, recorded, names=asked_names(question, []))
    assert answer.text == "Video Moment Finder is dated 2023 [1]."
    other = "Who wrote Photosynthesis in Cacti?"
    assert answer_to(other, recorded, names=asked_names(other, [])).abstained


def test_a_record_with_blank_author_names_has_no_author_list() -> None:
    hits = make_hits({"Video Moment Finder": (5.0, 0.7)})
    history = [Turn("user", "Which model finds video moments?"), Turn("assistant", "...")]
    blank = [_with_record(hits[0], authors=[" "])]
    assert answer_to("Who wrote it?", blank, history=history).text == (
        "The index has no author list for Video Moment Finder [1]."
    )


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("Which datasets does the first one use?", "Video Moment Finder"),
        ("How does the second paper find clips?", "Moment Retrieval Two"),
        ("Which datasets does the former use?", "Video Moment Finder"),
        ("And the latter?", "Moment Retrieval Two"),
        ("Who wrote the last one?", "Moment Retrieval Two"),
    ],
)
def test_a_follow_up_naming_a_place_in_the_list_answers_for_that_paper(
    question: str, title: str
) -> None:
    hits = make_hits(
        {
            "Moment Retrieval Two": (5.0, 0.7),
            "Unrelated Graph Paper": (4.5, 0.6),
            "Video Moment Finder": (4.0, 0.6),
        }
    )
    history = AFTER_A_LIST
    answer = answer_to(question, hits, history=history)
    assert [c.title for c in answer.citations] == [title]


def test_a_follow_up_does_not_repeat_a_sentence_the_answer_showed_shortened() -> None:
    abstract = (
        "Clip search is slow on long videos. To fill this gap, we present ClipFinder, an index "
        "of moments built from captions. ClipFinder answers a query in ten milliseconds. "
        "It is evaluated on Charades-STA."
    )
    paper = make_paper("ClipFinder", abstract, source="t", search_url_template="{query}")
    hits = [Hit(paper=paper, score=5.0, dense=0.7, evidence=[])]
    first = answer_to("Which index finds moments from captions?", hits)
    assert "We present ClipFinder" in first.text  # shown without its opener
    history = [
        Turn("user", "Which index finds moments from captions?"),
        Turn("assistant", first.text),
    ]
    follow = answer_to("What does it present, and how fast is it?", hits, history=history)
    assert "present ClipFinder" not in follow.text


def test_a_question_asking_for_the_code_is_answered_by_the_link() -> None:
    hits = make_hits({"Packer: Compact Visual Tokens": (5.0, 0.6), "Training Data Notes": (1, 0.1)})
    answer = answer_to("Where is the code of Packer released?", hits)
    assert answer.text.startswith("The code of Packer is at github.com/x/Packer. [1]")
    # Asked anything else, the link stays an aside.
    other = answer_to("How does Packer cut latency?", hits).text
    assert not other.startswith("The code")


def test_a_sentence_announcing_a_release_is_an_aside_not_an_answer() -> None:
    from rag.answer import _aside

    assert _aside("All the details and codes will be open-sourced.")
    assert _aside("Our data and models are publicly available.")
    assert _aside(
        "Both the source code and the training dataset of Parrot will be made publicly available."
    )
    assert _aside("We make our code, data, and pretrained models publicly available.")
    assert _aside("Our code is available.")
    # A new dataset made available is the paper's work, not a link.
    assert not _aside("We present and make publicly available a new dataset of dark web pages.")
    # What others released is content: a reason, not this paper's link.
    assert not _aside(
        "Since the pre-trained weights are publicly available for many LLMs, we adapt one."
    )


def test_a_heading_left_by_sentence_splitting_never_fills_an_answer() -> None:
    from rag.answer import _aside

    for heading in ("Findings.", "Implications.", "Background:", "Main results."):
        assert _aside(heading)
    paper = make_paper(
        "Frozen Models: How LLMs Read Images",
        "Background. Frozen LLMs read images. We study how they do. Findings. Image tokens "
        "activate the same weights as text tokens. Implications. Layers can be skipped.",
        source="t",
        search_url_template="{query}",
    )
    hits = [Hit(paper=paper, score=5.0, dense=0.8, evidence=[])]
    answer = answer_to(
        "Do image tokens activate the same weights as text tokens in frozen LLMs?", hits
    )
    assert "Findings." not in answer.text and "Implications." not in answer.text
    assert "activate the same weights" in answer.text


@pytest.mark.parametrize(
    ("question", "titles"),
    [
        ("Which of them shows gains on TACoS?", ["Moment Retrieval Two"]),
        ("Which of these is evaluated on Charades-STA?", ["Video Moment Finder"]),
        ("Which of the papers is evaluated on Charades-STA?", ["Video Moment Finder"]),
        ("Which of them uses audio?", None),  # none does: refused, not each one quoted
    ],
)
def test_which_of_them_chooses_among_the_listed_papers(
    question: str, titles: list[str] | None
) -> None:
    hits = make_hits({"Moment Retrieval Two": (5.0, 0.7), "Video Moment Finder": (4.0, 0.6)})
    history = AFTER_A_LIST
    answer = answer_to(question, hits, history=history)
    if titles is None:
        assert answer.abstained
    else:
        assert [c.title for c in answer.citations] == titles


def test_a_follow_up_about_a_listed_paper_does_not_repeat_its_line() -> None:
    hits = make_hits({"Moment Retrieval Two": (5.0, 0.7), "Video Moment Finder": (4.0, 0.6)})
    line = "We study video moment retrieval from text queries."  # the first line's sentence
    history = AFTER_A_LIST
    answer = answer_to("What does the first one do?", hits, history=history)
    assert [c.title for c in answer.citations] == ["Video Moment Finder"]
    assert line not in answer.text and "[1]" in answer.text
