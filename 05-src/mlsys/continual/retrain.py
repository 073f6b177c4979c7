"""When, how and on what to retrain (Huyen, 2022, ch. 9).

* **Triggers** (`trigger_log`): on a schedule (every k days), on drift (the population stability index
  of the predictions against the window the champion was validated on) and on performance (cost per
  flight of the flights whose outcome is known, against the validation cost). Drift needs no label;
  performance waits for the flights to land.
* **Stateless vs stateful** (`fit_fresh`, `warm_start`): a fresh fit on all data again, or LightGBM
  continued from the champion's booster (`init_model`) on the new rows only, with the champion's
  fitted preprocessing, so the category codes stay what the old trees were grown on.
* **Freshness** (`freshness_splits`): the same recipe on data through August, October and November.
  A challenger trained on data through month M is fitted on the months before M and judged on M by
  lesson 06's protocol (`promote.evaluate_candidate(..., on="valid")`), which also chooses its
  threshold; December is scored once per challenger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlsys import evaluate, promote
from mlsys.continual import rollout
from mlsys.monitor.drift import psi
from mlsys.objectives import COURSE_COSTS, Costs
from mlsys.pipeline import INPUT_COLUMNS

# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Triggers:
    """When to retrain: every `every_days`; when the predictions' PSI over the last `window_days`
    exceeds `max_psi`; when the cost per flight of the last `window_days`' known outcomes exceeds
    `max_cost` (with at least `min_outcomes` of them)."""

    every_days: int = 14
    window_days: int = 7
    max_psi: float = 0.1
    max_cost: float = 60.0
    min_outcomes: int = 200


def trigger_log(
    frame: pd.DataFrame,
    reference: np.ndarray | pd.Series,
    threshold: float,
    triggers: Triggers,
    column: str = "p_champion",
    costs: Costs = COURSE_COSTS,
) -> pd.DataFrame:
    """Check the three triggers at the start of each day of `frame` (a decisions table, see `rollout`).

    Each trigger is evaluated on its own, as if the others did not exist, and none resets anything: the
    table shows when each would have asked for a retrain. Drift compares the `column` of the flights
    decided in the last `window_days` with `reference` (from the first full window on); performance
    uses the flights decided in that window whose outcome is known at the check.
    """
    rollout.check_frame(frame, (rollout.TIME, rollout.LABEL, rollout.KNOWN, column))
    times = pd.to_datetime(frame[rollout.TIME])
    start = times.min().floor("D")
    days = pd.date_range(start + pd.Timedelta(days=1), times.max().floor("D") + pd.Timedelta(days=1), freq="D")
    cost = rollout.flight_costs(frame[rollout.LABEL], frame[column], threshold, costs)
    rows = []
    for day in days:
        window = ((times >= day - pd.Timedelta(days=triggers.window_days)) & (times < day)).to_numpy()
        known = window & rollout.known_by(frame, day)
        # a window shorter than `window_days` (the first days) is too small a sample to judge drift on
        full = day - pd.Timedelta(days=triggers.window_days) >= start
        drift = psi(pd.Series(np.asarray(reference, dtype="float64")), frame.loc[window, column]) if full and window.any() else float("nan")
        n_known = int(known.sum())
        window_cost = float(cost[known].mean()) if n_known else float("nan")
        elapsed = (day - start).days
        rows.append(
            {
                "day": day,
                "psi": drift,
                "outcomes known": n_known,
                "cost per flight": window_cost,
                "schedule": elapsed % triggers.every_days == 0,
                "drift": bool(full and drift > triggers.max_psi),
                "performance": bool(n_known >= triggers.min_outcomes and window_cost > triggers.max_cost),
            }
        )
    return pd.DataFrame(rows).set_index("day")


def limits_from(log: pd.DataFrame, every_days: int = 14, window_days: int = 7, min_outcomes: int = 200) -> Triggers:
    """Triggers whose drift and performance limits are the worst window of a reference period's `trigger_log`.

    Chosen on the period the champion was validated on, they would have raised no alarm there: an
    alarm later means the stream left what that period showed, not noise that period already had.
    """
    checked = log[log["outcomes known"] >= min_outcomes]
    return Triggers(
        every_days=every_days,
        window_days=window_days,
        max_psi=round(float(log["psi"].max()), 4),
        max_cost=round(float(checked["cost per flight"].max()), 2),
        min_outcomes=min_outcomes,
    )


def first_firing(log: pd.DataFrame) -> pd.Series:
    """The first day each trigger fired (NaT when it never did) and how often it fired."""
    out = {}
    for name in ("schedule", "drift", "performance"):
        fired = log.index[log[name]]
        out[name] = {"first fired": fired.min() if len(fired) else pd.NaT, "days fired": int(len(fired))}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("trigger")


# --------------------------------------------------------------------------- stateless vs stateful


def fit_fresh(frame: pd.DataFrame, seed: int = 42, **params: Any) -> Pipeline:
    """Stateless retraining: the champion's recipe (monotone LightGBM) fitted from scratch on `frame`."""
    return evaluate.fit(evaluate.constrained_lightgbm(seed=seed, **params), frame)


