"""The extractive answerer: short answers made of abstract sentences, each with its marker.

It never writes text that is not in an abstract, a title or a paper's record; the only fixed
text is the abstention, the note that a follow-up's answer was already given, and the
sentences that give a record's field or say it is missing (rag.record).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.citations import citation_for, evidence, format_closest, ranked_sentences
from rag.lexical import LexicalIndex
from rag.missing import missing_names, missing_quantity
from rag.record import record_answer, record_fields
from rag.settings import AnswerSettings, RetrievalSettings
from rag.text import (
    ASKS_QUANTITY,
    COUNTED,
    LIST_CHOICE,
    PLACE_REFERENCE,
    latest_list,
    listed_names,
    name_key,
    name_keys,
    name_terms,
    points_into_a_list,
    stems,
    without_list_names,
    without_request,
    words,
)
from rag.types import Answer, Citation, Hit, Turn

ABSTAIN_TEXT = (
    "The indexed papers don't answer this question. Try rephrasing it, or add papers that cover it."
)
NOTHING_ASKED = (
    "This question names nothing to look up in the papers. Ask about a topic, method, model, "
    "dataset or result."
)
ALREADY_SAID = "The abstract of {title} says nothing more on this than the answer above [{n}]."
QUANTITY_NOT_GIVEN = (
    "The abstract of {title}, the closest paper, does not give what is asked ({what}), so the "
    "indexed papers don't answer this question."
)
CLOSEST_HEADING = "Closest papers (none clearly answers it):"


def closest_papers(answer: Answer) -> str:
    """Under a refusal for weak support, the papers it came closest to (as the web chat lists
    them): a question refused with its paper first is then one step from it. Empty for an
    answer, or for a question that asks nothing."""
    if not answer.abstained or not answer.retrieved or answer.text == NOTHING_ASKED:
        return ""
    return f"{CLOSEST_HEADING}\n{format_closest(answer.retrieved)}"


# Questions that ask for several papers: "papers" anywhere, "works" as a noun, "every paper",
# or a plural head noun after the question word or an imperative ("Which methods ...", "What
# are some approaches ...", "List models ...", "Are there several systems ..."); "which
# datasets" asks about one paper.
_SEVERAL_PAPERS = re.compile(
    r"\b(papers|studies|articles|publications)\b"
    r"|\b(every|all|each)\s+(paper|study|article|work)\b"
    r"|\b(what|which|find|any|some)\s+(research|work)\s+(has|have|on|about|into|in|exists?)\b"
    r"|\b(which|what|the|these|other|related|prior|existing|recent)\s+((two|three|four|several|"
    r"multiple|some|other)\s+)?works\b",  # not "it works"
    re.IGNORECASE,
)
_SEVERAL_THINGS = re.compile(
    r"^\s*(which|what|name|list|give|find|show me|are there)\s+((are|were|some|the|two|three|"
    r"several|multiple|any|other|all)\s+){0,2}([\w-]+\s+)?"
    r"(methods|approaches|models|frameworks|techniques|systems|architectures|benchmarks|"
    r"datasets|LLMs|MLLMs|LVLMs|VLMs)\b",
    re.IGNORECASE,
)
# "Which methods does it compare against?", "Which datasets does SeqDialN use?": the methods
# or datasets of one paper (the conversation's, or the one named), not several papers.
_ABOUT_ONE_PAPER = re.compile(
    r"\b(does|did|do|is|was|has|can|could)\s+(it|(this|the) (paper|work|study|model|method|"
    r"approach|framework|system|benchmark|dataset)|the authors|[A-Z][\w.-]*)(?![\w-])"
)
_MAX_PAPERS = 5
# Where a question turns to another ask: ", and how ...", "and which datasets ...".
_NEXT_PART = re.compile(
    r",?\s+(?:and|while|but|also)\s+(?=(?:what|which|how|why|where|when|who|whether|does|do|"
    r"did|is|are|was|were|can|could|has|have)\b)",
    re.IGNORECASE,
)
# What kind of thing the question asks for (a quantity: rag.text.ASKS_QUANTITY), and how a
# sentence that gives it looks: a quantity is written with digits, a dataset or benchmark by
# its name.
_ASKS_NAME = re.compile(r"\b(datasets?|benchmarks?|corpora|corpus|test sets?)\b", re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[^\W\d_]")
# Ranks a sentence that gives the asked kind of thing above one that only shares words (if it
# shares any: a contribution sentence about something else answers nothing).
ANSWER_TYPE_BONUS = 0.2
# An abstract opens with the field's background and then turns to the paper's own work
# ("we", "our", "this paper"); a question about a paper is answered by the latter, unless it
# asks why (the motivation, the problem, the limitation addressed). A sentence that points to
# a link ("code is available at ...") answers nothing either.
_OWN_WORK = re.compile(r"\b(we|our|us|this (paper|work|study|article|report))\b", re.I)
_QUESTION = re.compile(
    r"\?\s*$|^\W*(what|which|how|who|when|where|is|are|was|were|does|do|did|can|could|has|"
    r"have|list|name|give|show|tell|find)\b",
    re.IGNORECASE,
)
_ASKS_WHY = re.compile(
    r"\b(why|motivat\w*|problems?|limitations?|challenges?|issues?|gap|shortcomings?)\b", re.I
)
# Discourse markers that open a sentence and carry no content of their own; an answer drops
# them ("To address this issue, we propose X." -> "We propose X.").
_OPENER = re.compile(
    r"^(?:(?:to (?:this|that) (?:end|purpose|aim)|(?:in order )?to (?:address|tackle|overcome|solve|"
    r"bridge|fill|alleviate|mitigate|fulfill|facilitate) (?:this|these|that|those|the above|the|it|"
    r"them)(?: (?:\w+ )?(?:issues?|problems?|limitations?|challenges?|gaps?|concerns?|"
    r"shortcomings?))?|(?:addressing|motivated by|inspired by) (?:this|these|that|those)(?: (?:\w+ )?"
    r"(?:issues?|problems?|limitations?|challenges?|gaps?|concerns?|shortcomings?|observations?|"
    r"findings?))?|in this (?:paper|work|study)|briefly|further|besides|for (?:example|instance)|"
    r"on the (?:one|other) hand|particularly|interestingly|surprisingly|remarkably|in contrast|"
    r"by contrast|subsequently|then|next|meanwhile|in this way|by doing so|"
    r"specifically|however|moreover|furthermore|additionally|in addition|finally|"
    r"in particular|concretely|therefore|thus|hence|as a result|in response|empirically|yet|"
    r"notably|importantly|overall|in summary|in short|consequently|first(?:ly)?|second(?:ly)?|"
    r"third(?:ly)?|lastly),\s+"
    # an item's number in a list the abstract runs through: "(2) both ...", "ii) we ..."
    r"|\(?(?:\d|i{1,3}|iv|v)\)\s+"
    r"|(?:extensive |our |the )?(?:experimental |empirical )?(?:experiments?|results?|evaluations?|"
    r"analys[ie]s)(?: on [\w\s-]{1,40}?)? (?:show|demonstrate|indicate|reveal|confirm|verify|suggest)s? "
    r"that,?\s+)+",
    re.IGNORECASE,
)
_URL = re.compile(
    r"https?://|\bgithub\b|\bavailable at\b"
    # "All the details and codes will be open-sourced.", "Both the source code and the training
    # dataset of X will be made publicly available.", "We make our code, data, and models
    # publicly available.": a release, with or without a link.
    r"|\b(our|the|all( the)?) ((source|training) )?(code|codes|data|dataset|models?|weights|"
    r"details|benchmark)\b[^.]{0,40}\b(is|are|will be)( made)? ((publicly )?available|"
    r"open-sourced|released)\b"
    r"|\b(make|makes|made) (our|the|all)\b[^.]{0,60}\bpublicly available\b",
    re.I,
)
# What the paper leaves to others, or hopes its work will do, says nothing of what it did:
# "We hope our release will inspire ...", "This work represents a significant step forward
# ..., paving the way for ...".
_OUTLOOK = re.compile(
    r"\b(future(\s+\w+){0,2}\s+(work|research|studies|tasks|directions?|experiments)|we leave)\b"
    r"|^\W*(we (hope|envision)|(this|our) (work|paper|study|research) (represents|marks|constitutes|"
    r"takes|opens|paves))\b",
    re.I,
)


# "Is the code available?": then the link is the answer, not an aside.
_ASKS_CODE = re.compile(
    r"\b(code|codebase|github|repo|repository|implementation|open[- ]sourced?|"
    r"released?|download)\b",
    re.IGNORECASE,
)


# A heading that a structured abstract's splitting left as a sentence: "Findings.",
# "Background:", "Main results." It names a part of the abstract, not a fact.
_HEADING = re.compile(r"^\W*[A-Za-z]+(?:\s+[A-Za-z]+)?\s*[.:]?\s*$")


def _aside(sentence: str, links_answer: bool = False) -> bool:
    """A link, future work or a heading: what the paper points to, not what it did (unless
    the question asks where its code is: `links_answer`, from _ASKS_CODE)."""
    if _URL.search(sentence):
        return not links_answer
    return bool(_OUTLOOK.search(sentence) or _HEADING.match(sentence))


def asks_for_several(question: str) -> bool:
    if _SEVERAL_PAPERS.search(question):
        return True
    first_part = _NEXT_PART.split(question)[0]
    return bool(_SEVERAL_THINGS.search(question)) and not _ABOUT_ONE_PAPER.search(first_part)


@dataclass
class Support:
    """How well the top paper supports the question; drives abstention."""

    dense: float  # cosine of its best chunk
    term_coverage: float  # idf-weighted share of the question's terms it has
    missing_names: float  # share of the names the question insists on that it lacks
    dense_margin: float = 0.0  # the query's rag.retrieve.dense_margin
    unknown_pull: float = 0.0  # how much the paper gains when the unused words are dropped

    def features(self) -> tuple[float, ...]:
        """What `probability` weighs, in the order of `support_weights` (1.0 for the bias);
        scripts/fit_retrieval.py fits the weights on exactly these."""
        return (
            1.0,
            self.dense,
            self.term_coverage,
            self.missing_names,
            self.dense_margin,
            self.unknown_pull,
        )

    def probability(self, settings: RetrievalSettings) -> float:
        """Logistic estimate that the paper answers the question (weights fitted by
        scripts/fit_retrieval.py, see docs/evaluation.md)."""
        weighted = zip(settings.support_weights, self.features(), strict=True)
        x = sum(weight * value for weight, value in weighted)
        return 1.0 / (1.0 + math.exp(-x))

    def answerable(self, settings: RetrievalSettings) -> bool:
        return self.probability(settings) >= 0.5


# Words that ask for nothing a paper could say: greetings, thanks, and requests with no subject
# ("Tell me more", "Summarize it" with no conversation before them). A paper that happens to
# use them ("Thanks to ...", a survey that "summarizes") is no answer.
_CHAT_STEMS = frozenset(
    stems(
        "thanks thank hello hey please okay great cool nice bye goodbye sorry tell summarize "
        "summarise explain describe elaborate continue"
    )
)


def asks_something(query: str, names: Sequence[str]) -> bool:
    """Whether the question (with its conversation) names something or uses a word an
    abstract could say: "?", "thanks!", "What is this?" or "What is 2+2?" alone ask nothing
    to look up (a number alone names no paper: "2" is not NoteLLM-2)."""
    terms = [*names, *(set(stems(without_request(query))) - _CHAT_STEMS)]
    return any(_HAS_LETTER.search(term) for term in terms)


def support(
    query: str,
    hit: Hit,
    lexical: LexicalIndex,
    names: Sequence[str] = (),
    dense_margin: float = 0.0,
) -> Support:
    coverage = evidence(query, hit.paper, lexical.idf).coverage
    missing = len(missing_names(names, hit.paper)) / len(names) if names else 0.0
    return Support(hit.dense, coverage, missing, dense_margin, hit.unknown_pull)


def choose_papers(
    question: str,
    query: str,
    hits: Sequence[Hit],
    lexical: LexicalIndex,
    settings: RetrievalSettings,
    names: Sequence[str],
    limit: int,
    dense_margin: float = 0.0,
) -> list[Hit]:
    """The top paper; for a question asking for several, every other top hit that supports
    the question by the same test the top paper passed and whose fused score stands close
    to the top: at least `several_min_share` of the way from the last hit's score to the
    first's (the papers that fit a question score together, well above the rest)."""
    if not hits:
        return []
    top = list(hits[: min(limit, _MAX_PAPERS)])
    named = _named_papers(top, names)
    if len(named) > 1:  # "Compare TokenPacker and LLaVA-Mini": each paper it names
        return named
    if not asks_for_several(question):
        return [hits[0]]
    share = several_shares([hit.score for hit in top])
    return [top[0]] + [
        hit
        for hit, position in zip(top[1:], share[1:], strict=True)
        if position >= settings.several_min_share
        and support(query, hit, lexical, names, dense_margin).answerable(settings)
    ]


