"""From model scores to the operations desk's decisions: costs, thresholds, decoupled objectives.

The desk acts 2 h before a scheduled departure (rebook tight connections, pre-position a crew or
a gate). What a prediction is worth depends on two assumed costs, kept as parameters:

* a **false alarm**: the desk acts on a flight that then arrives on time (an unnecessary
  rebooking, a crew called in for nothing);
* a **miss**: the desk does nothing and the flight is late, cancelled or diverted (missed
  connections, hotel vouchers, a crew out of hours).

Decoupled objectives (Huyen, 2022, ch. 2): instead of one model trained on a blended loss, a
delay-probability model `p` and a delay-minutes model `m` are trained once each and their outputs
are combined as `alpha * p + beta * m / scale`; changing `alpha` and `beta` re-ranks flights
without retraining anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import lightgbm_params, tree_preprocessor

__all__ = [
    "Costs",
    "COURSE_COSTS",
    "confusion_counts",
    "cost_of_flags",
    "expected_cost",
    "cost_curve",
    "best_threshold",
    "policy_costs",
    "combine",
    "flag_top_k_per_day",
    "flown",
    "minutes_regressor",
    "ranking_report",
    "scaled_capacity",
    "weight_sweep",
    "best_weight",
]


@dataclass(frozen=True)
class Costs:
    """Assumed cost (any currency) of each outcome of one flight's decision."""

    false_alarm: float  # acted, flight on time
    miss: float  # did not act, flight late / cancelled / diverted
    hit: float = 0.0  # acted, flight late: the action's own cost, if it is not free

    def bayes_threshold(self) -> float:
        """Act when P(late) exceeds this, if probabilities are calibrated.

        Acting costs `(1 - p) * false_alarm + p * hit`, not acting costs `p * miss`; they are
        equal at `p = false_alarm / (false_alarm + miss - hit)`.
        """
        return self.false_alarm / (self.false_alarm + self.miss - self.hit)


#: The course's cost model (lesson 01): a missed late flight costs three false alarms. Lessons and
#: the prediction service decide with a threshold chosen for these costs on validation data.
COURSE_COSTS = Costs(false_alarm=100.0, miss=300.0)


def confusion_counts(y: Sequence[float] | np.ndarray | pd.Series, flags: Sequence[bool] | np.ndarray) -> dict[str, int]:
    """True/false positives and negatives of boolean `flags` against 0/1 labels `y`."""
    y = np.asarray(pd.Series(y).astype("float64")) == 1
    flags = np.asarray(flags, dtype=bool)
    return {
        "tp": int((flags & y).sum()),
        "fp": int((flags & ~y).sum()),
        "fn": int((~flags & y).sum()),
        "tn": int((~flags & ~y).sum()),
    }


def cost_of_flags(y: Sequence[float] | np.ndarray | pd.Series, flags: Sequence[bool] | np.ndarray, costs: Costs) -> float:
    """Mean cost per flight of acting on the flagged flights."""
    c = confusion_counts(y, flags)
    n = sum(c.values())
    return (c["fp"] * costs.false_alarm + c["fn"] * costs.miss + c["tp"] * costs.hit) / n


def expected_cost(
    y: Sequence[float] | np.ndarray | pd.Series, p: Sequence[float] | np.ndarray, threshold: float, costs: Costs
) -> float:
    """Mean cost per flight when the desk acts on every flight with `p >= threshold`."""
    return cost_of_flags(y, np.asarray(p, dtype="float64") >= threshold, costs)


def cost_curve(
    y: Sequence[float] | np.ndarray | pd.Series, p: Sequence[float] | np.ndarray, costs: Costs, thresholds: Iterable[float] | None = None
) -> pd.DataFrame:
    """Mean cost per flight and share of flights flagged for each threshold (default 0.00, 0.01, ..., 1.00)."""
    thresholds = np.round(np.linspace(0, 1, 101), 2) if thresholds is None else np.asarray(list(thresholds), dtype="float64")
    p = np.asarray(p, dtype="float64")
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "cost": [expected_cost(y, p, t, costs) for t in thresholds],
            "flagged": [float((p >= t).mean()) for t in thresholds],
        }
    )


def best_threshold(
    y: Sequence[float] | np.ndarray | pd.Series, p: Sequence[float] | np.ndarray, costs: Costs, thresholds: Iterable[float] | None = None
) -> float:
    """The threshold with the lowest mean cost (the smallest one on ties). Choose it on validation data."""
    curve = cost_curve(y, p, costs, thresholds)
    return float(curve.loc[curve["cost"].idxmin(), "threshold"])


def policy_costs(
    y: Sequence[float] | np.ndarray | pd.Series,
    p: Sequence[float] | np.ndarray,
    thresholds: Mapping[str, float],
    costs: Costs,
    n_days: int | None = None,
) -> pd.DataFrame:
    """One row per named threshold: the threshold, mean cost per flight, share flagged (and cost per day given `n_days`).

    A threshold above 1 acts on no flight, 0 on every flight.
    """
    p = np.asarray(p, dtype="float64")
    rows = {}
    for name, threshold in thresholds.items():
        cost = expected_cost(y, p, threshold, costs)
        rows[name] = {"threshold": float(threshold), "cost per flight": cost, "share flagged": float((p >= threshold).mean())}
        if n_days:
            rows[name]["cost per day"] = cost * len(p) / n_days
    return pd.DataFrame(rows).T.rename_axis("policy")


