"""Text helpers shared by chunking, lexical scoring, extractive answers and metrics."""

from __future__ import annotations

import re
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
    """"the byte 0xff" for a byte Python escaped, "U+D800" for a JSON-made surrogate."""
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


def content_words(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens of 3+ characters, or any number, minus stop words."""
    return [w for w in words(text) if (len(w) >= 3 or w.isdigit()) and w not in STOP_WORDS]


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def stems(text: str) -> list[str]:
    """Content words reduced to their stems, for lexical matching."""
    return list(_stemmer().stemWords(content_words(text)))
