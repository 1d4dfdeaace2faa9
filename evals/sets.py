"""Evaluation sets: JSON Lines of questions, validated line by line.

One question per line:
`{"id", "type", "question", "gold_titles": [...], "key_points": [...], "history": [...]}`.
`history` only on follow-ups; `gold_titles` and `key_points` empty for unanswerable questions.
A bad line stops the load with a message naming the file and line, so a typo never turns
into a silently wrong score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import EvalSetError, InputError
from rag.inputs import parse_history
from rag.papers import normalize_title
from rag.textfiles import read_json_lines
from rag.types import Turn

# The sets of evals/sets/ every calibrated constant is fitted on (scripts/fit_*.py, leave one
# set out). The unseen sets were each written blind (by someone who never ran paperchat) and
# first reported held out; unseen5 and later stay held out: never fitted on, the check on all
# of it (docs/evaluation.md).
FITTING_SETS = ("dev", "dev_hard", "fresh", "holdout", "unseen", "unseen2", "unseen3", "unseen4")

# "summary": a human-written summary used as the query (the external ACLSum set).
QUESTION_TYPES = ("paraphrase", "keyword", "multi", "unanswerable", "followup", "summary")


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    type: str
    question: str
    gold_titles: tuple[str, ...] = ()
    key_points: tuple[str, ...] = ()
    history: tuple[Turn, ...] = ()
    line: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.gold_titles)


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: Path
    questions: tuple[EvalQuestion, ...]

    @property
    def types(self) -> list[str]:
        """Question types present, in the canonical order."""
        present = {q.type for q in self.questions}
        return [t for t in QUESTION_TYPES if t in present]

    def subset(self, ids: Iterable[str]) -> EvalSet:
        wanted = set(ids)
        return EvalSet(self.name, self.path, tuple(q for q in self.questions if q.id in wanted))


def _string_list(record: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = record.get(key, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EvalSetError(f'{where}: "{key}" must be a list of non-empty strings.')
    return tuple(v.strip() for v in value)


def parse_question(record: Any, where: str, line: int) -> EvalQuestion:
    """One decoded line -> EvalQuestion; `where` ("FILE, line N") prefixes every message."""
    if not isinstance(record, dict):
        raise EvalSetError(f'{where}: expected a JSON object with "question" and "type".')
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalSetError(f'{where}: missing or empty "question" (a string).')
    kind = record.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise EvalSetError(f'{where}: missing "type" (one of {", ".join(QUESTION_TYPES)}).')
    if kind not in QUESTION_TYPES:
        raise EvalSetError(
            f'{where}: unknown type "{kind}"; use one of {", ".join(QUESTION_TYPES)}.'
        )
    gold = _string_list(record, "gold_titles", where)
    if kind == "unanswerable" and gold:
        raise EvalSetError(
            f'{where}: an "unanswerable" question must have empty "gold_titles" '
            "(answerable means gold titles are given)."
        )
    try:
        history = parse_history(record.get("history") or [])
    except InputError as exc:
        raise EvalSetError(f"{where}: {exc}") from exc
    qid = record.get("id", f"line{line}")
    if not isinstance(qid, str | int) or not str(qid).strip():
        raise EvalSetError(f'{where}: "id" must be a non-empty string.')
    return EvalQuestion(
        id=str(qid).strip(),
        type=kind,
        question=question.strip(),
        gold_titles=gold,
        key_points=_string_list(record, "key_points", where),
        history=tuple(history),
        line=line,
    )


def load_set(path: Path) -> EvalSet:
    """Read and validate a set file; raises EvalSetError naming the offending line."""
    path = Path(path)
    if not path.is_file():
        raise EvalSetError(
            f"No evaluation set at {path}. Give a JSON Lines file, e.g. evals/sets/dev.jsonl."
        )
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for line in read_json_lines(path, EvalSetError):
        record = line.decode(
            EvalSetError, "An evaluation set is JSON Lines: one JSON object per line."
        )
        question = parse_question(record, line.where, line.number)
        if question.id in seen:
            raise EvalSetError(
                f'{line.where}: duplicate id "{question.id}" '
                f"(first used on line {seen[question.id]})."
            )
        seen[question.id] = line.number
        questions.append(question)
    if not questions:
        raise EvalSetError(f"{path} has no questions (expected one JSON object per line).")
    return EvalSet(name=path.stem, path=path, questions=tuple(questions))


def unknown_gold_titles(eval_set: EvalSet, index_titles: Iterable[str]) -> list[tuple[int, str]]:
    """(line, title) for every gold title that matches no indexed paper."""
    known = {normalize_title(t) for t in index_titles}
    return [
        (q.line, title)
        for q in eval_set.questions
        for title in q.gold_titles
        if normalize_title(title) not in known
    ]


def check_gold_titles(eval_set: EvalSet, index_titles: Iterable[str]) -> None:
    """Fail, listing each line, when a gold title is not in the index.

    A title the index lacks could never be retrieved, so scoring it would count a data error
    as a retrieval miss; the run stops instead and names every such title.
    """
    unknown = unknown_gold_titles(eval_set, index_titles)
    if not unknown:
        return
    lines = "\n".join(f"  {eval_set.path}, line {line}: {title!r}" for line, title in unknown)
    raise EvalSetError(
        f"{len(unknown)} gold title(s) are not in the index:\n{lines}\nFix the titles in the set, "
        "or ingest those papers (`paperchat ingest PATH`) into the index you evaluate."
    )