def _named_papers(hits: Sequence[Hit], names: Sequence[str]) -> list[Hit]:
    """The hits whose own name ("TokenPacker" of "TokenPacker: Efficient ...") the question
    uses, one per asked name, best first."""
    asked = {name_key(name) for name in names}
    found: list[Hit] = []
    for hit in hits:
        head, sep, _ = hit.paper.title.partition(":")
        if not sep:
            continue
        # A name of several words ("Chart Reader") is asked word by word.
        parts = {name_key(word) for word in head.split()}
        if name_key(head) in asked or (len(parts) > 1 and parts <= asked):
            found.append(hit)
            asked -= parts | {name_key(head)}  # one paper per asked name
    return found


_COMPARING = re.compile(r"\b(differ\w*|in common|similar\w*|versus|vs|compar\w*)\b", re.I)


def _line_question(question: str, hits: Sequence[Hit]) -> str:
    """What a comparison asks of one paper: without the other papers' names, nor the words
    that compare ("How do X and Y differ?" asks what X is)."""
    for hit in hits:
        question = re.sub(re.escape(short_title(hit.paper.title)), " ", question, flags=re.I)
    return _COMPARING.sub(" ", question)


# "What datasets do they use?" after a list of papers: each paper of that list. "What does the
# second one use?", "and the latter?": the paper at that place in the list.
_PLURAL_REFERENCE = re.compile(r"\b(they|them|their|these|those|each)\b", re.IGNORECASE)
_PLACES = {"first": 0, "former": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4}


