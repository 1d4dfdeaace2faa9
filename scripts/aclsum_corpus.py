"""The 250 ACL papers of the `aclsum` package (PyPI) as a paperchat corpus in JSON Lines.

Corpus only (the evaluation set built from ACLSum's summaries lives in evals/). Each line has
the title, the abstract, the authors (from the package's S2ORC parses), the year and venue
(read from the ACL Anthology id) and the paper's Anthology page as its link.

    .venv/bin/pip install aclsum
    .venv/bin/python scripts/aclsum_corpus.py > aclsum.jsonl
    .venv/bin/paperchat ingest aclsum.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from evals.aclsum import detokenize

# The letter of an old-style Anthology id (P06-1112) names the venue.
OLD_VENUES = {
    "P": "ACL", "N": "NAACL", "D": "EMNLP", "E": "EACL", "C": "COLING", "Q": "TACL",
    "J": "Computational Linguistics", "K": "CoNLL", "S": "SemEval / *SEM", "W": "ACL workshop",
    "I": "IJCNLP", "L": "LREC",
}
JOURNALS = {"TACL", "CL", "Computational Linguistics"}


def year_and_venue(anthology_id: str) -> tuple[str, str]:
    """`2020.acl-main.282` -> (2020, Proceedings of ACL 2020); `Q17-1001` -> (2017, TACL)."""
    year, venue = "", ""
    new = re.match(r"(\d{4})\.([a-z]+)", anthology_id)
    old = re.match(r"([A-Z])(\d{2})-", anthology_id)
    if new:
        year, venue = new.group(1), new.group(2).upper()
    elif old:
        two = int(old.group(2))
        year, venue = str(2000 + two if two < 50 else 1900 + two), OLD_VENUES.get(old.group(1), "")
    if venue and venue not in JOURNALS:
        venue = f"Proceedings of {venue} {year}"  # conference papers: @inproceedings in BibTeX
    return year, venue


def authors_of(parse: dict[str, Any]) -> list[str]:
    names = []
    for person in parse.get("authors") or []:
        given = " ".join([person.get("first") or "", *(person.get("middle") or [])]).strip()
        family = (person.get("last") or "").strip()
        if family:
            names.append(f"{family}, {given}" if given else family)
    return names


def records() -> list[dict[str, Any]]:
    try:
        import aclsum
        from aclsum import ACLSum
    except ImportError:
        sys.exit("scripts/aclsum_corpus.py needs the aclsum package: .venv/bin/pip install aclsum")
    parses = Path(aclsum.__file__).parent / "dataset" / "paper_jsons"
    out = []
    docs = sorted((d for split in ("train", "val", "test") for d in ACLSum(split)), key=lambda d: d.id)
    for doc in docs:
        abstract = detokenize(doc.sentences["abstract"])
        if not abstract:
            continue
        parse_file = parses / f"{doc.id}.json"
        parse = json.loads(parse_file.read_text(encoding="utf-8")) if parse_file.exists() else {}
        year, venue = year_and_venue(doc.id)
        out.append(
            {
                "title": doc.title,
                "abstract": abstract,
                "url": f"https://aclanthology.org/{doc.id}/",
                "authors": authors_of(parse),
                "year": year,
                "venue": venue,
            }
        )
    return out


def main() -> int:
    for record in records():
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
