"""Solutions to the exercises of lesson 09 (continual learning and testing in production). Try them first.

One function per exercise of `02-notebooks/09_continual_learning.ipynb`. `decisions` is a decisions
table as `mlsys.continual.rollout` reads it (the lesson's December replay, or
`rollout.synthetic_decisions()`); `tests/solutions/test_09_continual_learning.py` runs each of them
and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