# Words of "which of them" that point at the list, not at what the question chooses by.
_REFERENCE_WORDS = {"them", "these", "those", "paper", "method", "model", "work", "one"}


def _listed_before(question: str, history: Sequence[Turn], hits: Sequence[Hit]) -> list[Hit]:
    """For a follow-up after a several-paper answer, the retrieved hits of the papers that
    answer listed: all of them, in its order, for "they" (none when fewer than two are
    found); the one at the place it names for "the second one" or "the latter", in the
    latest list (an answer about one of its papers may have come since); for "which of
    them ..." that latest list's papers, which the answer then chooses from (`_selected`)."""
    answers = [turn.content for turn in history if turn.role == "assistant"]
    names = listed_names(answers[-1]) if answers else []
    by_name = {short_title(hit.paper.title): hit for hit in reversed(hits)}
    if points_into_a_list(question):  # "the second one", "which of them": the latest list
        at = latest_list(answers)
        names = listed_names(answers[at]) if at is not None else []
    place = PLACE_REFERENCE.search(question)
    if place and len(names) > 1:
        word = (place.group(1) or place.group(2)).lower()
        position = _PLACES.get(word, len(names) - 1)  # "last", "latter"
        named = names[position] if position < len(names) else None
        return [by_name[named]] if named in by_name else []
    if not (_PLURAL_REFERENCE.search(question) or LIST_CHOICE.search(question)):
        return []
    listed = [by_name[name] for name in names if name in by_name]
    return listed if len(listed) > 1 else []


