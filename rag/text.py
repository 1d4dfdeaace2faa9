"""Text helpers shared by chunking, lexical scoring, extractive answers and metrics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# Split after . ! ? when the next sentence starts like one; keeps "e.g. foo" and "1.5" whole.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "vs.", "cf.", "Fig.", "Eq.")
_WORD = re.compile(r"[0-9a-z]+")

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves via using use used uses based paper papers
    work method methods approach propose proposed proposes show shows shown
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def invalid_text_at(text: str) -> int | None:
    """Where `text` holds a lone surrogate, else None.

    Such code points are not characters: JSON's "\\ud800" escapes make them, and Python
    turns invalid UTF-8 bytes of command-line arguments into them. They cannot be encoded,
    so they fail deep inside the tokenizer, the store or the JSON output.
    """
    match = _SURROGATE.search(text)
    return match.start() if match else None


def describe_invalid(text: str, at: int) -> str:
    """ "the byte 0xff" for a byte Python escaped, "U+D800" for a JSON-made surrogate."""
    code = ord(text[at])
    if 0xDC80 <= code <= 0xDCFF:
        return f"the byte 0x{code - 0xDC00:02x}, which is not valid UTF-8,"
    return f"U+{code:04X} (half of a UTF-16 pair, not a character)"


def split_sentences(text: str) -> list[str]:
    parts = _SENTENCE_BREAK.split(text.strip())
    sentences: list[str] = []
    for part in parts:
        if sentences and sentences[-1].endswith(_ABBREVIATIONS):
            sentences[-1] = f"{sentences[-1]} {part}"
        elif part.strip():
            sentences.append(part.strip())
    return sentences


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# The words `words` reads, found in text that is not lower-cased (so it can be kept as written).
_WORD_AS_WRITTEN = re.compile(_WORD.pattern, re.IGNORECASE)


def without_words(text: str, dropped: Sequence[str]) -> str:
    """`text` without the words (as `words` reads them) in `dropped`."""
    drop = set(dropped)
    kept = _WORD_AS_WRITTEN.sub(lambda m: "" if m.group(0).lower() in drop else m.group(0), text)
    return " ".join(kept.split())


def content_words(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens of 3+ characters, or any number, minus stop words."""
    return [w for w in words(text) if (len(w) >= 3 or w.isdigit()) and w not in STOP_WORDS]


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


# "10M", "7B", "3.1T": a count with its magnitude, also matched as the number and the word
# ("10 million"), since abstracts and questions write counts both ways.
_MAGNITUDE = {"k": "thousand", "m": "million", "b": "billion", "t": "trillion"}
_COUNT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([kmbt])\b")


def stems(text: str) -> list[str]:
    """Content words reduced to their stems, for lexical matching."""
    found = content_words(text)
    for count in _COUNT.finditer(text.lower()):
        found += [*words(count.group(1)), _MAGNITUDE[count.group(2)]]
    return list(_stemmer().stemWords(found))


# A name joined by hyphens or dots with a part too short to be a word of its own: "ST-Align",
# "GPT-4V", "Qwen2-VL". content_words drops such parts ("st", "4v", "vl"), so the name would
# match only by its common part ("align").
_JOINED = re.compile(r"[0-9a-z]+(?:[-.][0-9a-z]+)+")


def joined_names(text: str) -> list[str]:
    """Such names as one lower-cased term each ("stalign", "gpt4v"), in order."""
    found = []
    for match in _JOINED.finditer(text.lower()):
        parts = match.group(0).replace(".", "-").split("-")
        short = any(len(part) < 3 and not part.isdigit() for part in parts)
        if short and any(len(part) >= 3 for part in parts):  # not "e.g.", "v1.0"
            found.append("".join(parts))
    return found


# A word that names something: a capital after its first letter (TokenPacker, LLaVA, GPUs), a
# digit (VisDial, v1.0, 3D), or a capital where a sentence does not start (Yi, Japanese).
# A possessive is not part of the name: "Yi's context length" asks about Yi.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9²³]*(?:(?:[-.]|'(?!s\b))[A-Za-z0-9²³]+)*")
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s+|\n)\s*[\"'(\[]?$")


def name_key(token: str) -> str:
    """How a name is compared: lower-cased, punctuation and a plural "s" removed
    ("LLaVA-Mini" -> "llavamini", "GPUs" and "GPU" -> "gpu", "ViTs" -> "vit")."""
    key = re.sub(r"[^0-9a-z²³]", "", token.lower())
    return key[:-1] if len(key) > 3 and key.endswith("s") else key


