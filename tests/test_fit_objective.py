"""scripts/fit_retrieval.py's fusion objective: the mean less the shortfall against the best
component, on hand-made signals (no index, no model)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from rag.retrieve import Signals
from rag.settings import RetrievalSettings

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_retrieval.py"


def _fit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fit_retrieval", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fit_retrieval"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _case(fit: ModuleType, gold: str, dense: dict[str, float], bm25: dict[str, float]) -> object:
    signals = Signals(
        chunk=dense,
        paper=dense,
        lexical=bm25,
        lexical_raw=bm25,
        lexical_confidence=max(bm25.values()),
        named={},
    )
    return fit.Case("s", "q", "q", [], {gold}, signals, "bundled")


def test_shortfall_is_how_far_the_hybrid_trails_its_best_component() -> None:
    fit = _fit_module()
    # Fixed fusion constants: the objective is under test, not the fitted values.
    settings = RetrievalSettings(lexical_weight=4.0, lexical_gate=2.0, lexical_gate_width=0.5)
    # BM25 ranks the gold paper first; dense ranks it third; BM25 is weak (confidence below
    # the gate), so the hybrid follows dense.
    case = _case(
        fit,
        "g",
        dense={"a": 0.9, "b": 0.8, "g": 0.7, "c": 0.1, "d": 0.0},
        bm25={"g": 2.0, "a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0},
    )
    case.signals.lexical_coverage = 0.3  # its top paper has few of the question's words
    hybrid = fit.retrieval_metrics([case], settings)
    assert hybrid == (1.0, 1 / 3)
    # BM25 alone has MRR 1: the hybrid trails it by 2/3 there, and by nothing on recall@5.
    assert abs(fit.shortfall([case], settings, hybrid) - 2 / 3) < 1e-9
    # A hybrid at least as good as both components has no shortfall.
    assert fit.shortfall([case], settings, (1.0, 1.0)) == 0.0


def test_the_folds_share_each_sets_merits_without_changing_the_choice() -> None:
    # fit_fusion keeps a set's merit per grid point for the later folds; a fold fitted first
    # must not change what a fit on every set chooses, and new cases are scored afresh.
    def cases(fit: ModuleType) -> list[object]:
        made = []
        for name, gold in (("a", "g"), ("b", "a")):
            case = _case(
                fit,
                gold,
                dense={"a": 0.9, "b": 0.8, "g": 0.7, "c": 0.1},
                bm25={"g": 4.0, "a": 1.0, "b": 0.5, "c": 0.0},
            )
            case.set = name
            case.signals.lexical_coverage = 0.6
            made.append(case)
        return made

    base = RetrievalSettings()
    shared = _fit_module()
    both = cases(shared)
    shared.fit_fusion(both[:1], base)  # a fold: set "a" alone
    fresh = _fit_module()
    assert shared.fit_fusion(both, base) == fresh.fit_fusion(cases(fresh), base)
    # The same set name with other cases is not read from the memo.
    other = cases(shared)
    other[0].gold = {"c"}
    refit = _fit_module()
    redo = cases(refit)
    redo[0].gold = {"c"}
    assert shared.fit_fusion(other, base) == refit.fit_fusion(redo, base)