def warm_start(model: Pipeline, frame: pd.DataFrame, extra_trees: int, seed: int = 42) -> Pipeline:
    """Stateful retraining: `extra_trees` more trees grown on `frame`, starting from `model`'s booster.

    The fitted preprocessing is reused as it is (its category codes are what the old trees split on);
    the LightGBM settings are the old model's, only `n_estimators` changes. The result predicts with
    the old trees followed by the new ones; the old model is left untouched.
    """
    old = model.named_steps["model"]
    prep = model.named_steps["prep"]
    params = {**old.get_params(), "n_estimators": extra_trees, "random_state": seed}
    new = type(old)(**params)
    new.fit(prep.transform(frame[INPUT_COLUMNS]), frame[evaluate.LABEL].to_numpy(), init_model=old.booster_)
    return Pipeline([("prep", prep), ("model", new)])


def n_trees(model: Pipeline) -> int:
    """Trees in a pipeline's LightGBM booster."""
    return int(model.named_steps["model"].booster_.num_trees())


def tree_dumps(model: Pipeline) -> list[dict]:
    """The booster's trees as LightGBM dumps them (structure, thresholds, leaf values)."""
    return model.named_steps["model"].booster_.dump_model()["tree_info"]


def timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fit` and return its result and the CPU seconds it took (this process, all threads)."""
    start = time.process_time()
    result = fit()
    return result, time.process_time() - start


# --------------------------------------------------------------------------- freshness and the protocol


def month_rows(table: pd.DataFrame, months: Sequence[int], rows: int | None, seed: int) -> pd.DataFrame:
    """Flights of `months` (local scheduled month), a seeded sample of `rows` of them (all when None)."""
    part = table[table["month"].isin([float(m) for m in months])]
    if rows is not None and len(part) > rows:
        part = part.sample(rows, random_state=seed).sort_values("sched_dep_utc")
    return part.reset_index(drop=True)


def freshness_splits(table: pd.DataFrame, through: int, fit_rows: int | None, valid_rows: int | None, seed: int = 42) -> dict[str, pd.DataFrame]:
    """The splits of a challenger trained on data through month `through`.

    `train`: the months before `through` (a sample of `fit_rows`, the same size for every cutoff, so
    only freshness differs); `valid`: month `through` (what the protocol judges and the threshold is
    chosen on); `test`: December, all of it.
    """
    if not 2 <= through <= 11:
        raise ValueError(f"through must be a month from 2 to 11 (December is scored), got {through}")
    return {
        "train": month_rows(table, range(1, through), fit_rows, seed),
        "valid": month_rows(table, [through], valid_rows, seed),
        "test": month_rows(table, [12], None, seed),
    }


def judge(model: Any, splits: Mapping[str, pd.DataFrame], protocol: promote.Protocol | None = None) -> dict[str, Any]:
    """Lesson 06's protocol on the challenger's validation split, then December at the chosen threshold."""
    report = promote.evaluate_candidate(model, splits, protocol, on="valid")
    threshold = float(report.protocol.threshold)
    test = splits["test"]
    y = test[evaluate.LABEL].to_numpy(dtype="float64")
    p = evaluate.predict(model, test)
    scores = evaluate.calibration_scores(y, p)
    return {
        "passed": report.passed,
        "failed checks": ", ".join(c.name for c in report.checks if not c.passed) or "-",
        "threshold": threshold,
        "valid cost": report.scores["valid_cost_per_flight"],
        "Dec roc_auc": scores["roc_auc"],
        "Dec ece": scores["ece"],
        "Dec cost": float(rollout.flight_costs(y, p, threshold).mean()),
        "report": report,
    }


def summary(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """`judge` results side by side, one row per challenger (the full reports left out)."""
    return pd.DataFrame.from_dict({name: {k: v for k, v in r.items() if k != "report"} for name, r in results.items()}, orient="index").rename_axis("challenger")
