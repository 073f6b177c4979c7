"""Failing smoothly: when the model is down or unsure, the desk gets lesson 01's dispatcher rule, not nothing.

Three reasons to hand a decision to the rule (`mlsys.baselines.HeuristicBaseline`, the same rule
the service serves when it cannot load a model, `serve.model.heuristic_fallback`):

* **unavailable**: the model cannot be loaded or raises; every flight gets the rule's advice;
* **unsure**: P(late) lies within `band` of the decision threshold, where a small error in p
  flips the decision;
* **missing**: a feature the policy requires is missing (e.g. no departure from the origin in the
  last 3 h, so the model sees no congestion evidence at all).

Whether a fallback pays is an empirical question: the rule is weaker than the model on average and
may still be right more often where the model is unsure. `band_sweep` prices each band with lesson
01's costs on validation, `policy_costs` compares model only, model with fallback, rule only and no
advice at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsys import evaluate
from mlsys.logger import logger
from mlsys.objectives import COURSE_COSTS, Costs, confusion_counts, cost_of_flags

MODEL, UNSURE, MISSING, UNAVAILABLE = "model", "unsure", "missing", "unavailable"


@dataclass(frozen=True)
class FallbackPolicy:
    """When the rule decides instead of the model: p within `band` of `threshold`, or a `required` feature missing."""

    threshold: float
    band: float = 0.0
    required: tuple[str, ...] = ()

    def sources(self, p: np.ndarray | None, rows: pd.DataFrame) -> np.ndarray:
        """Who decides each row: "model", "unsure", "missing" or, when `p` is None, "unavailable"."""
        n = len(rows)
        if p is None:
            return np.full(n, UNAVAILABLE, dtype=object)
        p = np.asarray(p, dtype="float64")
        if len(p) != n:
            raise ValueError(f"{len(p)} probabilities for {n} rows")
        src = np.full(n, MODEL, dtype=object)
        if self.band > 0:
            src[np.abs(p - self.threshold) < self.band] = UNSURE
        if self.required:
            absent = [c for c in self.required if c not in rows]
            if absent:
                raise KeyError(f"required feature(s) not in the rows: {absent}")
            src[rows[list(self.required)].isna().any(axis=1).to_numpy()] = MISSING
        # a missing probability (a model that returned NaN) is no answer either
        src[np.isnan(p)] = UNAVAILABLE
        return src

    def decide(self, p: np.ndarray | None, rows: pd.DataFrame, rule_acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Acts (bool) and their sources: the model's decision at `threshold` where it decides, the rule's elsewhere."""
        src = self.sources(p, rows)
        rule_acts = np.asarray(rule_acts, dtype=bool)
        model_acts = np.zeros(len(rows), dtype=bool) if p is None else np.nan_to_num(np.asarray(p, dtype="float64"), nan=0.0) >= self.threshold
        return np.where(src == MODEL, model_acts, rule_acts), src


def rule_acts(rule: Any, rows: pd.DataFrame, rule_threshold: float) -> np.ndarray:
    """The dispatcher rule's advice: its probability at or above its own threshold (chosen on validation)."""
    return evaluate.predict(rule, rows) >= rule_threshold


def safe_predict(model: Any | None, rows: pd.DataFrame) -> np.ndarray | None:
    """P(late) from `model`, or None when there is no model or it fails (logged, never raised: the desk gets the rule)."""
    if model is None:
        return None
    try:
        return evaluate.predict(model, rows)
    except Exception as exc:  # noqa: BLE001 - any failure of the model means "fall back", and is logged
        logger.warning("model failed ({}: {}); the dispatcher rule decides", type(exc).__name__, exc)
        return None


def advise(model: Any | None, rows: pd.DataFrame, rule: Any, rule_threshold: float, policy: FallbackPolicy) -> pd.DataFrame:
    """Advice per row as the desk would get it: P(late) (NaN when unavailable), act, and who decided."""
    p = safe_predict(model, rows)
    acts, src = policy.decide(p, rows, rule_acts(rule, rows, rule_threshold))
    return pd.DataFrame({"p": p if p is not None else np.nan, "act": acts, "source": src}, index=rows.index)


