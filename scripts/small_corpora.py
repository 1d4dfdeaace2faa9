"""Abstention on small collections: how often paperchat refuses a question its papers answer.

    .venv/bin/python scripts/small_corpora.py --aclsum-corpus build/aclsum/aclsum-corpus.jsonl \
        [--work DIR]

The support model is fitted on two corpora of 182 and 250 papers, each on one field. A user's
own collection may be ten papers, or papers of several fields. This builds such collections
from the bundled papers and ACLSum's (5, 10, 20 and 60 papers, half of each; 10 of one field;
30 bundled), asks every single-paper question of the sets (dev, dev_hard, fresh, holdout,
every third ACLSum summary) whose paper is in the collection, and a quarter of the others,
whose paper is not; with the current settings (environment variables apply, e.g.
PAPERCHAT_RETRIEVAL_DENSE_MARGIN_CAP=2 for no cap: a lead of cosines never exceeds 2). It reports per collection the answerable
questions refused (false refusals) and the others refused. Indexes are kept under --work
and reused.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.sets import load_set  # noqa: E402
from rag.corpus import load_corpus  # noqa: E402
from rag.papers import normalize_title  # noqa: E402
from rag.pipeline import Assistant  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.types import Paper  # noqa: E402

COLLECTIONS = (
    (5, "mixed"),
    (10, "mixed"),
    (20, "mixed"),
    (60, "mixed"),
    (10, "bundled"),
    (10, "aclsum"),
    (30, "bundled"),
)
BUNDLED_SETS = ("dev", "dev_hard", "fresh", "holdout")


def collection(kind: str, size: int, bundled: list[Paper], aclsum: list[Paper]) -> list[Paper]:
    """`size` papers, drawn the same way on every run: half bundled and half ACLSum
    ("mixed"), or all of one corpus."""
    rng = random.Random(size)
    if kind == "mixed":
        return rng.sample(bundled, size // 2) + rng.sample(aclsum, size - size // 2)
    return rng.sample(bundled if kind == "bundled" else aclsum, size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aclsum-corpus", type=Path, required=True)
    parser.add_argument("--aclsum-set", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("build/small-corpora"))
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    aclsum_set = args.aclsum_set or args.aclsum_corpus.with_name("aclsum.jsonl")
    for path in (args.aclsum_corpus, aclsum_set):
        if not path.is_file():
            print(
                f"small_corpora: no {path}; `make eval` (or `python -m evals.aclsum "
                f"{path.parent}`) writes ACLSum's corpus and set there",
                file=sys.stderr,
            )
            return 2
    template = Settings().corpus.search_url_template
    bundled, _ = load_corpus(None, template)
    aclsum, _ = load_corpus([args.aclsum_corpus], template)
    questions = [
        q
        for name in BUNDLED_SETS
        for q in load_set(root / f"evals/sets/{name}.jsonl").questions
        if len(q.gold_titles) == 1 and not q.history
    ]
    questions += load_set(aclsum_set).questions[::3]
    asked = {normalize_title(q.gold_titles[0]) for q in questions}
    bundled = [p for p in bundled if normalize_title(p.title) in asked]
    totals = [0, 0, 0, 0]
    for size, kind in COLLECTIONS:
        papers = collection(kind, size, bundled, aclsum)
        folder = args.work / f"{kind}-{size}"
        settings = Settings(data_dir=folder / "data", db_dir=folder / "db")
        if not (folder / "db").exists():
            folder.mkdir(parents=True, exist_ok=True)
            corpus = folder / "corpus.jsonl"
            corpus.write_text(
                "\n".join(json.dumps({"title": p.title, "abstract": p.abstract}) for p in papers),
                encoding="utf-8",
            )
            Assistant.create(settings).ingest([corpus])
        assistant = Assistant.open(settings)
        held = {normalize_title(p.title) for p in papers}
        answerable = [q for q in questions if normalize_title(q.gold_titles[0]) in held]
        others = [q for q in questions if normalize_title(q.gold_titles[0]) not in held][::4]
        refused = [
            sum(assistant.ask(q.question, mode="extractive").abstained for q in group)
            for group in (answerable, others)
        ]
        totals = [
            totals[0] + refused[0],
            totals[1] + len(answerable),
            totals[2] + refused[1],
            totals[3] + len(others),
        ]
        print(
            f"{kind} {size} papers: answerable refused {refused[0]} of {len(answerable)}, "
            f"others refused {refused[1]} of {len(others)}",
            flush=True,
        )
    print(
        f"all: answerable refused {totals[0]} of {totals[1]} ({totals[0] / totals[1]:.3f}), "
        f"others refused {totals[2]} of {totals[3]} ({totals[2] / totals[3]:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
