"""Solutions to the exercises of lesson 01 (framing). Try the exercises yourself first.

One function per exercise of `02-notebooks/01_framing.ipynb`, on the splits of
`mlsys.features.load_splits`; `model` is a fitted classifier such as the lesson's
`fitted["logreg"]`. `tests/solutions/test_01_framing.py` runs each of them and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlsys import objectives
from mlsys.baselines import HeuristicBaseline, ZeroRule
from mlsys.features import feature_table
from mlsys.metrics import classification_scores
from mlsys.pipeline import INPUT_COLUMNS


def _p_late(model: BaseEstimator, df: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(df[INPUT_COLUMNS])[:, 1]


def exercise_1(model: BaseEstimator, valid: pd.DataFrame, miss: float = 500.0) -> dict[str, float]:
    """Dearer misses: the Bayes threshold and the threshold chosen on validation when a miss costs `miss`.

    With false alarm 100 and miss 500 the Bayes threshold is 100 / 600 = 0.167. The chosen
    threshold can only go down (or stay): the cost per flight is 100 * false alarms + miss * misses,
    and a higher threshold has more misses, so raising the price of a miss raises the cost of high
    thresholds more than that of low ones.
    """
    y, p = valid["late"].astype(int), _p_late(model, valid)
    dearer = objectives.Costs(false_alarm=objectives.COURSE_COSTS.false_alarm, miss=miss)
    return {
        "bayes_threshold": dearer.bayes_threshold(),
        "chosen_threshold": objectives.best_threshold(y, p, dearer),
        "chosen_with_course_costs": objectives.best_threshold(y, p, objectives.COURSE_COSTS),
    }


def exercise_2(splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The zero rule by formula: its validation log loss and Brier score, by hand and by `classification_scores`.

    The zero rule predicts π (the training share late) for every flight; on a split with share q,
    log loss = -[q ln π + (1 - q) ln(1 - π)] and Brier = q (1 - π)^2 + (1 - q) π^2.
    """
    train, valid = splits["train"], splits["valid"]
    pi, q = float(train["late"].mean()), float(valid["late"].mean())
    by_formula = {"log_loss": -(q * np.log(pi) + (1 - q) * np.log(1 - pi)), "brier": q * (1 - pi) ** 2 + (1 - q) * pi**2}
    rule = ZeroRule().fit(train[INPUT_COLUMNS], train["late"].astype(int))
    scores = classification_scores(valid["late"].astype(int), _p_late(rule, valid))
    return pd.DataFrame({"by formula": by_formula, "classification_scores": {k: scores[k] for k in by_formula}})


def exercise_3(splits: Mapping[str, pd.DataFrame], n_pairs: int = 100_000, seed: int = 42) -> dict[str, float]:
    """ROC AUC as a probability: how often does the heuristic rank a random late flight above a random on-time one?

    Ties count half. With 100,000 pairs the estimate is within about 0.003 of the ROC AUC.
    """
    train, valid = splits["train"], splits["valid"]
    rule = HeuristicBaseline().fit(train[INPUT_COLUMNS], train["late"].astype(int))
    p, late = _p_late(rule, valid), valid["late"].astype(int).to_numpy() == 1
    rng = np.random.default_rng(seed)
    a, b = rng.choice(p[late], n_pairs), rng.choice(p[~late], n_pairs)
    return {"share of pairs in the right order": float(np.mean((a > b) + 0.5 * (a == b))), "roc_auc": classification_scores(late, p)["roc_auc"]}


def exercise_4(splits: Mapping[str, pd.DataFrame], delay_minutes: Sequence[float] = (15.0, 30.0)) -> pd.DataFrame:
    """A stricter dispatcher: share of training flights meeting a condition, and validation ROC AUC, per congestion rule.

    At 30 minutes fewer flights count as congested; the rule ranks validation flights worse, because
    it gives up many late flights that departed from an origin running 15-30 minutes late.
    """
    train, valid = splits["train"], splits["valid"]
    rows = {}
    for minutes in delay_minutes:
        rule = HeuristicBaseline(delay_minutes=minutes).fit(train[INPUT_COLUMNS], train["late"].astype(int))
        rows[f"congested at >= {minutes:g} min"] = {
            "share of training flights flagged": float((rule.n_conditions(train) > 0).mean()),
            "validation roc_auc": classification_scores(valid["late"].astype(int), _p_late(rule, valid))["roc_auc"],
        }
    return pd.DataFrame(rows).T


def exercise_5(model: BaseEstimator, valid: pd.DataFrame, capacities: Sequence[int] = (50, 100), valid_flights: int | None = None) -> pd.DataFrame:
    """A smaller desk: precision and recall on validation when the desk flags the top k flights a day by P(late).

    The capacity is scaled to the validation sample (`valid_flights`: every September-October flight,
    from the feature table by default). Fewer flags a day: higher precision, lower recall.
    """
    valid_flights = valid_flights or int((feature_table()["split"] == "valid").sum())
    y, p, day = valid["late"].astype(int), _p_late(model, valid), valid["sched_dep_local"].dt.date
    rows = {}
    for k in capacities:
        k_sample = objectives.scaled_capacity(k, len(valid), valid_flights)
        flags = objectives.flag_top_k_per_day(p, day, k_sample)
        report = objectives.ranking_report(y, valid["arr_delay"], flags, day, objectives.COURSE_COSTS)
        rows[k] = {"flights a day on the sample": k_sample, "precision": report["precision"], "recall": report["recall"]}
    return pd.DataFrame(rows).T.rename_axis("flights a day")
