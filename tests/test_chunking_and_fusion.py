import numpy as np
import pytest

from rag.chunking import chunk_input, chunk_paper, chunk_texts
from rag.corpus import load_corpus
from rag.embeddings import MAX_MODEL_TOKENS, count_tokens
from rag.papers import make_paper
from rag.retrieve import (
    Signals,
    contextualize,
    fuse,
    lexical_weight,
    named_shares,
    needs_history,
    ranked,
)
from rag.settings import RetrievalSettings
from rag.text import name_terms, split_sentences
from rag.types import Turn


def test_sentence_split_keeps_abbreviations_and_decimals() -> None:
    text = "We use e.g. CLIP models. Accuracy rose 3.5% on A. (ii) It is fast."
    assert split_sentences(text) == [
        "We use e.g. CLIP models.",
        "Accuracy rose 3.5% on A.",
        "(ii) It is fast.",
    ]


def test_chunks_fit_the_model_and_overlap_by_a_sentence() -> None:
    sentences = [
        f"Sentence number {i} describes part {i} of the method in some detail." for i in range(40)
    ]
    paper = make_paper(
        "A Long Paper Title", " ".join(sentences), source="t", search_url_template="{query}"
    )
    chunks = chunk_paper(paper, 120)
    assert len(chunks) > 3
    assert [c.id for c in chunks] == [f"{paper.id}:{n}" for n in range(len(chunks))]
    for chunk in chunks:
        assert count_tokens(chunk_input(paper, chunk)) < MAX_MODEL_TOKENS
    for first, second in zip(chunks, chunks[1:], strict=False):
        assert split_sentences(first.text)[-1] == split_sentences(second.text)[0]
    covered = {s for c in chunks for s in split_sentences(c.text)}
    assert covered == set(sentences)


def test_chunk_text_is_rebuilt_exactly_from_the_abstract_and_span() -> None:
    # The index stores each chunk's sentence span, not its text: the evidence shown and
    # the text embedded must be the same string.
    papers, _ = load_corpus(None, "{query}")
    empty = make_paper("T", "no sentence break here", source="t", search_url_template="{query}")
    for paper in [*papers, empty]:
        chunks = chunk_paper(paper, 120)
        spans = [(chunk.first, chunk.last) for chunk in chunks]
        assert chunk_texts(paper.abstract, spans) == [chunk.text for chunk in chunks]
    old = "text stored by an older index"
    assert chunk_texts("ignored", [old]) == [old]
    assert chunk_texts("One. Two.", [old, (1, 1)]) == [old, "Two."]


def test_short_abstract_is_one_chunk() -> None:
    paper = make_paper("T", "One sentence only.", source="t", search_url_template="{query}")
    assert [c.text for c in chunk_paper(paper, 120)] == ["One sentence only."]


def _signals(
    chunk: dict[str, float],
    lexical: dict[str, float],
    confidence: float,
    named: dict[str, float] | None = None,
) -> Signals:
    return Signals(
        chunk=chunk,
        paper=dict(chunk),
        lexical=lexical,
        lexical_raw=lexical,
        lexical_confidence=confidence,
        named=named or {},
    )


def _top(fused: dict[str, float]) -> str:
    return max(fused, key=fused.__getitem__)


def test_fusion_keeps_a_confident_dense_hit_when_bm25_has_nothing_distinctive() -> None:
    # A paraphrase: no paper's BM25 stands out (confidence 2 z) and BM25's favourite "c" has
    # few of its words, so "c" must not beat the paper the dense model is sure about.
    dense = {"right": 0.80, "b": 0.45, "c": 0.44, "d": 0.43, "e": 0.42}
    lexical = {"right": 0.1, "b": 1.5, "c": 2.0, "d": 0.2, "e": 0.1}
    settings = RetrievalSettings()
    assert lexical_weight(2.0, 0.3, settings) < 0.3 * settings.lexical_weight
    paraphrase = _signals(dense, lexical, confidence=2.0)
    paraphrase.lexical_coverage = 0.3
    assert _top(fuse(paraphrase, settings)) == "right"


def test_fusion_follows_bm25_when_one_paper_stands_far_above_the_corpus() -> None:
    # A query full of a paper's exact rare terms: BM25's favourite stands 9 z above the corpus.
    dense = {"a": 0.52, "b": 0.50, "c": 0.49}
    lexical = {"a": 0.5, "b": 9.0, "c": 0.3}
    settings = RetrievalSettings()
    assert lexical_weight(9.0, 1.0, settings) > 0.9 * settings.lexical_weight
    fused = fuse(_signals(dense, lexical, confidence=9.0), settings)
    assert _top(fused) == "b" and set(fused) == {"a", "b", "c"}