def _row(y: np.ndarray, acts: np.ndarray, src: np.ndarray, costs: Costs) -> dict[str, float]:
    c = confusion_counts(y, acts)
    return {
        "cost per flight": cost_of_flags(y, acts, costs),
        "share decided by the rule": float(np.mean(src != MODEL)),
        "share acted on": float(np.mean(acts)),
        "false_alarm_rate": c["fp"] / max(c["fp"] + c["tn"], 1),
        "miss_rate": c["fn"] / max(c["fn"] + c["tp"], 1),
    }


def policy_costs(
    y: np.ndarray,
    p: np.ndarray,
    rows: pd.DataFrame,
    rule_flags: np.ndarray,
    policies: Mapping[str, FallbackPolicy],
    costs: Costs = COURSE_COSTS,
) -> pd.DataFrame:
    """Cost per flight (lesson 01's costs), share the rule decided and error rates of each policy.

    Adds "heuristic only" (the model down, the rule for every flight) and "no advice" (the model
    down and no fallback: the desk acts on nothing, so every late flight is missed).
    """
    y = np.asarray(y, dtype="float64")
    rule_flags = np.asarray(rule_flags, dtype=bool)
    rows_out = {}
    for name, policy in policies.items():
        acts, src = policy.decide(p, rows, rule_flags)
        rows_out[name] = _row(y, acts, src, costs)
    everyone = np.full(len(y), UNAVAILABLE, dtype=object)
    rows_out["heuristic only"] = _row(y, rule_flags, everyone, costs)
    rows_out["no advice"] = _row(y, np.zeros(len(y), dtype=bool), everyone, costs) | {"share decided by the rule": 0.0}
    return pd.DataFrame(rows_out).T.rename_axis("policy")


def band_sweep(
    y: np.ndarray,
    p: np.ndarray,
    rows: pd.DataFrame,
    rule_flags: np.ndarray,
    threshold: float,
    bands: Sequence[float] = tuple(np.round(np.arange(0, 0.105, 0.01), 2)),
    required: tuple[str, ...] = (),
    costs: Costs = COURSE_COSTS,
) -> pd.DataFrame:
    """Cost per flight and share decided by the rule for each unsure band (0: the model decides every flight)."""
    y = np.asarray(y, dtype="float64")
    rows_out = {}
    for band in bands:
        acts, src = FallbackPolicy(threshold, float(band), required).decide(p, rows, rule_flags)
        rows_out[float(band)] = _row(y, acts, src, costs)
    return pd.DataFrame(rows_out).T.rename_axis("band")


def best_band(sweep: pd.DataFrame) -> float:
    """The band of a `band_sweep` with the lowest cost (the narrowest on ties). Choose it on validation."""
    cost = sweep["cost per flight"].round(10)
    return float(cost[cost == cost.min()].index.min())


def cost_by_source(y: np.ndarray, p: np.ndarray, rows: pd.DataFrame, rule_flags: np.ndarray, policy: FallbackPolicy, costs: Costs = COURSE_COSTS) -> pd.DataFrame:
    """On the rows each source takes, the cost per flight had the model or the rule decided: where the fallback pays."""
    y = np.asarray(y, dtype="float64")
    _, src = policy.decide(p, rows, rule_flags)
    model_acts = np.asarray(p, dtype="float64") >= policy.threshold
    out = {}
    for source in dict.fromkeys(src):
        m = src == source
        out[source] = {
            "flights": int(m.sum()),
            "late_rate": float(y[m].mean()),
            "model's cost per flight": cost_of_flags(y[m], model_acts[m], costs),
            "rule's cost per flight": cost_of_flags(y[m], np.asarray(rule_flags)[m], costs),
        }
    return pd.DataFrame(out).T.rename_axis("source").astype({"flights": int})