def combine(p: Sequence[float] | np.ndarray, minutes: Sequence[float] | np.ndarray, alpha: float, beta: float, scale: float = 60.0) -> np.ndarray:
    """Decoupled score `alpha * p + beta * minutes / scale` (minutes / 60: hours of delay)."""
    return alpha * np.asarray(p, dtype="float64") + beta * np.asarray(minutes, dtype="float64") / scale


def flag_top_k_per_day(score: Sequence[float] | np.ndarray, day: Sequence[object] | pd.Series, k: int) -> np.ndarray:
    """Flag the `k` highest-scoring flights of each day (the desk's daily capacity).

    Ties are broken by position, so the same inputs always flag the same flights.
    """
    frame = pd.DataFrame({"score": np.asarray(score, dtype="float64"), "day": np.asarray(day)})
    rank = frame.groupby("day")["score"].rank(method="first", ascending=False)
    return (rank <= k).to_numpy()


def flown(df: pd.DataFrame) -> pd.Series:
    """Rows with an arrival delay (neither cancelled nor diverted): the minutes model's training rows."""
    return df["arr_delay"].notna()


def minutes_regressor(
    seed: int = 42, numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = CATEGORICAL, **params: object
) -> Pipeline:
    """LightGBM regressor of arrival-delay minutes (squared error: it predicts the mean delay)."""
    # one thread: on a shared 2-core machine OpenMP threads that wait on each other burn far
    # more time than they save on 60k rows
    settings = lightgbm_params(seed, **{"n_estimators": 200, "n_jobs": 1, **params})
    return Pipeline([("prep", tree_preprocessor(numeric, categorical)), ("model", lgb.LGBMRegressor(**settings))])


def ranking_report(
    y: Sequence[float] | np.ndarray | pd.Series,
    arr_delay: Sequence[float] | np.ndarray | pd.Series,
    flags: Sequence[bool] | np.ndarray,
    day: Sequence[object] | pd.Series,
    costs: Costs,
) -> dict[str, float]:
    """What flagging `flags` buys: precision, recall, share of delay minutes caught, cost per day.

    Delay minutes count the positive arrival delays of flown flights (cancelled and diverted
    flights have none).
    """
    flags = np.asarray(flags, dtype=bool)
    c = confusion_counts(y, flags)
    minutes = np.clip(np.nan_to_num(np.asarray(arr_delay, dtype="float64"), nan=0.0), 0, None)
    n_days = pd.Series(np.asarray(day)).nunique()
    return {
        "flagged_per_day": flags.sum() / n_days,
        "precision": c["tp"] / max(c["tp"] + c["fp"], 1),
        "recall": c["tp"] / max(c["tp"] + c["fn"], 1),
        "delay_minutes_caught": float(minutes[flags].sum() / minutes.sum()) if minutes.sum() else float("nan"),
        "cost_per_day": cost_of_flags(y, flags, costs) * len(flags) / n_days,
    }


def scaled_capacity(k: int, sample_rows: int, population_rows: int) -> int:
    """The desk's daily capacity `k` scaled to a random sample of the days' flights (at least 1).

    Fast mode validates on a sample of September-October: flagging the same `k` flights a day out
    of a third of the flights would flag three times the share the desk can act on.
    """
    return max(1, round(k * sample_rows / population_rows))


def weight_sweep(
    y: Sequence[float] | np.ndarray | pd.Series,
    arr_delay: Sequence[float] | np.ndarray | pd.Series,
    p: Sequence[float] | np.ndarray,
    minutes: Sequence[float] | np.ndarray,
    day: Sequence[object] | pd.Series,
    k: int,
    costs: Costs,
    weights: Iterable[float] | None = None,
) -> pd.DataFrame:
    """`ranking_report` of flagging the top `k` flights a day by `(1 - w) * p + w * minutes / 60`, per weight `w`.

    Adds `saved_per_day`: the cost per day of acting on no flight minus that of the flags. Choose
    the weight on validation data (`best_weight`), then report it on test once.
    """
    weights = np.round(np.linspace(0, 1, 11), 2) if weights is None else np.asarray(list(weights), dtype="float64")
    no_action = ranking_report(y, arr_delay, np.zeros(len(np.asarray(p)), dtype=bool), day, costs)["cost_per_day"]
    rows = []
    for w in weights:
        flags = flag_top_k_per_day(combine(p, minutes, 1 - w, w), day, k)
        rows.append({"weight_on_minutes": float(w), **ranking_report(y, arr_delay, flags, day, costs)})
    sweep = pd.DataFrame(rows).set_index("weight_on_minutes")
    sweep["saved_per_day"] = no_action - sweep["cost_per_day"]
    return sweep


def best_weight(sweep: pd.DataFrame) -> float:
    """The weight of a `weight_sweep` with the lowest cost per day (the smallest weight on ties)."""
    return float(sweep["cost_per_day"].idxmin())
