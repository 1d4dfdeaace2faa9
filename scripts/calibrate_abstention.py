"""Print the abstention signals for every dev question, to calibrate the thresholds.

Usage: PAPERCHAT_DB_DIR=DIR .venv/bin/python scripts/calibrate_abstention.py [SET ...]
"""

import json
import sys
from pathlib import Path

from rag.answer import support
from rag.inputs import parse_history
from rag.pipeline import Assistant
from rag.settings import Settings

assistant = Assistant.open(Settings())
thresholds = assistant.settings.retrieval
rows = []
for path in sys.argv[1:] or ["evals/sets/dev.jsonl", "evals/sets/dev_hard.jsonl"]:
    for line in Path(path).read_text().splitlines():
        q = json.loads(line)
        retrieval = assistant.retrieve(q["question"], parse_history(q.get("history", [])))
        signal = support(retrieval.query, retrieval.hits[0], assistant.index.lexical)
        rows.append((signal, bool(q["gold_titles"]), q["id"]))
for signal, answerable, qid in sorted(rows, key=lambda r: r[0].dense):
    decision = "answer " if signal.answerable(thresholds) else "abstain"
    kind = "answerable  " if answerable else "unanswerable"
    print(f"{decision} {kind} {qid:5s} dense={signal.dense:.3f} coverage={signal.term_coverage:.2f}")