def _selected(question: str, listed: list[Hit], lexical: LexicalIndex) -> list[Hit]:
    """The listed papers that best match what the question chooses by ("Which of them uses
    audio?"): those covering the most of its idf-weighted words, in the list's order; none
    when no listed paper uses its rarest word (the one that chooses, "audio")."""
    weights = {t: lexical.idf(t) for t in set(stems(question)) if t not in _REFERENCE_WORDS}
    if not weights:
        return listed
    rarest = max(weights, key=lambda t: weights[t])
    have = {hit.paper.id: set(stems(f"{hit.paper.title} {hit.paper.abstract}")) for hit in listed}
    if not any(rarest in terms for terms in have.values()):
        return []
    cover = {pid: sum(w for t, w in weights.items() if t in terms) for pid, terms in have.items()}
    best = max(cover.values())
    return [hit for hit in listed if cover[hit.paper.id] >= best]


def several_shares(scores: Sequence[float]) -> list[float]:
    """Where each score stands between the last (0) and the first (1)."""
    low, spread = scores[-1], (scores[0] - scores[-1]) or 1.0
    return [(score - low) / spread for score in scores]


# An aside that only gives examples: "(e.g., cars or birds)".
_EXAMPLES = re.compile(r",?\s*\((?:e\.\s?g\.|for example|such as)[^()]*\)", re.IGNORECASE)


