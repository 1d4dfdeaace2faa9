"""What a question asks that the cited abstracts do not say: the names it uses, the words it
insists on, the words an abstract has only in a contrasting form, and the words that pull the
question away from the abstract (rag.word_pull). An answer lists them (`Answer.missing_terms`,
and a note) so a near miss is visibly flagged, and the support test weighs the missing
names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set

import numpy as np

from rag.text import (
    ASKS_QUANTITY,
    asked_quantity,
    asked_unit,
    content_words,
    insisted_terms,
    mentions_number,
    mentions_unit,
    name_key,
    name_keys,
    name_terms,
    spelled_out,
    split_sentences,
    stems,
    words,
)
from rag.types import Answer, Paper
from rag.word_pull import QuestionVectors, pulls


def missing_names(names: Sequence[str], paper: Paper) -> list[str]:
    """The asked names (as written) that the paper's title and abstract never mention. A
    hyphenated name counts as mentioned when its head is ("ViT-style" by "ViT"), an acronym
    when the words it abbreviates are there ("LVLMs" by "large vision-language models")."""
    text = f"{paper.title} {paper.abstract}"
    have = name_keys(text)
    return [
        name
        for name in names
        if name_key(name) not in have
        and name_key(re.split(r"[-.]", name)[0]) not in have
        and not spelled_out(name, text)
    ]


def paper_stems(paper: Paper) -> set[str]:
    """Every stem of the paper's title and abstract: computed once per cited paper."""
    return set(stems(f"{paper.title} {paper.abstract}"))


def missing_insisted(terms: Sequence[str], have: set[str]) -> list[str]:
    """The insisted-on words (rag.text.insisted_terms) whose stem the paper (its
    `paper_stems`) never uses."""
    return [term for term in terms if not set(stems(term)) <= have]


# Prefixes that turn a word into its opposite or sibling: "decoding" / "encoding",
# "multilingual" / "monolingual", "intra-modal" / "inter-modal". Negating prefixes (un-,
# non-, dis-) are left out: summaries say "unlabeled" of what abstracts call "labeled" data
# (measured on ACLSum: 15 of 750 answerable summaries flagged with them, 2 without).
_CONTRASTS = (
    ("de", "en"),
    ("en", "de"),
    ("multi", "mono"),
    ("multi", "single"),
    ("multi", "uni"),
    ("mono", "multi"),
    ("single", "multi"),
    ("uni", "multi"),
    ("inter", "intra"),
    ("intra", "inter"),
    ("pre", "post"),
    ("post", "pre"),
    ("over", "under"),
    ("under", "over"),
    ("up", "down"),
    ("down", "up"),
)


def contrasted_terms(question: str, have: set[str]) -> list[str]:
    """Question words the paper (its `paper_stems`) never uses while it uses their
    contrasting form: asked about *decoding*, the abstract only says *encoding*. Such a paper
    is a near miss that differs in the very thing asked, whatever the other words share."""
    found: list[str] = []
    for word in content_words(question):
        stem = next(iter(stems(word)), "")
        if not stem or stem in have or word in found:
            continue
        for prefix, other in _CONTRASTS:
            rest = stem[len(prefix) :]
            if stem.startswith(prefix) and len(rest) >= 3 and other + rest in have:
                found.append(word)
                break
    return found


# The question's form, never the detail a near miss differs in: the word after "how" ("how
# many GPUs": abstracts never say "many", so it always pulls), and the verb that ties the
# papers a list asks for to their topic ("Which papers study ...": a fifth of the bundled
# abstracts say "study", yet four on facial expressions did not).
_FORM = re.compile(
    r"\bhow\s+(\w+)|^\W*(?:which|what)\s+(?:papers|works|studies)\s+(\w+)", re.IGNORECASE
)


def absent_pulls(
    question: str, encoded: QuestionVectors, paper: Paper, vector: np.ndarray
) -> dict[str, float]:
    """The pull (rag.word_pull.pulls) of each of the question's words the paper never uses,
    from the question's pass of the model (`encoded`) and the paper's vector; not the words
    of the question's form (`_FORM`)."""
    have = paper_stems(paper)
    form = {word.lower() for match in _FORM.finditer(question) for word in match.groups() if word}
    absent = [
        word
        for word in dict.fromkeys(content_words(question))
        if len(word) > 3  # short words: "per", "one"
        and word not in form
        and not set(stems(word)) <= have
    ]
    return pulls(encoded, absent, vector)