def test_each_components_top_paper_keeps_a_place_in_the_first_k() -> None:
    # BM25 is sure of "lex" (it stands far above the corpus), the dense model of "den"; a
    # cluster of papers both rate fairly well outvotes each in fusion.
    lexical = {"lex": 9.0, "den": 0.0, **{f"m{i}": 8.0 - 0.01 * i for i in range(8)}}
    dense = {"lex": 0.20, "den": 0.90, **{f"m{i}": 0.80 - 0.001 * i for i in range(8)}}
    signals = _signals(dense, lexical, confidence=9.0)
    settings = RetrievalSettings(k=3)
    fused = fuse(signals, settings)
    by_fusion = sorted(fused, key=fused.__getitem__, reverse=True)
    assert "den" not in by_fusion[:3] and "lex" not in by_fusion[:3]
    order = ranked(signals, settings)
    assert {"lex", "den"} <= set(order[:3]) and sorted(order) == sorted(by_fusion)
    assert order[0] == by_fusion[0]  # fusion still decides the top
    assert ranked(signals, settings, "dense")[0] == "den"


def test_making_room_for_one_components_top_never_pushes_out_the_others() -> None:
    """BM25's top already sits last of the first k (a rerank may put it there); dense's top,
    moved up into the first k, takes the place of the paper before it instead."""
    signals = _signals({"den": 0.9}, {"lex": 9.0}, confidence=9.0)
    fused = {"a": 5.0, "b": 4.0, "lex": 3.0, "c": 2.0, "den": 1.0}
    order = ranked(signals, RetrievalSettings(k=3), fused=fused)
    assert order[:3] == ["a", "lex", "den"] and order[3:] == ["b", "c"]


def test_a_title_carrying_the_asked_name_comes_first() -> None:
    # "By what percentage does TokenPacker compress ...": a rival abstract that only
    # mentions TokenPacker scores higher on both dense and BM25; the title decides.
    dense = {"rival": 0.62, "tokenpacker": 0.58, "other": 0.40}
    lexical = {"rival": 6.0, "tokenpacker": 5.5, "other": 0.5}
    fused = fuse(
        _signals(dense, lexical, confidence=6.0, named={"tokenpacker": 1.0}),
        RetrievalSettings(),
    )
    assert _top(fused) == "tokenpacker"
    assert named_shares({"t": "TokenPacker: Efficient Visual Projector"}, ["TokenPacker"]) == {
        "t": 1.0
    }
    assert named_shares({"t": "LLaVA-Mini: One Vision Token"}, ["LLaVA-Mini", "FLOPs"]) == {
        "t": 0.5
    }
    # A name several candidate titles carry is a topic, not one paper: the bonus is shared.
    titles = {"a": "CLIP-MoE: Experts", "b": "Adapting CLIP", "c": "TokenPacker"}
    assert named_shares(titles, ["CLIP", "TokenPacker"]) == {"a": 0.25, "b": 0.25, "c": 0.5}
    # A title that writes an asked acronym out carries it too: a topic, shared.
    spelled = {"a": "Tuning Large Vision-Language Models", "b": "LVLM Probes", "c": "Graphs"}
    assert named_shares(spelled, ["LVLMs"]) == {"a": 0.5, "b": 0.5}


def test_name_terms_are_what_a_question_insists_on() -> None:
    assert name_terms("Which LLM was pretrained mainly on Japanese and Korean text?") == [
        "LLM",
        "Japanese",
        "Korean",
    ]
    assert name_terms("How many tokens was Yi pretrained on?") == ["Yi"]
    assert name_terms("What NDCG did SeqDialN get on VisDial v1.0?") == [
        "NDCG",
        "SeqDialN",
        "VisDial",
        "v1.0",
    ]
    assert name_terms("Which paper predicts rainfall from radar echoes?") == []
    # A possessive belongs to the sentence, not the name: "Yi's" asks about Yi, which a
    # title must still match.
    assert name_terms("How long is Yi's context window? And GPT-4's?") == ["Yi", "GPT-4"]
    assert named_shares({"y": "Yi: Open Foundation Models"}, name_terms("What data trained Yi's models?")) == {"y": 1.0}


