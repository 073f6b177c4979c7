"""Retraining (`mlsys.continual.retrain`): triggers fire as specified, warm start continues the old model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlsys import evaluate
from mlsys.continual import retrain, rollout



# ------------------------------------------------------------------ triggers


def decisions(days: int, shift_from_day: int | None = None, worse_from_day: int | None = None) -> pd.DataFrame:
    """Synthetic decisions; from `shift_from_day` the predictions move up, from `worse_from_day` they are noise."""
    frame = rollout.synthetic_decisions(days=days, flights_per_day=300, seed=2)
    day = (frame[rollout.TIME] - frame[rollout.TIME].min()).dt.days
    if shift_from_day is not None:
        frame.loc[day >= shift_from_day, "p_champion"] = np.clip(frame.loc[day >= shift_from_day, "p_champion"] + 0.25, 0, 1)
    if worse_from_day is not None:
        bad = day >= worse_from_day
        frame.loc[bad, "p_champion"] = np.random.default_rng(3).permutation(frame.loc[bad, "p_champion"].to_numpy())
    return frame


def test_schedule_fires_every_k_days_and_nothing_else_on_a_stable_stream() -> None:
    frame = decisions(28)
    reference = frame["p_champion"].to_numpy()
    cost = rollout.flight_costs(frame["late"], frame["p_champion"], 0.3).mean()
    log = retrain.trigger_log(frame, reference, 0.3, retrain.Triggers(every_days=7, max_psi=0.1, max_cost=cost * 1.3))
    fired = log.index[log["schedule"]]
    assert len(fired) == 4 and all(np.diff(fired).astype("timedelta64[D]").astype(int) == 7)
    assert not log["drift"].any() and not log["performance"].any()


def test_drift_fires_after_the_shift_only() -> None:
    frame = decisions(28, shift_from_day=14)
    reference = frame.loc[frame[rollout.TIME] < frame[rollout.TIME].min() + pd.Timedelta(days=14), "p_champion"]
    log = retrain.trigger_log(frame, reference, 0.3, retrain.Triggers(max_psi=0.1, max_cost=1e9))
    first = retrain.first_firing(log).loc["drift", "first fired"]
    start = frame[rollout.TIME].min().floor("D")
    assert start + pd.Timedelta(days=14) < first <= start + pd.Timedelta(days=17)
    assert not log.loc[log.index <= start + pd.Timedelta(days=14), "drift"].any()


def test_performance_fires_when_cost_degrades_and_waits_for_outcomes() -> None:
    frame = decisions(28, worse_from_day=14)
    reference = frame["p_champion"]
    good = frame[frame[rollout.TIME] < frame[rollout.TIME].min() + pd.Timedelta(days=14)]
    limit = 1.15 * rollout.flight_costs(good["late"], good["p_champion"], 0.3).mean()
    log = retrain.trigger_log(frame, reference, 0.3, retrain.Triggers(max_psi=10, max_cost=limit, min_outcomes=1_000))
    start = frame[rollout.TIME].min().floor("D")
    assert not log.loc[log.index <= start + pd.Timedelta(days=14), "performance"].any()
    assert log.loc[log.index >= start + pd.Timedelta(days=20), "performance"].all()
    # outcomes that are never known by the check: performance cannot fire, drift still could
    late_labels = frame.assign(**{rollout.KNOWN: frame[rollout.KNOWN] + pd.Timedelta(days=100)})
    blind = retrain.trigger_log(late_labels, reference, 0.3, retrain.Triggers(max_psi=10, max_cost=limit, min_outcomes=1_000))
    assert not blind["performance"].any() and (blind["outcomes known"] == 0).all()


# ------------------------------------------------------------------ warm start


def test_warm_start_continues_from_the_init_model(make_flights) -> None:
    flights = make_flights(4_000)
    old = retrain.fit_fresh(flights, seed=1, n_estimators=20, n_jobs=1)
    before = retrain.tree_dumps(old)
    new_rows = make_flights(2_000, seed=7)
    warm = retrain.warm_start(old, new_rows, extra_trees=15, seed=1)
    assert retrain.n_trees(warm) == 35 and retrain.n_trees(old) == 20
    dumps = retrain.tree_dumps(warm)
    assert dumps[:20] == before  # the first trees are the old model's, unchanged
    assert dumps[20:] != dumps[:15]
    assert retrain.tree_dumps(old) == before  # the old model is left as it was
    assert warm.named_steps["prep"] is old.named_steps["prep"]
    # the new trees learn something: the warm model's predictions differ from the old one's
    p_old, p_warm = evaluate.predict(old, new_rows), evaluate.predict(warm, new_rows)
    assert np.abs(p_old - p_warm).max() > 1e-3
    # and the warm model ranks the new rows at least about as well as the old one
    auc = lambda p: stats.mannwhitneyu(p[new_rows["late"] == 1], p[new_rows["late"] == 0]).statistic / (new_rows["late"].sum() * (1 - new_rows["late"]).sum())  # noqa: E731
    assert auc(p_warm) >= auc(p_old) - 0.01


def test_freshness_splits_cut_by_month(make_flights) -> None:
    table = make_flights(1_200, seed=3)
    table["month"] = np.repeat(np.arange(1, 13), 100).astype(float)
    table["sched_dep_utc"] = pd.date_range("2013-01-01", periods=len(table), freq="7h", tz="UTC")
    splits = retrain.freshness_splits(table, 10, fit_rows=500, valid_rows=None)
    assert set(splits["train"]["month"]) == set(range(1, 10)) and len(splits["train"]) == 500
    assert set(splits["valid"]["month"]) == {10} and set(splits["test"]["month"]) == {12}
    with pytest.raises(ValueError, match="through"):
        retrain.freshness_splits(table, 12, None, None)