def name_terms(text: str) -> list[str]:
    """Names a text insists on (models, methods, datasets, languages, numbers) as written, in
    order, one per name_key."""
    found: dict[str, str] = {}
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        at_start = bool(_SENTENCE_START.search(text[: match.start()]))
        named = (
            any(ch.isupper() for ch in token[1:])
            or any(ch.isdigit() for ch in token)
            or (token[0].isupper() and not at_start and token != "I")
        )
        key = name_key(token)
        if named and key and key not in found:
            found[key] = token
    return list(found.values())


# Cached: the same titles and abstracts are read for every question (profiled at a fifth of
# a warm ask's time before it was).
@lru_cache(maxsize=8192)
def name_keys(text: str) -> frozenset[str]:
    """Every form under which `text` mentions a name: each word whole ("llavamini") and in its
    hyphen- or dot-separated parts ("llava", "mini")."""
    keys: set[str] = set()
    for match in _TOKEN.finditer(text):
        token = match.group(0).lower()
        keys.add(name_key(token))
        keys.update(name_key(part) for part in re.split(r"[^0-9a-z²³]+", token) if part)
    return frozenset(keys)


@lru_cache(maxsize=256)
def _written_out(name: str) -> re.Pattern[str] | None:
    """The words an acronym `name` (3-6 capitals, maybe a plural "s") abbreviates, as a
    pattern; None for any other name. Built once per name: it is tried on every title."""
    letters = re.fullmatch(r"([A-Z]{3,6})s?", name)
    if not letters:
        return None
    spelled = r"[\s-]+".join(rf"{letter}[a-z]*" for letter in letters.group(1).lower())
    return re.compile(rf"\b{spelled}", re.IGNORECASE)


def spelled_out(name: str, text: str) -> bool:
    """Whether `text` writes out the acronym `name` as words with its initials: "LVLM" as
    "Large Vision-Language Model"."""
    pattern = _written_out(name)
    return pattern is not None and pattern.search(text) is not None


# Where a question insists on a detail: the words just before "rather than" ("for speech
# rather than text", "speech, not text", "speech specifically") and just after
# "mainly"/"only" ("trained only on French").
_INSIST_BEFORE = re.compile(
    r"((?:[\w-]+\s+){1,2})(?:rather than|instead of|as opposed to|but not|specifically)\b"
    r"|((?:[\w-]+\s+)?[\w-]+),\s+not\b",  # "a speech corpus, not ...": its modifier too
    re.IGNORECASE,
)
_INSIST_AFTER = re.compile(
    r"(?<![\w-])(?:mainly|only|primarily|exclusively|specifically)\s+(?:on\s+|in\s+|for\s+|with\s+)?"
    r"((?:[\w-]+\s*){1,3})",
    re.IGNORECASE,
)


# "I mean X specifically": the speaker's own verb is not what they insist on.
_SPEAKER = re.compile(r"\bI\s+(?:mean|need|want|am looking for)\b", re.IGNORECASE)


def insisted_terms(text: str) -> list[str]:
    """Content words the question insists on by contrast or restriction, in order."""
    text = _SPEAKER.sub(" ", text)
    found: list[str] = []
    for pattern in (_INSIST_BEFORE, _INSIST_AFTER):
        for match in pattern.finditer(text):
            for word in content_words(match.group(match.lastindex or 1)):
                # Short words here are function words ("only per-image", "only one").
                if len(word) > 3 and word not in found:
                    found.append(word)
    return found


# A request's framing ("Summarize ...", "Tell me about ...") says what to do with the paper,
# not which paper: as query words they match the papers that happen to use them (a survey
# "summarizes", a title says "tell").
_REQUEST = re.compile(
    r"^\W*(please\s+)?((can|could|would) you\s+)?(please\s+)?(briefly\s+)?"
    r"(summari[sz]e|explain|describe|outline|compare|contrast|tell me( more)? about|give me (an? )?"
    r"(short |brief |quick )?(overview|summary|rundown|description) of|"
    r"what (is|are|was|were) (the )?(main |key |core |primary )?(contributions?|ideas?|"
    r"novelty) of)\s+",
    re.IGNORECASE,
)


def without_request(question: str) -> str:
    """The question without its request framing ("Summarize the Yi paper." -> "the Yi
    paper."), or the question itself when nothing else is left."""
    rest = _REQUEST.sub("", question, count=1)
    return rest if rest.strip(" ?.!") else question