def test_follow_up_carries_the_last_exchange() -> None:
    history = [
        Turn("user", "Which paper learns compact representations for image retrieval?"),
        Turn("assistant", "That is 'Coarse-to-Fine' (CFCD)."),
    ]
    query = contextualize("What loss does it use?", history)
    assert "Coarse-to-Fine" in query and query.endswith("What loss does it use?")
    assert not needs_history("Which papers study video moment retrieval?", history)
    assert not needs_history("Which methods that adapt CLIP need no training?", history)
    assert needs_history("How big is the dataset that this paper built?", history)
    # Elliptical follow-ups name only what changes.
    assert needs_history("What about video?", history)
    assert needs_history("And on COCO?", history)
    assert needs_history("Why?", history)
    assert not needs_history("Why do vision transformers need registers?", history)
    assert not needs_history("Android apps for captioning?", history)
    # What every paper has ("the code", "the limitations"), asked with no name of its own.
    assert needs_history("Is the code available?", history)
    assert needs_history("What are the limitations?", history)
    assert not needs_history("Which paper releases the code of CLIP?", history)
    # A place in the last answer's list.
    assert needs_history("What does the second one generate?", history)
    assert needs_history("Who wrote the latter?", history)
    assert needs_history("Which one is fastest?", history)
    assert not needs_history("Which paper was the first to caption videos?", history)
    assert needs_history("How large are the models?", history)
    assert contextualize("What loss does it use?", []) == "What loss does it use?"


def test_bm25_scores_equal_bm25s_own_scoring() -> None:
    # LexicalIndex.scores sums the query terms' columns itself (bm25s's np.add.at is slow):
    # it must give bm25s's numbers, repeated query terms included.
    from rag.lexical import LexicalIndex, lexical_terms

    papers, _ = load_corpus(None, "{query}")
    lexical = LexicalIndex.build(
        [p.id for p in papers], [(p.title, p.abstract) for p in papers], "g"
    )
    vocab = lexical._bm25.vocab_dict
    for query in ("graph neural networks", "visual dialog NDCG dialog", "GPT-4V", "zzzz", ""):
        terms = [t for t in lexical_terms(query) if t in vocab]
        expected = lexical._bm25.get_scores(terms) if terms else np.zeros(len(papers))
        np.testing.assert_allclose(lexical.scores(query), expected, rtol=1e-5, atol=1e-6)


def test_coverage_from_the_postings_equals_the_evidence_rule() -> None:
    # The gate reads the coverage of BM25's top paper from the postings: it must be
    # rag.citations.evidence's coverage (one rule), unknown and repeated terms included.
    from rag.citations import evidence
    from rag.lexical import LexicalIndex

    papers, _ = load_corpus(None, "{query}")
    lexical = LexicalIndex.build(
        [p.id for p in papers], [(p.title, p.abstract) for p in papers], "g"
    )
    queries = (
        "How many tokens was Yi pretrained on?",
        "pictures of folks showing feelings, pictures again",
        "zzzz qqqq",
        "the of and",
    )
    for paper in papers[:25]:
        for query in queries:
            expected = evidence(query, paper, lexical.idf).coverage
            assert lexical.coverage(query, paper.id) == pytest.approx(expected)
    assert lexical.coverage("visual tokens", "no such paper") == 0.0


def test_a_confident_bm25_top_that_lacks_the_questions_words_gets_little_weight() -> None:
    # In a corpus that mixes fields, a paraphrase's BM25 top stands far above the corpus
    # (every paper of its field does) while using few of its words: dense decides. The same
    # confidence with the question's words all in that paper is a keyword question.
    settings = RetrievalSettings()
    assert lexical_weight(6.0, 0.1, settings) < 0.3 * settings.lexical_weight
    assert lexical_weight(6.0, 0.9, settings) > 0.9 * settings.lexical_weight
    dense = {"right": 0.80, "b": 0.45, "c": 0.44}
    lexical = {"right": 0.1, "b": 1.5, "c": 6.0}
    paraphrase = _signals(dense, lexical, confidence=6.0)
    paraphrase.lexical_coverage = 0.1
    assert _top(fuse(paraphrase, settings)) == "right"
    paraphrase.lexical_coverage = 0.9
    assert _top(fuse(paraphrase, settings)) == "c"


