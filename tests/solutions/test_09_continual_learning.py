"""The solutions to lesson 09's exercises give the right answers (`02-notebooks/solutions/09_continual_learning.py`).

Exercises 1-3 run on synthetic data with a known answer (`rollout.synthetic_decisions`, a logistic
world for the hold-out); exercise 4 on real December flights from the feature table, scored by a
small model, with no replay.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from mlsys.continual import rollout

THRESHOLDS = {"champion": 0.3, "challenger": 0.3}


def test_exercise_1_salts_move_the_result_of_equal_models(solutions: ModuleType) -> None:
    same = rollout.synthetic_decisions(days=20, flights_per_day=300, skill={"champion": 1.0, "challenger": 1.0}, seed=4)
    table = solutions.exercise_1(same, THRESHOLDS, [f"salt-{i}" for i in range(6)])
    assert len(table) == 6 and table["difference"].nunique() == 6
    direct = rollout.ab_test(same, THRESHOLDS, salt="salt-2")
    assert table.loc["salt-2", "difference"] == direct.difference and table.loc["salt-2", "p_value"] == direct.p_value
    assert (table["p_value_days"] > 0.01).all()  # no salt finds a difference that is not there
    worse = rollout.synthetic_decisions(days=20, flights_per_day=300, skill={"champion": 1.0, "challenger": 0.2}, seed=4)
    assert (solutions.exercise_1(worse, THRESHOLDS, ["a", "b", "c"])["winner"] == "champion").all()


def test_exercise_2_holdout_removes_the_bias_and_costs_more_when_larger(solutions: ModuleType) -> None:
    table = solutions.exercise_2(shares=(0.05, 0.25))
    assert (table["naive bias"] < -0.15).all()
    assert (table["hold-out bias"].abs() < 0.04).all()
    assert table["price per flight"].is_monotonic_increasing
    assert table.loc[0.25, "flagged late not helped"] > 3 * table.loc[0.05, "flagged late not helped"]


def test_exercise_3_tight_tolerance_rolls_back_loose_one_completes(solutions: ModuleType) -> None:
    worse = rollout.synthetic_decisions(days=40, flights_per_day=400, skill={"champion": 1.0, "challenger": 0.6}, seed=2)
    table = solutions.exercise_3(worse, THRESHOLDS, [1.0, 3.0])
    assert table.loc[1.0, "decision"] == "rolled back"
    assert table.loc[3.0, "decision"] == "completed"
    assert isinstance(table, pd.DataFrame) and np.isfinite(table["last cost ratio"]).all()


def test_exercise_4_a_blanked_feed_is_caught_by_the_guard_its_decisions_trip(solutions: ModuleType) -> None:
    """On real December flights with a small model (the champion's recipe, 40 trees): the challenger is
    the champion itself, so blanking nothing changes nothing, and each blanked group's figures agree
    with a direct computation (the model on the blanked rows, the canary on that table)."""
    from mlsys import evaluate, features

    table = features.feature_table()
    train = table[table["split"] == "train"].sample(20_000, random_state=0)
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=0, n_estimators=40, n_jobs=1), train)
    december = table[(table["split"] == "test") & (table["month"] == 12)].sample(4_000, random_state=0)
    p = evaluate.predict(model, december)
    threshold = float(np.quantile(p, 0.7))
    decisions = pd.DataFrame(
        {
            rollout.KEY: december["flight_id"].to_numpy(),
            rollout.TIME: december["decision_time_utc"].to_numpy(),
            rollout.LABEL: december["late"].astype(int).to_numpy(),
            rollout.KNOWN: (december["decision_time_utc"] + pd.Timedelta(hours=5)).to_numpy(),
            "p_champion": p,
            "p_challenger": p,
        }
    )  # in `december`'s row order, so a blanked score lines up by position (the canary sorts by time itself)
    weather = [c for c in features.NUMERIC if c.startswith("wx_")]
    groups = {"nothing": [], "weather": weather, "everything": list(features.NUMERIC)}
    thresholds = {"champion": threshold, "challenger": threshold}
    canary = {"stages": (0.05, 0.25, 0.5, 1.0), "stage_days": 5, "min_outcomes": 50}
    shuffled = decisions.sample(frac=1.0, random_state=1)  # the answer must match flights by key, not by position
    answer = solutions.exercise_4(shuffled, december, lambda rows: evaluate.predict(model, rows), thresholds, groups, **canary)

    assert list(answer.index) == list(groups) and answer.loc["weather", "features blanked"] == len(weather)
    untouched = answer.loc["nothing"]
    # the same scores: the month is identical; the first check compares different flights (each arm's own)
    assert untouched["decision"] == "completed" and untouched["month cost ratio"] == 1.0
    assert untouched["share flagged"] == pytest.approx(float((p >= threshold).mean()))
    for name, columns in groups.items():
        broken = evaluate.predict(model, december.assign(**{c: np.nan for c in columns}))
        assert answer.loc[name, "share flagged"] == pytest.approx(float((broken >= threshold).mean()))
        # the answer's decision is the canary's on that table
        direct = rollout.canary(decisions.assign(p_challenger=broken), thresholds, **canary)
        assert answer.loc[name, "decision"] == direct.decision and answer.loc[name, "ended by"] == direct.timeline["action"].iloc[-1]
    # not vacuous: blanking every numeric feature moves the decisions, and a guard rolls it back
    assert answer.loc["everything", "share flagged"] != pytest.approx(untouched["share flagged"])
    assert answer.loc["everything", "decision"] == "rolled back"
