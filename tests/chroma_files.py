"""Reading a local index's files the way a test watching an ingest from outside must: without
opening Chroma (which would replay its log and rewrite the graphs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def stored_papers(db: Path) -> int:
    """Paper records committed so far, read from Chroma's SQLite file; -1 while there is no
    readable schema yet (or the writer holds the lock)."""
    path = db / "chroma.sqlite3"
    if not path.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as conn:
            row = conn.execute(
                "SELECT count(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
                "JOIN collections c ON s.collection = c.id WHERE c.name LIKE '%_papers'"
            ).fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0])
