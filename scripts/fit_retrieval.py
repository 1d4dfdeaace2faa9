"""Fit the fusion and abstention constants across sets, and report held-out folds.

    .venv/bin/python scripts/fit_retrieval.py --bundled-db DIR --aclsum-db DIR --aclsum-set FILE

Nine sets: evals.sets.FITTING_SETS over the bundled corpus (dev, dev_hard, fresh, holdout and
unseen to unseen4; all but the two dev sets were written blind, without running paperchat on
them) and ACLSum (over its own 250 papers; `python -m evals.aclsum` writes both files). Each
set also gives negatives for abstention: its questions asked of the other corpus, where no
paper answers them. The later blind sets (unseen5, ...) are never fitted on.

Procedure, so no constant is fitted to the dev sets alone:
1. Every question's retrieval signals are computed once with the real index and model.
2. Fusion constants (lexical weight and gate, paper weight, and the weight and depth of the
   late-interaction rerank; the gate reads BM25's confidence times its top paper's coverage
   of the question to retrieval.lexical_coverage_power, chosen on a 10,000-paper corpus
   that mixes fields, docs/evaluation.md) are chosen on a grid by the
   mean over the training sets (each weighing the same) of (recall@5 + MRR) / 2, less the
   shortfall against the set's best component: how far the hybrid falls below BM25 alone or
   dense alone on recall@5 or MRR, whichever is furthest behind (0 when it is ahead on
   both). The requirement is to never lose to its own parts; the mean alone chose settings
   that lost MRR to BM25 on a held-out set while winning on average (docs/evaluation.md).
3. Abstention weights are a logistic regression on the top paper's signals (the dense
   margin read up to retrieval.dense_margin_cap, which scripts/small_corpora.py measures),
   each (set, answerable?) group weighing the same; then the bias is raised until the training
   sets' mean false-abstention rate is within FALSE_ABSTENTION_BUDGET (refusing a question
   the papers answer costs a user more than a flagged weak answer).
   Several-paper answers: the share of the way from the k-th paper's fused score to the top
   one's that a further paper must reach, by the mean citation F2 (recall counted twice) of
   the sets' "which papers ..." questions (SEVERAL_GRID).
4. Leave one set out: fit on the other eight, report the held-out set. The shipped constants
   are then fitted on all nine. The report goes to --out (JSON) and stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.sets import FITTING_SETS, load_set  # noqa: E402
from rag.answer import Support, asks_for_several, choose_papers, support  # noqa: E402
from rag.papers import normalize_title  # noqa: E402
from rag.pipeline import Assistant  # noqa: E402
from rag.retrieve import (  # noqa: E402
    Signals,
    asked_names,
    contextualize,
    dense_margin,
    ranked,
    scored,
)
from rag.settings import RetrievalSettings, Settings  # noqa: E402
from rag.types import Hit  # noqa: E402

GRID = {
    "lexical_weight": (1.0, 2.0, 3.0, 4.0),
    # The gate reads BM25's confidence times its top paper's coverage of the question
    # (rag.retrieve.lexical_weight), lower than the confidence alone. A wider grid (gate down
    # to 1, lexical weight up to 6) gave the same folds and answered more unanswerable
    # questions (docs/evaluation.md).
    "lexical_gate": (2.0, 2.5, 3.0, 3.5, 4.0),
    "lexical_gate_width": (0.5, 1.0),
    "paper_weight": (0.5, 1.0),
    "late_weight": (0.0, 1.0, 2.0, 4.0),
    "rerank_depth": (5, 10, 20),
}
SETS = (*FITTING_SETS, "aclsum")
FALSE_ABSTENTION_BUDGET = 0.05
SEVERAL_GRID = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


@dataclass
class Case:
    set: str  # where the question comes from (the fold it belongs to)
    question: str
    query: str
    names: list[str]
    gold: set[str]  # paper ids; empty: no paper of this index answers it
    signals: Signals
    corpus: str  # which index answers it: "bundled" or "aclsum"


ASSISTANTS: dict[str, Assistant] = {}


def collect(corpus: str, path: Path, fold: str, answerable: bool) -> list[Case]:
    assistant = ASSISTANTS[corpus]
    titles = {normalize_title(p.title): p.id for p in assistant.index.all_papers()}
    cases = []
    for q in load_set(path).questions:
        query = contextualize(q.question, q.history)
        names = asked_names(q.question, q.history)
        gold = {titles[t] for t in map(normalize_title, q.gold_titles) if t in titles}
        if answerable and q.gold_titles and not gold:
            continue
        signals = assistant.retriever.signals(query, names)
        # Late interaction for the whole pool: every depth of the grid reranks a part of it.
        pool = signals.chunk.keys() | signals.paper.keys() | signals.lexical.keys()
        question_tokens = assistant.index.embeddings.query_vectors(query).tokens
        papers = list(assistant.index.papers(sorted(pool)).values())
        signals.late = assistant.index.late_scores(question_tokens, papers)
        gold = gold if answerable else set()
        cases.append(Case(fold, q.question, query, names, gold, signals, corpus))
    return cases


def ranking(case: Case, settings: RetrievalSettings, mode: str = "hybrid") -> list[str]:
    return ranked(case.signals, settings, mode)


def retrieval_metrics(cases: list[Case], settings: RetrievalSettings, mode: str = "hybrid") -> tuple[float, float]:
    r5 = mrr = 0.0
    scored = [c for c in cases if c.gold]
    for case in scored:
        ranked = ranking(case, settings, mode)
        r5 += len(case.gold & set(ranked[:5])) / len(case.gold)
        first = next((i for i, pid in enumerate(ranked[:10]) if pid in case.gold), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
    return r5 / len(scored), mrr / len(scored)


def shortfall(cases: list[Case], settings: RetrievalSettings, hybrid: tuple[float, float]) -> float:
    """How far the hybrid's (recall@5, MRR) falls below the better of BM25 alone and dense
    alone on either metric, whichever is furthest behind; 0 when it is ahead on both."""
    components = [retrieval_metrics(cases, settings, mode) for mode in ("lexical", "dense")]
    margins = [hybrid[i] - max(c[i] for c in components) for i in (0, 1)]
    return max(0.0, -min(margins))


# A set's merit at a grid point depends on nothing else, and every fold sees the same cases of
# a set: computed once per (those cases, grid point), then shared by the folds. Cases are
# told apart by id(); the script keeps every case alive for the whole run.
_MERITS: dict[tuple[tuple[int, ...], tuple[object, ...]], float] = {}


def fit_fusion(cases: list[Case], base: RetrievalSettings) -> RetrievalSettings:
    by_set = {s: [c for c in cases if c.set == s and c.gold] for s in {c.set for c in cases}}
    keys = {s: tuple(id(c) for c in scored) for s, scored in by_set.items()}
    best, best_score = base, -1.0

    def merit(name: str, values: tuple[object, ...], candidate: RetrievalSettings) -> float:
        key = (keys[name], values)
        if key not in _MERITS:
            scored = by_set[name]
            hybrid = retrieval_metrics(scored, candidate)
            _MERITS[key] = sum(hybrid) / 2 - shortfall(scored, candidate, hybrid)
        return _MERITS[key]

    for values in itertools.product(*GRID.values()):
        candidate = base.model_copy(update=dict(zip(GRID, values, strict=True)))
        score = np.mean([merit(s, values, candidate) for s in sorted(by_set) if by_set[s]])
        if score > best_score + 1e-9:
            best, best_score = candidate, float(score)
    return best


def paper_support(case: Case, pid: str, settings: RetrievalSettings) -> Support:
    index = ASSISTANTS[case.corpus].index
    paper = index.papers([pid])[pid]
    hit = Hit(
        paper=paper,
        score=0.0,
        dense=case.signals.chunk.get(pid, 0.0),
        unknown_pull=case.signals.unknown_pull.get(pid, 0.0),
    )
    margin = dense_margin(case.signals.chunk, settings.dense_margin_cap)
    return support(case.query, hit, index.lexical, case.names, margin)


def features(case: Case, settings: RetrievalSettings) -> np.ndarray:
    return np.array(paper_support(case, ranking(case, settings)[0], settings).features())


def several_f2(cases: list[Case], settings: RetrievalSettings) -> float | None:
    """Mean citation F2 of the several-paper answers (rag.answer.choose_papers) over the
    answerable questions that ask for several papers. F2 counts recall twice: a paper that
    fits but is left out costs a reader more than an extra one they can check."""
    f2s = []
    for case in cases:
        if not case.gold or not asks_for_several(case.question):
            continue
        fused = scored(case.signals, settings)
        top = ranking(case, settings)[: settings.k]
        index = ASSISTANTS[case.corpus].index
        papers = index.papers(top)
        candidates = [
            Hit(paper=papers[pid], score=fused[pid], dense=case.signals.chunk.get(pid, 0.0))
            for pid in top
        ]
        margin = dense_margin(case.signals.chunk, settings.dense_margin_cap)
        chosen = [
            hit.paper.id
            for hit in choose_papers(
                case.question, case.query, candidates, index.lexical, settings, case.names,
                settings.k, margin,
            )
        ]
        hits = len(case.gold & set(chosen))
        precision, recall = hits / len(chosen), hits / len(case.gold)
        f2s.append(5 * precision * recall / (4 * precision + recall) if hits else 0.0)
    return float(np.mean(f2s)) if f2s else None


def fit_several(cases: list[Case], settings: RetrievalSettings) -> float:
    """The share by the mean over sets of several_f2; ties go to the smaller share."""
    best, best_score = 0.0, -1.0
    for share in SEVERAL_GRID:
        candidate = settings.model_copy(update={"several_min_share": share})
        scores = [several_f2([c for c in cases if c.set == s], candidate) for s in SETS]
        score = float(np.mean([v for v in scores if v is not None] or [0.0]))
        if score > best_score + 1e-9:
            best, best_score = share, score
    return best


def fit_abstention(cases: list[Case], settings: RetrievalSettings) -> tuple[float, ...]:
    x = np.array([features(c, settings) for c in cases])
    y = np.array([1.0 if c.gold else 0.0 for c in cases])
    groups = [(c.set, bool(c.gold)) for c in cases]
    sizes = {g: groups.count(g) for g in set(groups)}
    w = np.array([1.0 / sizes[g] for g in groups])
    beta = np.zeros(x.shape[1])
    for _ in range(50):  # Newton's method, a little L2 so separable folds stay finite
        p = 1.0 / (1.0 + np.exp(-x @ beta))
        grad = x.T @ (w * (p - y)) + 1e-3 * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(len(beta))
        beta -= np.linalg.solve(hess, grad)
    answerable = {s: x[[c.set == s and bool(c.gold) for c in cases]] for s in SETS}
    for _ in range(400):
        rates = [float(np.mean(v @ beta < 0)) for v in answerable.values() if len(v)]
        if np.mean(rates) <= FALSE_ABSTENTION_BUDGET:
            break
        beta[0] += 0.05
    return tuple(round(float(b), 2) for b in beta)


def abstention_metrics(cases: list[Case], settings: RetrievalSettings) -> dict[str, float | int | None]:
    answers = [support_p(c, settings) >= 0.5 for c in cases]
    pos = [a for a, c in zip(answers, cases, strict=True) if c.gold]
    neg = [a for a, c in zip(answers, cases, strict=True) if not c.gold]
    # The set's own unanswerable questions, asked of the corpus its answerable ones are.
    own = {c.corpus for c in cases if c.gold}
    near = [a for a, c in zip(answers, cases, strict=True) if not c.gold and c.corpus in own]
    return {
        "abstention_accuracy": round(1 - float(np.mean(neg)), 3) if neg else float("nan"),
        "near_misses_refused": round(1 - float(np.mean(near)), 3) if near else None,
        "near_misses": len(near),
        "false_abstention_rate": round(1 - float(np.mean(pos)), 3) if pos else float("nan"),
        "unanswerable": len(neg),
        "answerable": len(pos),
    }


def support_p(case: Case, settings: RetrievalSettings) -> float:
    return paper_support(case, ranking(case, settings)[0], settings).probability(settings)


def report_set(cases: list[Case], settings: RetrievalSettings) -> dict[str, object]:
    r5, mrr = retrieval_metrics(cases, settings)
    bm_r5, bm_mrr = retrieval_metrics(cases, settings, "lexical")
    de_r5, de_mrr = retrieval_metrics(cases, settings, "dense")
    return {
        "hybrid": [round(r5, 3), round(mrr, 3)],
        "bm25": [round(bm_r5, 3), round(bm_mrr, 3)],
        "dense": [round(de_r5, 3), round(de_mrr, 3)],
        **abstention_metrics(cases, settings),
        "several_f2": None if (f2 := several_f2(cases, settings)) is None else round(f2, 3),
    }


def fit(cases: list[Case], base: RetrievalSettings) -> RetrievalSettings:
    fused = fit_fusion(cases, base)
    fused = fused.model_copy(update={"support_weights": fit_abstention(cases, fused)})
    return fused.model_copy(update={"several_min_share": fit_several(cases, fused)})


def constants(settings: RetrievalSettings) -> dict[str, object]:
    keys = [*GRID, "name_weight", "support_weights", "several_min_share"]
    return {k: getattr(settings, k) for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundled-db", type=Path, required=True)
    parser.add_argument("--aclsum-db", type=Path, required=True)
    parser.add_argument("--aclsum-set", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/fit-retrieval.json"))
    parser.add_argument(
        "--cache", type=Path, help="keep the computed signals in this file and reuse them"
    )
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    ASSISTANTS["bundled"] = Assistant.open(Settings(db_dir=args.bundled_db))
    ASSISTANTS["aclsum"] = Assistant.open(Settings(db_dir=args.aclsum_db))
    sets = {name: (root / f"evals/sets/{name}.jsonl", "bundled", "aclsum") for name in FITTING_SETS}
    sets["aclsum"] = (args.aclsum_set, "aclsum", "bundled")
    cases: list[Case] = []
    if args.cache and args.cache.exists():
        cases = pickle.loads(args.cache.read_bytes())
    else:
        for name, (path, own, other) in sets.items():
            cases += collect(own, path, name, answerable=True)
            # The same questions asked of the other corpus: nothing there answers them.
            cases += collect(other, path, name, answerable=False)
            print(f"{name}: signals computed", file=sys.stderr)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(cases))
    base = RetrievalSettings()
    folds = {}
    for held in SETS:
        fitted = fit([c for c in cases if c.set != held], base)
        folds[held] = {
            "fitted_on": [s for s in SETS if s != held],
            "constants": constants(fitted),
            "held_out": report_set([c for c in cases if c.set == held], fitted),
        }
    final = fit(cases, base)
    report = {
        "folds": folds,
        "final": {
            "fitted_on": list(SETS),
            "constants": constants(final),
            "in_sample": {s: report_set([c for c in cases if c.set == s], final) for s in SETS},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