# LaTeX that arXiv abstracts keep: "84.7\\%", "{\\mu}-Bench", "e.g.~instance-level".
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "lambda": "λ",
          "mu": "μ", "pi": "π", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω"}  # fmt: skip
_LATEX = re.compile(r"\{?\\(" + "|".join(_GREEK) + r")\b\}?|\\([%&_#$])|(?<=[\w.])~(?=\w)")


def _plain(sentence: str) -> str:
    return _LATEX.sub(lambda m: _GREEK.get(m.group(1) or "", m.group(2) or " "), sentence)


def concise(sentence: str) -> str:
    """The sentence without its opening discourse markers and its asides of examples, and
    with LaTeX escapes written out."""
    rest = _EXAMPLES.sub("", _OPENER.sub("", sentence))
    return _plain(rest[:1].upper() + rest[1:] if rest and rest != sentence else sentence)


def _said(history: Sequence[Turn]) -> set[str]:
    """Sentences already in the conversation, compared by their words (a several-paper
    answer's sentences without the "- Name: " of their line)."""
    return {
        " ".join(words(sentence))
        for turn in history
        if turn.role == "assistant"
        for sentence in re.split(r"(?<=[.!?\]])\s+", without_list_names(turn.content))
    } | {" ".join(words(re.sub(r"\s*\[\d+\]", "", turn.content))) for turn in history}


def short_title(title: str) -> str:
    """The name a title gives its paper ("VERIFIED: A Video Corpus ..." -> "VERIFIED"), or the
    whole title when it has none."""
    head, sep, _ = title.partition(":")
    return head.strip() if sep and 0 < len(head.split()) <= 5 else title


# "Which paper/method/model/dataset ...": the answer is what the paper is, which its
# contribution sentence says ("we propose X", or a sentence naming X).
_ASKS_IDENTITY = re.compile(
    r"^\W*(which|what|is there)\b(?! (is|are|was|were|do|does|did)\b)"
    # "What does it contribute?", "What is its novelty?": what the paper is, too.
    r"|^\W*what\b.{0,30}\b(contribut\w*|novelty|(main|key|core) ideas?)\b",
    re.I,
)
_CONTRIBUTION = re.compile(
    r"\b(we|this (paper|work))\b.{0,40}\b(propose|present|introduce|develop|build|construct|"
    r"contribute)",
    re.I,
)


def _is_contribution(sentence: str) -> bool:
    """A "we propose ..." sentence that is not a link (as in `gives` below)."""
    return bool(_CONTRIBUTION.search(sentence)) and not _URL.search(sentence)