def pulling_away(
    question: str, encoded: QuestionVectors, paper: Paper, vector: np.ndarray, threshold: float
) -> list[str]:
    """The words of `absent_pulls` that bring the question more than `threshold` (cosine)
    closer to the paper when left out: the detail a near miss asks for that this paper is
    not about."""
    found = absent_pulls(question, encoded, paper, vector)
    return [word for word, pull in found.items() if pull > threshold]


def missing_terms(
    question: str,
    names: Sequence[str],
    answer: Answer,
    pulled: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """What the question asks that no cited abstract says (none when the answer cites
    nothing): the asked names, the words the question insists on, the words whose
    contrasting form the abstract uses instead ("decoding" where it says "encoding"),
    `pulled`, each cited paper's `pulling_away` words by paper id, how the question asks
    for a quantity when no cited abstract has a number, and the unit it asks a quantity in
    when no cited abstract uses that unit."""
    cited = {c.paper_id for c in answer.citations}
    papers = [h.paper for h in answer.retrieved if h.paper.id in cited]
    if not papers:
        return []
    keys = {name_key(name) for name in names}
    insisted = [w for w in insisted_terms(question) if name_key(w) not in keys]
    missing = []
    for paper in papers:
        have = paper_stems(paper)
        missing.append(
            set(missing_names(names, paper))
            | set(missing_insisted(insisted, have))
            | set(contrasted_terms(question, have))
            | set((pulled or {}).get(paper.id, ()))
        )
    terms = [*names, *insisted, *(w for w in content_words(question) if w not in insisted)]
    found: list[str] = []
    listed: set[str] = set()  # the words of the terms found so far
    for term in terms:
        # A word of a name listed already ("bilstm" of "BiLSTM-CRF", "gpus" of "GPUs") is
        # that name again.
        parts = set(words(term))
        if all(term in gaps for gaps in missing) and not parts <= listed:
            found.append(term)
            listed |= parts
    return found + missing_quantity(question, papers, listed)


def missing_quantity(
    question: str, papers: Sequence[Paper], listed: Set[str] = frozenset()
) -> list[str]:
    """How the question asks for a quantity that none of the (cited) `papers` can give,
    unless what it counts or its unit is among the `listed` words.

    A question that asks for a quantity insists on a number: no abstract without any gives
    it ("How many papers does the survey review?"), unless what it counts is listed already
    ("how many GPUs" after "GPUs") or an abstract names several of them in a list
    (lists_counted). One that asks it in a unit ("What is its latency in
    milliseconds?") is not answered by an abstract that never uses the unit, whatever other
    numbers it has.
    """
    found = []
    texts = [f"{paper.title} {paper.abstract}" for paper in papers]
    quantity = asked_quantity(question)
    counted = set(content_words(ASKS_QUANTITY.sub(" ", quantity or "")))  # "GPUs"
    if (
        quantity
        and not any(mentions_number(text) for text in texts)
        and not any(lists_counted(counted, paper.abstract) for paper in papers)
        and not (counted and counted <= listed)
    ):
        found.append(quantity)
    unit = asked_unit(question)
    if (
        unit
        and not any(mentions_unit(unit, text) for text in texts)
        and not {unit, f"{unit}s"} & listed
    ):
        found.append(f"in {unit}s")
    return found


def lists_counted(counted: Set[str], text: str) -> bool:
    """Whether a sentence of `text` names two or more of the `counted` things ("evaluated on
    COCO, LVIS and Objects365 datasets" for "how many datasets"): the count can be read off
    the list without a number."""
    wanted = {stem for word in counted for stem in stems(word)}
    return bool(wanted) and any(
        wanted & set(stems(sentence)) and len(name_terms(sentence)) > 1
        for sentence in split_sentences(text)
    )


def missing_note(answer: Answer) -> str:
    """The sentence that lists `answer.missing_terms` for a reader."""
    if len(answer.citations) < 2:
        lead = "The cited abstract does not mention"
    else:  # every cited abstract lacks each term (missing_terms)
        lead = "None of the cited abstracts mentions"
    return f"{lead}: {', '.join(answer.missing_terms)}."
