"""The ACLSum benchmark (PyPI `aclsum`) as a paperchat corpus plus an evaluation set.

ACLSum ships 250 ACL papers, each with its abstract and three human-written summaries
(challenge, approach, outcome). Every summary becomes a question whose gold paper is the one
it summarises: 750 questions nobody on this project wrote. Summaries reuse the abstract's
words, so the set favours lexical retrieval; it guards against overfitting to the dev sets,
it is not the only target.

    python -m evals.aclsum OUT_DIR    # writes OUT_DIR/aclsum-corpus.jsonl and aclsum.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from rag.errors import InputError

ASPECTS = ("challenge", "approach", "outcome")
CORPUS_FILE = "aclsum-corpus.jsonl"
SET_FILE = "aclsum.jsonl"


def detokenize(sentences: list[str]) -> str:
    """ACLSum's sentences are space-tokenised ("MT ( SMT ) ."): undo the spaces it added."""
    text = " ".join(sentences)
    text = re.sub(r"\s+([.,;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"\s+(n't|'s|'re|'ve|'ll|'d)\b", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def _documents() -> list[Any]:
    try:
        from aclsum import ACLSum
    except ImportError as exc:
        raise InputError(
            "The ACLSum set needs the `aclsum` package: `.venv/bin/pip install aclsum` "
            "(it ships its data; nothing is downloaded at run time)."
        ) from exc
    docs = [doc for split in ("train", "val", "test") for doc in ACLSum(split)]
    return sorted(docs, key=lambda doc: doc.id)


def convert(out_dir: Path) -> tuple[Path, Path]:
    """Write the corpus (title, abstract, url) and the question set; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    papers, questions = [], []
    for doc in _documents():
        abstract = detokenize(doc.sentences["abstract"])
        if not abstract:
            continue
        papers.append(
            {
                "title": doc.title,
                "abstract": abstract,
                "url": f"https://aclanthology.org/{doc.id}/",
            }
        )
        for aspect in ASPECTS:
            summary = (doc.summaries.get(aspect) or "").strip()
            if summary:
                questions.append(
                    {
                        "id": f"{doc.id}:{aspect}",
                        "type": "summary",
                        "question": summary,
                        "gold_titles": [doc.title],
                        "key_points": [summary],
                    }
                )
    corpus, eval_set = out_dir / CORPUS_FILE, out_dir / SET_FILE
    corpus.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")
    eval_set.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return corpus, eval_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.aclsum",
        description="Write the ACLSum corpus and its summary-as-query evaluation set.",
    )
    parser.add_argument("out_dir", type=Path, help="folder for the two JSON Lines files")
    args = parser.parse_args(argv)
    try:
        corpus, eval_set = convert(args.out_dir)
    except InputError as exc:
        print(f"evals.aclsum: {exc}", file=sys.stderr)
        return 2
    print(f"{corpus}\n{eval_set}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