def _ranked_for(
    question: str, hit: Hit, lexical: LexicalIndex, links_answer: bool
) -> tuple[list[tuple[float, int, str]], Callable[[str], float], Callable[[str], bool], set[str]]:
    """The abstract's sentences in answer order, the term weights they were ranked by, the
    test of whether a sentence gives the kind of thing asked, and the background sentences
    (before the paper's own work, for a question that does not ask why). `links_answer`:
    the question asks where the code is (_ASKS_CODE), so a link is no aside.

    Order: the paper's own work before its background (for a question that does not ask
    why), links last, then by question-term share plus a bonus when a sentence gives the
    kind of thing asked (a number, a dataset name, what the paper is).
    """
    matched = " ".join(hit.evidence[:1])
    wants_identity = bool(_ASKS_IDENTITY.search(question))
    gives_kind = _kind_test(question)
    own_name = name_key(short_title(hit.paper.title)) if ":" in hit.paper.title else ""

    def names_the_paper(sentence: str) -> bool:
        return (
            wants_identity
            and not _URL.search(sentence)  # a link naming the repository says nothing
            and (
                bool(_CONTRIBUTION.search(sentence))
                or bool(own_name and own_name in name_keys(sentence))
            )
        )

    def gives(sentence: str) -> bool:
        return bool(gives_kind and gives_kind(sentence)) or names_the_paper(sentence)

    def order(ranked: tuple[float, int, str]) -> tuple[bool, bool, float, int]:
        share, position, sentence = ranked
        if about_paper:  # what the paper is first, then its own work in the abstract's order
            aside = _aside(sentence, links_answer)
            return (position < own_start, aside, -_is_contribution(sentence), position)
        bonus = ANSWER_TYPE_BONUS * (share > 0 and gives(sentence)) + (
            0.05 if sentence in matched else 0.0
        )
        return (position < own_start, _aside(sentence, links_answer), -(share + bonus), position)

    # The paper's own name picked the paper; within it, every sentence that repeats the name
    # ("The code is available at .../NAME") is no closer to the answer, so it is not counted.
    own_stems = set(stems(short_title(hit.paper.title))) if own_name else set()

    def idf(term: str) -> float:
        return 0.0 if term in own_stems else lexical.idf(term)

    # "Tell me about X", "What is X?": no word but the paper's name, so the paper as a whole.
    about_paper = not set(stems(question)) - own_stems and not _ASKS_WHY.search(question)
    weigh = lexical.idf if about_paper else idf
    by_share = ranked_sentences(question, hit.paper, weigh)
    # A statement rather than a question ("a model that ...") asks for the text most like it.
    asks_what = about_paper or (bool(_QUESTION.search(question)) and not _ASKS_WHY.search(question))
    own = [position for _, position, sentence in by_share if _OWN_WORK.search(sentence)]
    own_start = min(own, default=0) if asks_what else 0
    background = {sentence for _, position, sentence in by_share if position < own_start}
    return sorted(by_share, key=order), idf, names_the_paper, background


def _words(sentences: Sequence[str]) -> int:
    return sum(len(concise(sentence).split()) for sentence in sentences)


def _kind_test(question: str) -> Callable[[str], bool] | None:
    """The test of whether a sentence gives the kind of thing the question asks for, or None
    when it asks for none: a number for "how many" (for "how many videos", one that counts
    videos: "900 videos", not a version "Gemini 1.5" or a list item "1) ..."), a name for
    "which datasets"."""
    wants_number = bool(ASKS_QUANTITY.search(question))
    wants_name = bool(_ASKS_NAME.search(question))
    if not (wants_number or wants_name):
        return None
    unit = COUNTED.search(question)
    counted = set(stems(unit.group(1) + unit.group(2))) if unit else set()

    def gives_number(sentence: str) -> bool:
        if not _HAS_DIGIT.search(sentence):
            return False
        if not counted:  # "how much faster", "what accuracy": any number
            return True
        tokens = sentence.split()
        return any(
            _HAS_DIGIT.search(token) and counted & set(stems(" ".join(tokens[at : at + 4])))
            for at, token in enumerate(tokens)
        )

    def gives(sentence: str) -> bool:
        return (wants_number and gives_number(sentence)) or (
            wants_name and bool(name_terms(sentence))
        )

    return gives


