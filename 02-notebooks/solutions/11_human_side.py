"""Solutions to the exercises of lesson 11 (the human side). Try the exercises yourself first.

One function per exercise of `02-notebooks/11_human_side.ipynb`; `tests/solutions/test_11_human_side.py`
runs each of them and checks its answer. Probabilities come from the champion
(`mlsys.evaluate.predict`), rows from `mlsys.features.load_splits()`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlsys.objectives import COURSE_COSTS, cost_of_flags
from mlsys.responsible import consistency, fairness


def exercise_1(p_by_lead: pd.DataFrame, y: np.ndarray, threshold: float, margins: Sequence[float] = (0.0, 0.02, 0.05, 0.1)) -> pd.DataFrame:
    """Sticky advice: change the advice at a later look only when P(late) crosses the threshold by `margin`.

    `p_by_lead` has one column per look in time order (e.g. `p_3h`, `p_2h`, `p_1h`). Margin 0 is the
    plain advice. The wider the margin, the fewer flips, and the more the last advice lags what the
    last look knows: its cost per flight rises.
    """
    p = p_by_lead.to_numpy(dtype="float64")
    rows = {}
    for margin in margins:
        acts = consistency.sticky_advice(p, threshold, margin)
        rows[float(margin)] = {
            "flip rate": consistency.flip_rate(acts),
            "cost per flight (last look)": cost_of_flags(y, acts[:, -1], COURSE_COSTS),
        }
    return pd.DataFrame(rows).T.rename_axis("margin")


def exercise_2(valid: pd.DataFrame, p_valid: np.ndarray, test: pd.DataFrame, p_test: np.ndarray, threshold: float) -> pd.DataFrame:
    """Equal miss rates per origin: thresholds per airport chosen on validation so each misses the share
    the single threshold misses overall; priced on test against the single threshold."""
    target = fairness.overall_rates(valid, p_valid, threshold)["miss_rate"]
    per_origin = fairness.group_thresholds(valid, p_valid, "origin", target, default=threshold, rate="miss_rate")
    return fairness.threshold_policies(test, p_test, "origin", threshold, per_origin)


def exercise_3(frame: pd.DataFrame, p: np.ndarray, threshold: float, carrier: str, n_boot: int = 2000, seed: int = 42) -> pd.Series:
    """The miss rate of one carrier with its Wilson interval and a percentile bootstrap interval (resampling its late flights)."""
    mine = frame["carrier"].eq(carrier).fillna(False).to_numpy(dtype=bool) & (frame["late"].to_numpy(dtype="float64") == 1)
    if not mine.any():
        raise ValueError(f"carrier {carrier!r} has no late flights in these rows")
    missed = np.asarray(p, dtype="float64")[mine] < threshold
    rng = np.random.default_rng(seed)
    boot = rng.choice(missed, size=(n_boot, len(missed)), replace=True).mean(axis=1)
    lo, hi = fairness.wilson_interval(missed.sum(), len(missed))
    return pd.Series(
        {
            "late flights": len(missed),
            "miss rate": float(missed.mean()),
            "wilson low": float(lo),
            "wilson high": float(hi),
            "bootstrap low": float(np.quantile(boot, 0.025)),
            "bootstrap high": float(np.quantile(boot, 0.975)),
        },
        name=carrier,
    )