def test_counts_match_written_either_way() -> None:
    from rag.lexical import LexicalIndex

    lexical = LexicalIndex.build(
        ["short", "long", "other"],
        [
            ("Captioner", "We build HumanCaption-10M, a web dataset of image pairs."),
            ("Tokens", "Yi is pretrained on 3.1 trillion tokens of text."),
            ("Unrelated", "A dataset of pairs for ten tasks, one per million images."),
        ],
        "g",
    )
    # "10M" is found by "10 million", and "3.1T" finds "3.1 trillion".
    assert lexical.ids[int(np.argmax(lexical.scores("a dataset of 10 million pairs")))] == "short"
    assert lexical.ids[int(np.argmax(lexical.scores("pretrained on 3.1T tokens")))] == "long"


def test_a_joined_name_with_a_short_part_is_matched_whole() -> None:
    # "ST-Align" read word by word is only "align" ("st" is too short to be a word), which
    # every alignment paper uses: matched whole, it finds the paper that introduces it.
    from rag.lexical import LexicalIndex
    from rag.text import joined_names

    assert joined_names("ST-Align, GPT-4V and Qwen2-VL") == ["stalign", "gpt4v", "qwen2vl"]
    # No short part, or nothing but short parts and numbers: the words themselves suffice.
    assert joined_names("vision-language models, e.g. LLaVA-1.5 on VisDial v1.0") == []
    lexical = LexicalIndex.build(
        ["align", "introduces"],
        [
            ("Re-Align: aligning models", "We align vision and language, align rewards and align."),
            ("A spatial-temporal model", "We build the ST-Align dataset of video samples."),
        ],
        "g",
    )
    assert lexical.ids[int(np.argmax(lexical.scores("Which paper proposes ST-Align?")))] == (
        "introduces"
    )


def test_a_place_in_a_list_searches_with_the_exchange_that_gave_the_list() -> None:
    from rag.retrieve import contextualize

    history = [
        Turn("user", "Which papers study moment retrieval?"),
        Turn("assistant", "- VERIFIED: A benchmark. [1]\n- VideoLights: A model. [2]"),
        Turn("user", "Which one is newer?"),
        Turn("assistant", "VideoLights is newer. [1]"),
    ]
    query = contextualize("What does the first one measure?", history)
    assert query.startswith("Which papers study moment retrieval?") and "VERIFIED" in query
    assert "newer" not in query
    # Other follow-ups carry the last exchange, as before.
    assert contextualize("What does it measure?", history).startswith("Which one is newer?")


class _WordEmbeddings:
    """A bag of words as a vector: a text is close to another by the words they share."""

    def embed_query(self, text: str) -> list[float]:
        vector = np.zeros(64, dtype=np.float32)
        for word in text.lower().split():
            vector[sum(map(ord, word.strip("?.,"))) % 64] += 1.0
        return (vector / (np.linalg.norm(vector) or 1.0)).tolist()


def test_a_paper_that_matches_only_without_the_unused_words_is_pulled() -> None:
    from rag.lexical import LexicalIndex
    from rag.retrieve import HybridRetriever
    from rag.text import without_words

    texts = [
        ("Diffusion", "diffusion models generate images from text prompts"),
        ("Captions", "captioning models describe images in text"),
    ]
    lexical = LexicalIndex.build(["diffusion", "captions"], texts, "g")
    question = "Which scheme watermarks images from diffusion models?"
    # Words no indexed paper uses (by stem), not stop words or request framing.
    assert lexical.unknown_words(question) == ["scheme", "watermarks"]
    assert without_words(question, ["scheme", "watermarks"]) == "Which images from diffusion models?"

    embeddings = _WordEmbeddings()
    index = type("Index", (), {"lexical": lexical, "embeddings": embeddings})()
    retriever = HybridRetriever(index, RetrievalSettings())  # type: ignore[arg-type]
    query = np.asarray(embeddings.embed_query(question))
    stored = {
        pid: (np.asarray(embeddings.embed_query(" ".join(text))), title)
        for pid, text, title in (("diffusion", texts[0], "D"), ("captions", texts[1], "C"))
    }
    scores = {pid: float(vec @ query) for pid, (vec, _) in stored.items()}
    pull = retriever._unknown_pull(question, stored, scores, {})
    # The diffusion paper matches the rest of the question: dropping the unused words
    # brings it closer, by more than the paper that shares less of the rest.
    assert pull["diffusion"] > pull["captions"] and pull["diffusion"] > 0.05
    # A question every word of which some paper uses has no pull at all.
    assert retriever._unknown_pull("Which diffusion models generate images?", stored, scores, {}) == {}
    # Nor does one with nothing left to compare once the unknown words are gone.
    assert retriever._unknown_pull("What is Zorblax?", stored, scores, {}) == {}
