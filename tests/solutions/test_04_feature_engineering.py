"""The solutions to lesson 04's exercises give the right answers (`02-notebooks/solutions/04_feature_engineering.py`).

Every answer is checked against an independent computation (plain pandas, the collision formula)
or a property a wrong answer would break.
"""

from __future__ import annotations

from types import ModuleType

import pandas as pd
import pytest

from mlsys import data, features, pipeline

SEED = 42


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return features.load_splits(fast=True, seed=SEED)


def test_exercise_1_gaps_stand_for_bad_weather_and_early_mornings(solutions: ModuleType, splits) -> None:
    train = splits["train"]
    answer = solutions.exercise_1(train)
    missing = train["wx_pressure"].isna()
    assert answer.loc[("wx_pressure", "missing"), "flights"] == missing.sum()
    assert answer.loc[("wx_pressure", "missing"), "mean visibility (miles)"] == pytest.approx(train.loc[missing, "wx_visib"].mean(), abs=0.005)
    # the two claims of the lesson: poor weather where the pressure is missing, early hours where the carrier has not flown
    assert answer.loc[("wx_pressure", "missing"), "share with visibility < 3 miles"] > 3 * answer.loc[("wx_pressure", "present"), "share with visibility < 3 miles"]
    assert answer.loc[("wx_pressure", "missing"), "mean humidity (%)"] > answer.loc[("wx_pressure", "present"), "mean humidity (%)"]
    assert answer.loc[("carrier_mean_delay_3h", "missing"), "median scheduled hour"] < answer.loc[("carrier_mean_delay_3h", "present"), "median scheduled hour"] - 4
    assert answer.loc[("carrier_mean_delay_3h", "missing"), "late rate"] == pytest.approx(train.loc[train["carrier_mean_delay_3h"].isna(), "late"].mean(), abs=1e-4)


def test_exercise_2_flags_the_columns_missing_only_for_disrupted_flights(solutions: ModuleType) -> None:
    flights = data.load_flights()
    answer = solutions.exercise_2(flights)
    late = flights["late"].astype(float)
    # independently: a column whose gaps are (at least 30 rows and) all late gives the label away
    expected = [c for c in solutions.RAW_COLUMNS if flights[c].isna().sum() >= 30 and late[flights[c].isna()].mean() == 1.0]
    assert sorted(answer["flagged"]) == sorted(expected)
    assert {"dep_time", "arr_delay", "air_time", "tailnum"} <= set(answer["flagged"])
    assert "distance" not in answer["flagged"]
    assert answer["flagged and known before departure"] == ["tailnum"]


def test_exercise_3_a_split_keeps_whole_only_the_group_it_is_told(solutions: ModuleType, splits) -> None:
    answer = solutions.exercise_3(splits["train"], seed=SEED)
    assert answer.loc["same aircraft in train", "aircraft kept whole"] == 0.0
    assert answer.loc["same aircraft in train", "random"] > 0.9
    assert answer.loc["same day in train", "aircraft kept whole"] > 0.99
    assert answer.loc["same day in train", "random"] > 0.99


def test_exercise_4_smallest_width_below_ten_percent(solutions: ModuleType, splits) -> None:
    train = splits["train"]
    answer = solutions.exercise_4(train)
    m = answer["columns"]
    half = pipeline.hash_collisions(train, sizes=(m // 2,))
    assert answer["measured share"] < 0.10 <= float(half["tokens sharing a column"].iloc[0])
    n = answer["tokens"]
    assert answer["formula"] == pytest.approx(1 - (1 - 1 / m) ** (n - 1))
    assert answer["formula"] == pytest.approx(answer["measured share"], abs=0.02)


def test_exercise_5_one_flipped_label_changes_only_the_training_fingerprint(solutions: ModuleType, splits) -> None:
    assert solutions.exercise_5(splits, seed=SEED) == ["split: train"]