def _other_parts(
    question: str,
    chosen: list[str],
    own_work: list[str],
    idf: Callable[[str], float],
    most: int,
    part_words: int,
) -> list[str]:
    """`chosen` plus, for each further part of the question ("..., and which datasets ...?"),
    the sentence of the paper's own work that covers most of that part's terms, when it
    covers more of them than the chosen ones do and the answer stays within `part_words`
    (0: the rule is off)."""
    parts = _NEXT_PART.split(question)[1:]
    if part_words <= 0 or not parts:
        return chosen
    # The words the answer's sentences and the paper's own work use; the parts only add
    # sentences of its own work, so it holds for every part.
    used = set(stems(" ".join([*chosen, *own_work])))
    for part in parts:
        # Its words, not those that say what kind of thing it asks ("how many").
        asked = ASKS_QUANTITY.sub(" ", part)
        weights = {t: idf(t) for t in set(stems(asked)) if idf(t) > 0}
        gives_kind = _kind_test(part)
        if len(chosen) >= most or not (weights or gives_kind):
            continue
        total = sum(weights.values())
        # "... and how many videos does it have?" about Video-MME has no word but the paper's
        # own name; "... and how much does that save?" may use only words that the paper's
        # own work never does. The kind of thing asked (a number) is then all the part says.
        only_kind = not any(t in used for t in weights)

        def share(
            sentence: str,
            weights: dict[str, float] = weights,
            total: float = total,
            gives_kind: Callable[[str], bool] | None = gives_kind,
            only_kind: bool = only_kind,
        ) -> float:
            have = set(stems(sentence))
            found = sum(w for t, w in weights.items() if t in have) / total if total else 0.0
            gives = bool(gives_kind and gives_kind(sentence)) and (found > 0 or only_kind)
            return found + ANSWER_TYPE_BONUS * gives

        room = part_words - _words(chosen)
        fits = [s for s in own_work if s not in chosen and len(concise(s).split()) <= room]
        best = max(fits, key=share, default=None)  # the earliest of equal shares
        if best is not None and share(best) > max(share(c) for c in chosen):
            chosen = [*chosen, best]
    return chosen


