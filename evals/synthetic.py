"""Synthetic papers made from the bundled ones: for scale runs and for distractor evaluation.

Two generators, for two questions:

- `synthetic_papers` (the benchmark's): the bundled papers, then *look-alikes* of them, each
  keeping a bundled paper's title (plus "variant N") and about half of its sentences. Good
  for measuring speed and memory at scale; for retrieval quality it is a different test,
  since some 27 copies per bundled paper answer its questions as well as the original does.
- `distractor_papers`: papers that copy no bundled paper. Each abstract takes every sentence
  from a different random bundled paper and each title mixes words of several titles, so a
  distractor may share a sentence or a name with a gold paper (as real neighbours do) but
  never its whole content. Built from another corpus's papers instead (`paperchat eval
  --distractors-from FILE`), they add text of another field, none of it a gold paper's:
  what a larger, mixed corpus does to the corpus-wide statistics (BM25's idf and
  confidence).

`write_corpus` writes the benchmark's corpus of N papers as JSON Lines, as `paperchat ingest`
reads it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rag.corpus import load_corpus
from rag.settings import Settings
from rag.text import split_sentences

SEED = 20240611


def sentence_pool(paths: list[Path] | None = None) -> list[tuple[str, list[str]]]:
    """(title, abstract sentences) of each paper in `paths` (any corpus file `paperchat
    ingest` reads), or of the bundled papers."""
    base, _ = load_corpus(paths, Settings.model_construct().corpus.search_url_template)
    return [(p.title, split_sentences(p.abstract) or [p.abstract]) for p in base]


def synthetic_papers(n: int, seed: int = SEED) -> list[dict[str, str]]:
    """N papers: the bundled ones as they are, then recombinations of their sentences.

    A synthetic abstract keeps the shape (sentence count) of a bundled one and swaps each
    sentence, with probability 1/2, for a sentence of another paper; its title is the
    bundled title plus a variant number, so titles (and ids) are unique.
    """
    base, _ = load_corpus(None, Settings.model_construct().corpus.search_url_template)
    pool = [(p.title, split_sentences(p.abstract)) for p in base]
    every = [s for _, sentences in pool for s in sentences]
    rng = random.Random(seed)
    out = [{"title": p.title, "abstract": p.abstract, "url": p.url} for p in base[:n]]
    for i in range(len(out), n):
        title, sentences = pool[i % len(pool)]
        mixed = [s if rng.random() < 0.5 else rng.choice(every) for s in sentences]
        out.append({"title": f"{title} (variant {i})", "abstract": " ".join(mixed)})
    return out


def write_corpus(path: Path, n: int) -> Path:
    """`synthetic_papers(n)` as a JSON Lines file at `path` (folders made); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in synthetic_papers(n):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def distractor_papers(
    n: int, seed: int = SEED + 1, pool: list[tuple[str, list[str]]] | None = None
) -> list[dict[str, str]]:
    """N papers copying no paper of `pool` (`sentence_pool()`, the bundled papers by default;
    see the module docstring); titles are unique."""
    pool = pool or sentence_pool()
    if len(pool) < 3:
        raise ValueError("distractors mix at least three papers; the pool has fewer")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = len(rng.choice(pool)[1])
        donors = rng.sample(range(len(pool)), min(length, len(pool)))
        abstract = " ".join(rng.choice(pool[d][1]) for d in donors)
        words = [w for d in rng.sample(range(len(pool)), 3) for w in pool[d][0].split()]
        title = " ".join(rng.sample(words, min(len(words), rng.randint(5, 10))))
        out.append({"title": f"{title} (distractor {i})", "abstract": abstract})
    return out
