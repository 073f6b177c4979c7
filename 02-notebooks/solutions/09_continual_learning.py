"""Solutions to the exercises of lesson 09 (continual learning and testing in production). Try them first.

One function per exercise of `02-notebooks/09_continual_learning.ipynb`. `decisions` is a decisions
table as `mlsys.continual.rollout` reads it (the lesson's December replay, or
`rollout.synthetic_decisions()`); `tests/solutions/test_09_continual_learning.py` runs each of them
and checks its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlsys.continual import feedback, rollout


def exercise_1(decisions: pd.DataFrame, thresholds: Mapping[str, float], salts: Sequence[str], clock: pd.Timestamp | None = None) -> pd.DataFrame:
    """The A/B test of section 6 under several salts: difference in cost per flight and both p-values.

    Each salt splits the same flights differently; when the two models are about as good, the
    difference changes sign from salt to salt and the p-values spread over (0, 1): one test's figure
    is one draw, and a 'significant' result under one salt alone would be luck.
    """
    rows = []
    for salt in salts:
        result = rollout.ab_test(decisions, thresholds, clock=clock, salt=salt)
        rows.append({"salt": salt, "difference": result.difference, "p_value": result.p_value, "p_value_days": result.p_value_days, "winner": result.winner})
    return pd.DataFrame(rows).set_index("salt")


def exercise_2(
    shares: Sequence[float] = (0.01, 0.05, 0.1, 0.25), n: int = 60_000, effect: float = 0.8, threshold: float = 0.4, seed: int = 0
) -> pd.DataFrame:
    """Hold-out share sweep on the synthetic world of `tests/continual/test_continual_feedback.py`.

    One feature x, true P(late) logistic in x; the desk saves `effect` of the flagged late flights
    outside the hold-out. For each share: how far the retrained model's mean P(late) for the flagged
    flights is from the truth (the bias: the naive model's for reference) and the hold-out's price
    (flagged late flights not helped, expected cost per flight). A bigger hold-out costs more and
    varies less; the bias is removed at every share, only its noise shrinks.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p_true = 1 / (1 + np.exp(-(-1.5 + 1.5 * x)))
    y = (rng.random(n) < p_true).astype(int)
    rows = []
    for share in shares:
        sim = feedback.simulate_desk(np.arange(n), y, p_true, threshold, effect=effect, holdout_share=share, seed=seed + 1)
        risky = sim["flagged"].to_numpy()
        fitted = {}
        for strategy in ("naive", "hold-out"):
            keep, labels, weight = feedback.training_set(sim, strategy, share)
            model = feedback.fit_weighted(LogisticRegression(), x[keep, None], labels, weight)
            fitted[strategy] = model.predict_proba(x[:, None])[:, 1][risky].mean()
        price = feedback.holdout_price(sim, effect)
        rows.append(
            {
                "holdout share": share,
                "true mean p (flagged)": float(p_true[risky].mean()),
                "naive bias": float(fitted["naive"] - p_true[risky].mean()),
                "hold-out bias": float(fitted["hold-out"] - p_true[risky].mean()),
                "flagged late not helped": price["flagged late flights not helped"],
                "price per flight": price["expected cost per flight"],
            }
        )
    return pd.DataFrame(rows).set_index("holdout share")


def exercise_3(decisions: pd.DataFrame, thresholds: Mapping[str, float], ratios: Sequence[float], **canary: object) -> pd.DataFrame:
    """The canary's decision for each `max_cost_ratio`, with the stage and cost ratio at which it ended.

    A tight tolerance on a 5 % canary compares a hundred flights' cost with thousands: the cost ratio
    of a first stage moves by tens of percent from noise alone (the lesson's went from 0.6394 to
    1.0038), so a guard tighter than that noise rolls back good challengers at random.
    """
    rows = []
    for max_ratio in ratios:
        result = rollout.canary(decisions, thresholds, max_cost_ratio=max_ratio, **canary)
        last = result.timeline.iloc[-1]
        rows.append({"max_cost_ratio": max_ratio, "decision": result.decision, "last share": last["share"], "last cost ratio": last["cost ratio"], "checks": len(result.timeline)})
    return pd.DataFrame(rows).set_index("max_cost_ratio")


def exercise_4(
    decisions: pd.DataFrame,
    frame: pd.DataFrame,
    score: Callable[[pd.DataFrame], np.ndarray],
    thresholds: Mapping[str, float],
    groups: Mapping[str, Sequence[str]],
    clock: pd.Timestamp | None = None,
    **canary: object,
) -> pd.DataFrame:
    """For each group of features blanked (a feed that broke), the challenger's canary and its month in hindsight.

    `frame` holds the flights of `decisions` with their features (`flight_id` and the model inputs);
    `score(rows)` is the challenger's P(late) for rows of it. Each group's columns are set missing,
    the challenger rescored, its `p_challenger` replaced (matched by flight), and section 7's canary
    and shadow comparison run again. A breakage that raises the share flagged is caught at the first
    check, without outcomes; the flag guard is one-sided, so one that lowers it waits for the cost
    guard; one that changes little may rightly pass: the guards judge decisions, not inputs.
    """
    rows = []
    for name, columns in groups.items():
        broken = frame.assign(**{c: np.nan for c in columns})
        p = pd.Series(np.asarray(score(broken), dtype="float64"), index=frame["flight_id"].to_numpy())
        table = decisions.assign(p_challenger=decisions[rollout.KEY].map(p).to_numpy())
        result = rollout.canary(table, thresholds, **canary)
        first, last = result.timeline.iloc[0], result.timeline.iloc[-1]
        month = rollout.shadow(table, thresholds, clock=clock)
        rows.append(
            {
                "group": name,
                "features blanked": len(columns),
                "first flag ratio": first["flag ratio"],
                "decision": result.decision,
                "ended by": last["action"],
                "ended on": result.timeline.index[-1],
                "share flagged": month.loc["challenger", "share flagged"],
                "month cost ratio": month.loc["challenger", "cost per flight"] / month.loc["champion", "cost per flight"],
            }
        )
    return pd.DataFrame(rows).set_index("group")
