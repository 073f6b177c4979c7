"""A degenerate feedback loop, its mitigation, and cold start (Huyen, 2022, ch. 8-9).

The desk acts on the flights the model flags: extra ground staff, an earlier crew call. Suppose the
action works and turns a share `effect` of the flagged late flights into on-time ones. The outcomes in
the log are then the outcomes *after* the action, and a model retrained naively on them learns that
the flights it flagged are punctual: it un-learns the very risk it was acting on, flags fewer flights
next time, and the desk pays for the misses.

The mitigation here is a small randomised hold-out: a share of flights (chosen by a stable hash, not
by the model) on which the desk never acts, so their outcomes are untouched. Retraining on the
untouched flights only (every unflagged flight and the held-out flagged ones), with each held-out
flagged flight weighted by 1 / `holdout_share` so that the flagged group keeps its true weight,
learns P(late | no action) without bias. The hold-out has a price: its flagged late flights get no help.

Cold start: aircraft (tail numbers) that first appear in the test months. The course's tree model has
no per-aircraft memory (tail numbers only feed the hashed linear model), so a new aircraft changes
only what the plane's own features say (age and seats, missing when it is not in `planes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlsys import evaluate
from mlsys.continual import rollout
from mlsys.objectives import COURSE_COSTS, Costs

#: Training sets `training_set` knows: the true outcomes (what we wish we had), the logged outcomes
#: (naive), the untouched flights without a hold-out (acted-on flights dropped), the hold-out (IPW).
STRATEGIES = ("true outcomes", "naive", "drop acted", "hold-out")


def simulate_desk(
    keys: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    p: np.ndarray | pd.Series,
    threshold: float,
    effect: float = 0.5,
    holdout_share: float = 0.1,
    seed: int = 42,
    salt: str = "lesson09-holdout",
) -> pd.DataFrame:
    """What the log shows after the desk acted on the flights with `p >= threshold`.

    Held-out flights (`rollout.assign(keys, holdout_share, salt)`) are never acted on. Each acted-on
    late flight becomes on time with probability `effect` (a seeded draw). Columns: `late` (the
    outcome without any action), `flagged`, `held_out`, `acted`, `observed` (the logged outcome).
    """
    if not 0.0 <= effect <= 1.0:
        raise ValueError(f"effect must be within [0, 1], got {effect}")
    y = np.asarray(y, dtype="int64")
    flagged = np.asarray(p, dtype="float64") >= threshold
    held_out = rollout.assign(keys, holdout_share, salt)
    acted = flagged & ~held_out
    saved = acted & (y == 1) & (np.random.default_rng(seed).random(len(y)) < effect)
    return pd.DataFrame({"late": y, "flagged": flagged, "held_out": held_out, "acted": acted, "observed": np.where(saved, 0, y)})


def training_set(sim: pd.DataFrame, strategy: str, holdout_share: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to train on, their labels and their weights for one of `STRATEGIES`."""
    n = len(sim)
    if strategy == "true outcomes":
        return np.ones(n, dtype=bool), sim["late"].to_numpy(), np.ones(n)
    if strategy == "naive":
        return np.ones(n, dtype=bool), sim["observed"].to_numpy(), np.ones(n)
    untouched = ~sim["acted"].to_numpy()
    if strategy == "drop acted":
        return untouched, sim["observed"].to_numpy()[untouched], np.ones(int(untouched.sum()))
    if strategy == "hold-out":
        if holdout_share <= 0:
            raise ValueError("the hold-out strategy needs holdout_share > 0")
        weight = np.where(sim["flagged"].to_numpy() & sim["held_out"].to_numpy(), 1.0 / holdout_share, 1.0)
        return untouched, sim["observed"].to_numpy()[untouched], weight[untouched]
    raise ValueError(f"unknown strategy {strategy!r}: choose from {STRATEGIES}")


def fit_weighted(model: Any, X: pd.DataFrame | np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Any:
    """Fit `model` (an estimator or a Pipeline, whose last step gets the weights) with sample weights."""
    if weight is None:
        return model.fit(X, y)
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": weight})
    return model.fit(X, y, sample_weight=weight)


def loop_effect(
    y: np.ndarray | pd.Series,
    probabilities: Mapping[str, np.ndarray],
    threshold: float,
    risky: np.ndarray,
    costs: Costs = COURSE_COSTS,
) -> pd.DataFrame:
    """What each retrained model believes, scored on true outcomes (no action) of a later period.

    `risky` marks the flights the champion flags there: the risk the loop hides. Columns: the mean
    P(late) it gives them against their true late share, ROC AUC, share flagged at `threshold` and
    cost per flight with lesson 01's costs.
    """
    y = np.asarray(y, dtype="float64")
    risky = np.asarray(risky, dtype=bool)
    rows = {}
    for name, p in probabilities.items():
        p = np.asarray(p, dtype="float64")
        rows[name] = {
            "mean p (risky)": float(p[risky].mean()),
            "late share (risky)": float(y[risky].mean()),
            "roc_auc": evaluate.calibration_scores(y, p)["roc_auc"],
            "share flagged": float((p >= threshold).mean()),
            "cost per flight": float(rollout.flight_costs(y, p, threshold, costs).mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("trained on")


def holdout_price(sim: pd.DataFrame, effect: float, costs: Costs = COURSE_COSTS) -> dict[str, float]:
    """What the hold-out costs: its flagged late flights get no help (expected `effect` of them saved)."""
    denied = sim["flagged"] & sim["held_out"] & (sim["late"] == 1)
    return {
        "held-out flights": int(sim["held_out"].sum()),
        "held-out share": float(sim["held_out"].mean()),
        "flagged late flights not helped": int(denied.sum()),
        "expected cost per flight": float(denied.sum() * effect * (costs.miss - costs.hit) / len(sim)),
    }


# --------------------------------------------------------------------------- cold start


def new_aircraft(history: pd.DataFrame, later: pd.DataFrame) -> pd.Series:
    """True for the flights of `later` whose aircraft (tail number) never flew in `history`.

    Flights without a tail number are neither seen nor new: False.
    """
    seen = set(history["tailnum"].dropna().astype(str))
    tail = later["tailnum"]
    return tail.notna() & ~tail.astype("string").isin(seen)


def cold_start(history: pd.DataFrame, later: pd.DataFrame, p: np.ndarray, threshold: float, costs: Costs = COURSE_COSTS) -> pd.DataFrame:
    """How the model does on flights by aircraft first seen in `later` against aircraft seen before.

    One row per group: aircraft, flights, late share, ROC AUC, mean P(late), cost per flight, and the
    share of flights whose plane is missing from `planes` (no age, no seats).
    """
    new = new_aircraft(history, later).to_numpy()
    has_tail = later["tailnum"].notna().to_numpy()
    y = later[evaluate.LABEL].to_numpy(dtype="float64")
    p = np.asarray(p, dtype="float64")
    rows = {}
    for name, mask in (("seen in training", has_tail & ~new), ("new in test months", new)):
        rows[name] = {
            "aircraft": int(later.loc[mask, "tailnum"].nunique()),
            "flights": int(mask.sum()),
            "late share": float(y[mask].mean()),
            "roc_auc": evaluate.calibration_scores(y[mask], p[mask])["roc_auc"],
            "mean p": float(p[mask].mean()),
            "cost per flight": float(rollout.flight_costs(y[mask], p[mask], threshold, costs).mean()),
            "no plane record": float(later.loc[mask, "plane_age"].isna().mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("aircraft")
