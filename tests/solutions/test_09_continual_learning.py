"""The solutions to lesson 09's exercises give the right answers (`02-notebooks/solutions/09_continual_learning.py`).

All three run on synthetic data with a known answer (`rollout.synthetic_decisions`, a logistic world
for the hold-out), so they need neither the feature table nor a replay.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd

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