def _key_sentences(
    question: str,
    hit: Hit,
    lexical: LexicalIndex,
    said: set[str],
    most: int,
    fill_words: int = 0,
    part_words: int = 0,
) -> list[str]:
    """Up to `most` sentences that answer, best first, none already said.

    The first is the best in answer order (_ranked_for). Then each further part of the
    question gets the sentence that answers it best (_other_parts), within `part_words`.
    Each further sentence must add a question term of above-median weight that the chosen
    ones lack: a second ask of the question, not more of the same, from the paper's own
    work: not the field's background, a link or future work. Then, while the answer stays
    within `fill_words` words, the next-best sentences of its own work fill the rest.
    """
    links_answer = bool(_ASKS_CODE.search(question))
    ranked, idf, names_the_paper, background = _ranked_for(question, hit, lexical, links_answer)
    # An answer shows a sentence shortened (`concise`): either form counts as said.
    fresh = [
        s
        for _, _, s in ranked
        if s.strip() and not {" ".join(words(s)), " ".join(words(concise(s)))} & said
    ]
    # A follow-up whose words only the sentences already given share: the abstract says
    # nothing more on it, and a sentence sharing none of them would not answer it.
    shares = {s: share for share, _, s in ranked}
    given = max((v for s, v in shares.items() if s not in fresh), default=0.0)
    if not fresh or max(shares[s] for s in fresh) == 0 < given:
        return []
    # "Which paper ...?" is answered by what the paper is: its contribution sentence leads, when
    # it shares the question's words (in a "which papers" list, the line must say why it fits).
    # A sentence that only gives the asked kind of thing (a name, a number) is not one.
    contribution = [s for s in fresh if names_the_paper(s) and shares[s] > 0][:1]
    fresh = contribution + [s for s in fresh if s not in contribution]
    weights = {t: idf(t) for t in set(stems(question)) if idf(t) > 0}
    heavy = sorted(weights.values())[len(weights) // 2] if weights else 0.0
    own_work = [s for s in fresh if not _aside(s, links_answer) and s not in background]
    chosen = _other_parts(question, [fresh[0]], own_work, idf, most, part_words)
    covered = set(stems(" ".join(chosen)))
    for sentence in fresh[1:]:
        if len(chosen) >= most:
            break
        if _aside(sentence, links_answer) or sentence in background or sentence in chosen:
            continue
        terms = set(stems(sentence))
        if any(weights.get(t, 0.0) >= heavy > 0 for t in terms - covered):
            chosen.append(sentence)
            covered |= terms
    # Filling adds what the paper did too: never background or an aside chosen only for the
    # room left.
    return _filled(chosen, own_work, most, fill_words)


def _filled(chosen: list[str], fresh: list[str], most: int, fill_words: int) -> list[str]:
    """Room left in a short answer goes to the next-best sentences: the question's other
    parts are often asked in words the abstract does not use."""
    used = _words(chosen)
    for sentence in fresh:
        length = len(concise(sentence).split())
        if len(chosen) < most and sentence not in chosen and used + length <= fill_words:
            chosen = [*chosen, sentence]
            used += length
    return chosen


def extractive_answer(
    question: str,
    query: str,
    hits: Sequence[Hit],
    lexical: LexicalIndex,
    settings: AnswerSettings,
    retrieval_settings: RetrievalSettings,
    k: int,
    names: Sequence[str] = (),
    history: Sequence[Turn] = (),
    dense_margin: float = 0.0,
) -> Answer:
    retrieved = list(hits[:k])

    def abstain(text: str = ABSTAIN_TEXT) -> Answer:
        return Answer(text, [], retrieved, abstained=True, mode="extractive", query=query)

    asked = without_request(question)  # what is asked, not "summarize"
    fields = record_fields(asked)
    if not asks_something(query, names):
        return abstain(NOTHING_ASKED)
    if not hits:
        return abstain()
    top = support(query, hits[0], lexical, names, dense_margin)
    own_names = name_terms(asked)  # not the conversation's
    # "Compare Flamingo and MMICL": finding each paper it names is the support, as below.
    compares = len(_named_papers(hits[:k], names)) > 1
    if fields and own_names:
        # "When was TokenPacker published?" asks the record of the paper it names: finding
        # that paper is the support, whatever of the question's other words it lacks.
        if missing_names(own_names, hits[0].paper):
            return abstain()
    elif not compares and not top.answerable(retrieval_settings):
        return abstain()
    listed = _listed_before(question, history, hits)
    if listed and LIST_CHOICE.search(question):
        listed = _selected(question, listed, lexical)
        if not listed:  # none of the listed papers' abstracts says it
            return abstain()
    chosen = listed or choose_papers(
        question, query, hits, lexical, retrieval_settings, names, k, dense_margin
    )
    said = _said(history)
    lines: list[str] = []
    citations: list[Citation] = []
    # Its sentences answer what is asked: not "summarize", nor "the third one" (a place in the
    # list, which chose the paper).
    question = PLACE_REFERENCE.sub("it", asked)
    if fields:  # "Who wrote it?": the record answers, not the abstract's sentences
        text = " ".join(record_answer(fields, hit.paper, n) for n, hit in enumerate(chosen, 1))
        citations = [citation_for(n, hit, hit.paper.title) for n, hit in enumerate(chosen, 1)]
        return Answer(text, citations, retrieved, abstained=False, mode="extractive", query=query)
    if len(chosen) > 1:
        # One line per paper: its title and the sentence that answers best, and further ones
        # of the paper's own work when they answer another part of the question ("Which papers
        # ..., and which datasets ...?"), up to `line_sentences`.
        for n, hit in enumerate(chosen, start=1):
            most = settings.line_sentences
            # A paper's line answers for that paper: the others' names are not its question.
            others = [h for h in chosen if h is not hit]
            ask = _line_question(question, others) if compares else question
            picked = _key_sentences(
                ask, hit, lexical, said, most, part_words=settings.part_words
            ) or _key_sentences(ask, hit, lexical, set(), most, part_words=settings.part_words)
            quoted = " ".join(concise(sentence) for sentence in picked)
            lines.append(f"- {short_title(hit.paper.title)}: {quoted} [{n}]")
            citations.append(citation_for(n, hit, picked[0], highlights=picked))
        text = "\n".join(lines)
    else:
        hit = chosen[0]
        # A question that asks only for a quantity ("What is its latency in milliseconds?")
        # is not answered by an abstract that cannot give it: its sentences would be about
        # something else.
        lacking = [] if _NEXT_PART.search(question) else missing_quantity(question, [hit.paper])
        if lacking:
            what = ", ".join(lacking)
            return abstain(QUANTITY_NOT_GIVEN.format(title=hit.paper.title, what=what))
        picked = _key_sentences(
            question,
            hit,
            lexical,
            said,
            settings.max_sentences,
            settings.fill_words,
            settings.part_words,
        )
        if not picked:
            text = ALREADY_SAID.format(title=hit.paper.title, n=1)
            citations.append(citation_for(1, hit, evidence(query, hit.paper, lexical.idf).sentence))
        else:
            text = " ".join(f"{concise(sentence)} [1]" for sentence in picked)
            citations.append(citation_for(1, hit, picked[0], highlights=picked))
    return Answer(text, citations, retrieved, abstained=False, mode="extractive", query=query)