# A question that asks for a quantity: "how many GPUs", "what percentage", "by what factor".
ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|large|big|long|fast|far)|what (percentage|fraction|share|number|"
    r"scores?|accuracy|speed-?up|size|resolution)|by what|to what extent)\b",
    re.IGNORECASE,
)
# What "how many" counts: a word and perhaps the next ("how many videos", "how many GPUs did").
COUNTED = re.compile(r"\bhow many ([\w-]+)((?: [\w-]+)?)", re.IGNORECASE)
# A number as abstracts write them: digits, or a count in words. Broad on purpose ("one of
# the ..." counts): a note that a number is missing must never be wrong.
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|"
    r"thousands?|millions?|billions?|trillions?|half|twice|double|triple|[a-z]+fold)\b",
    re.IGNORECASE,
)


def asked_quantity(question: str) -> str | None:
    """How the question asks for a quantity ("how many papers", "what percentage"), or None."""
    counted = COUNTED.search(question)
    if counted:
        return f"how many {counted.group(1)}"
    match = ASKS_QUANTITY.search(question)
    return match.group(0).lower() if match else None


def mentions_number(text: str) -> bool:
    return _NUMBER.search(text) is not None


# Units of measure a question may ask its quantity in ("in milliseconds", "in GB"), each with
# the symbols abstracts write after a number ("35 ms", "2.5GB").
_UNITS = {
    "millisecond": "ms",
    "second": "s|sec",
    "minute": "min",
    "hour": "h|hr|hrs",
    "day": "d",
    "pixel": "px",
    "byte": "b",
    "kilobyte": "kb",
    "megabyte": "mb",
    "gigabyte": "gb",
    "terabyte": "tb",
    "watt": "w",
    "joule": "j",
    "meter": "m",
    "centimeter": "cm",
    "millimeter": "mm",
    "kilometer": "km",
}
# The symbols a question may ask in ("in ms", "in GB"); not one-letter ones, which read as
# words or initials there ("in s", "in m").
_SYMBOL_UNIT = {
    symbol: unit for unit, symbols in _UNITS.items() for symbol in symbols.split("|") if len(symbol) > 1
}
_ASKS_UNIT = re.compile(
    r"\bin\s+(" + "|".join(f"{unit}s?" for unit in _UNITS) + "|" + "|".join(_SYMBOL_UNIT) + r")\b",
    re.IGNORECASE,
)


def asked_unit(question: str) -> str | None:
    """The unit a question asks its quantity in ("in milliseconds" -> "millisecond"), or None."""
    match = _ASKS_UNIT.search(question)
    if not match:
        return None
    asked = match.group(1).lower()
    if asked in _SYMBOL_UNIT:
        return _SYMBOL_UNIT[asked]
    return asked[:-1] if asked[:-1] in _UNITS else asked  # "milliseconds"


def mentions_unit(unit: str, text: str) -> bool:
    """Whether `text` uses the unit at all (as a word, or as its symbol after a number; for
    pixels, a resolution such as "336×336"). Lenient on purpose, as `mentions_number`."""
    symbols = _UNITS[unit]
    pattern = rf"\b{unit}s?\b|\d\s*(?:{symbols})\b"
    if unit == "pixel":
        pattern += r"|\d\s*[x×]\s*\d"
    return re.search(pattern, text, re.IGNORECASE) is not None


# A place in a list the conversation gave: "the second one", "the latter".
PLACE_REFERENCE = re.compile(
    r"\bthe\s+(latter|former)\b|\b(?:the|that|this)\s+(first|second|third|fourth|fifth|last)\s+"
    r"(?:one|paper|method|model|work|approach|system|dataset|benchmark|study)\b",
    re.IGNORECASE,
)
# "Which of them uses audio?": a choice among the papers a list gave.
LIST_CHOICE = re.compile(
    r"\b(which|what|who)\s+(one\s+)?of\s+(them|these|those|the\s+(papers|methods|models|works))\b",
    re.IGNORECASE,
)
# A several-paper answer gives one line per paper: "- Name: sentence [n]".
_LIST_LINE = re.compile(r"^- (.+?): ", re.MULTILINE)


def listed_names(answer: str) -> list[str]:
    """The paper names of a several-paper answer's lines, in order (none for other answers)."""
    return _LIST_LINE.findall(answer)


def latest_list(texts: Sequence[str]) -> int | None:
    """Where in `texts` (a conversation's turns) the latest several-paper answer is, if any:
    what "the second one" and "which of them" point into."""
    found = [i for i, text in enumerate(texts) if len(listed_names(text)) > 1]
    return found[-1] if found else None


def points_into_a_list(question: str) -> bool:
    """A place in, or a choice among, the papers a list gave: "the second one", "the latter",
    "which of them ..."."""
    return bool(PLACE_REFERENCE.search(question) or LIST_CHOICE.search(question))


def without_list_names(answer: str) -> str:
    """The answer with each line's "- Name: " taken off: the sentences it quoted."""
    return _LIST_LINE.sub("", answer)
