"""Solutions to the exercises of lesson 06 (offline evaluation). Try the exercises yourself first.

One function per exercise of `02-notebooks/06_offline_evaluation.ipynb`, on the splits of
`mlsys.features.load_splits`; `model` is a fitted classifier such as the lesson's champion
(`final`, built like `promote.fit_champion`) and `threshold` its operating threshold.
`tests/solutions/test_06_offline_evaluation.py` runs each of them and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlsys import evaluate, objectives, promote


def exercise_1(model: Any, splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The maps the other way round: calibration maps fitted on October, judged on September.

    `none` has the lowest ECE again. October's late rate is higher than September's, and the
    model under-predicts October, so both maps push every probability up; on punctual September
    that over-states the risk even more than the raw model already does. A map learns the base rate
    of the month it was fitted on, and the next month's base rate is different.
    """
    september, october = evaluate.split_last_month(splits["valid"])
    table = evaluate.compare_calibration(model, october, september)
    table["late_rate_fitted_on"] = float(october[evaluate.LABEL].mean())
    return table


def exercise_2(model: Any, splits: Mapping[str, pd.DataFrame], costs: objectives.Costs = objectives.COURSE_COSTS) -> dict[str, float]:
    """What peeking would buy: the test cost per flight at the validation threshold and at a threshold chosen on test.

    The peeked cost is lower (or equal) by construction: it is the minimum over thresholds of the very
    costs it reports. The desk cannot choose its threshold on flights that have not happened yet, so
    only the validation threshold's cost is an honest estimate; the gap is how much the peek flatters.
    """
    valid, test = splits["valid"], splits["test"]
    y_valid, y_test = valid[evaluate.LABEL].astype(int), test[evaluate.LABEL].astype(int)
    p_valid, p_test = evaluate.predict(model, valid), evaluate.predict(model, test)
    chosen = objectives.best_threshold(y_valid, p_valid, costs)
    peeked = objectives.best_threshold(y_test, p_test, costs)
    honest = objectives.expected_cost(y_test, p_test, chosen, costs)
    flattered = objectives.expected_cost(y_test, p_test, peeked, costs)
    return {
        "validation threshold": chosen,
        "test threshold (peeked)": peeked,
        "test cost at validation threshold": honest,
        "test cost at peeked threshold": flattered,
        "saving the peek pretends": honest - flattered,
    }


def exercise_3(model: Any, splits: Mapping[str, pd.DataFrame], threshold: float, top: int = 10) -> pd.DataFrame:
    """Fairness by destination: false-alarm and miss rates at `threshold` for the `top` busiest destinations (validation).

    Sorted by miss rate, highest first: the first row is the destination whose late flights are
    missed most often.
    """
    valid = splits["valid"]
    busiest = valid["dest"].value_counts().head(top).index
    rows = valid[valid["dest"].isin(busiest)].reset_index(drop=True)
    table = evaluate.error_rates_by_group(rows, evaluate.predict(model, rows), "dest", threshold)
    return table.sort_values("miss_rate", ascending=False)


def exercise_4(model: Any, splits: Mapping[str, pd.DataFrame], min_n: int = 500) -> pd.DataFrame:
    """Test the slice rule: ROC AUC per scheduled hour (>= `min_n` validation flights), champion against the dispatcher rule.

    The model ranks better than the rule in every such hour (`model_better` all True), including the
    early ones where it is weakest: gating hours would refuse the model exactly where the desk's
    alternative is blind. That supports gating carriers and airports, not hours.
    """
    valid = splits["valid"]
    rule, _ = promote.dispatcher_rule(splits)
    scores = {}
    for name, fitted in {"model": model, "rule": rule}.items():
        table = evaluate.slice_scores(valid, evaluate.predict(fitted, valid), columns=["sched_hour"])
        scores[name] = table[table["n"] >= min_n].set_index("value")["roc_auc"]
    out = pd.DataFrame(scores).rename(columns={"model": "model_roc_auc", "rule": "rule_roc_auc"})
    out.index = out.index.astype(int)
    out = out.sort_index().rename_axis("sched_hour")
    out["model_better"] = out["model_roc_auc"] > out["rule_roc_auc"]
    return out


def exercise_5(model: Any, splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """December as another month: December's mean predicted probability with `month` set to each training month.

    Month 8 gives exactly the real predictions (a tree cannot tell 12 from 8: every split on month
    lies below 8). Earlier months change the mean, but none brings it up to December's late rate:
    the model's picture of December is off by more than the calendar.
    """
    test = splits["test"]
    december = test[test["month"] == 12].reset_index(drop=True)
    actual = evaluate.predict(model, december)
    rows = {
        month: {"mean_p": float(evaluate.predict(model, december.assign(month=float(month))).mean())}
        for month in range(1, 9)
    }
    table = pd.DataFrame(rows).T.rename_axis("month read as")
    table["late_rate"] = float(december[evaluate.LABEL].mean())
    table["mean_p_as_december"] = float(actual.mean())
    table["gap"] = table["late_rate"] - table["mean_p"]
    return table
