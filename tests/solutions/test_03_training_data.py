"""The solutions to lesson 03's exercises give the right answers (`02-notebooks/solutions/03_training_data.py`).

Each answer is checked against an independent computation: variances by hand for the design
effect, UTC offsets from the airports' `tz`/`dst` columns instead of IANA time zones for the label
delay, plain masks for the labelling function, counts for the undersampling. Small models and a
small pool keep the file fast.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from mlsys import data, features, imbalance, labeling

SEED = 42
SMALL = {"n_estimators": 20, "learning_rate": 0.2, "max_bin": 63, "n_jobs": 1}


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    s = features.load_splits(fast=True, seed=SEED)
    return {name: df.assign(severe=imbalance.severe_label(df)) for name, df in s.items()}


def test_exercise_1_design_effect_by_hand(solutions: ModuleType, splits) -> None:
    train = splits["train"]
    answer = solutions.exercise_1(train)
    y = train["late"].to_numpy(dtype=float)
    within = sum((g["late"].to_numpy(dtype=float).var() * len(g)) for _, g in train.groupby("origin")) / len(train)
    assert answer["origin"] == pytest.approx(within / y.var())
    assert 0 < answer["congestion decile"] < answer["carrier"] <= answer["origin"] <= 1


def _arrival_by_offsets(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.Series:
    """Landing time in UTC from the airports' fixed offset (`tz`) and DST flag, 2013's US DST dates."""
    ap = airports.set_index("faa")
    extra = pd.DataFrame({"tz": [-4, -4, -4, -4], "dst": ["N"] * 4}, index=["BQN", "PSE", "SJU", "STT"])
    ap = pd.concat([ap[["tz", "dst"]], extra])
    local = pd.to_datetime(flights[["year", "month", "day"]].astype("int64")) + pd.to_timedelta(
        (flights["arr_time"] // 100) * 60 + flights["arr_time"] % 100, unit="min"
    )
    in_dst = (local >= "2013-03-10 02:00") & (local < "2013-11-03 02:00") & (flights["dest"].map(ap["dst"]) == "A").to_numpy()
    offset = flights["dest"].map(ap["tz"]).astype(float) + in_dst.astype(float)
    utc = (local - pd.to_timedelta(offset, unit="h")).dt.tz_localize("UTC")
    utc = utc.where(utc >= flights["actual_dep_utc"], utc + pd.Timedelta(days=1))
    return utc.where(flights["arr_delay"].notna() & ~flights["cancelled"] & ~flights["diverted"])


def test_exercise_2_label_delay_by_utc_offsets(solutions: ModuleType) -> None:
    flights, airports = data.load_flights(), data.load_table("airports")
    answer = solutions.exercise_2(flights, airports, hours=6.0)
    hours = ((_arrival_by_offsets(flights, airports) - (flights["sched_dep_utc"] - features.DECISION_LEAD)).dt.total_seconds() / 3600).dropna()
    assert answer["share_within"] == pytest.approx(float((hours <= 6.0).mean()), abs=0.002)
    assert answer["slowest_dest"] == hours.groupby(flights.loc[hours.index, "dest"]).median().idxmax() == "HNL"


def test_exercise_3_holiday_lf_by_masks(solutions: ModuleType, splits) -> None:
    train = splits["train"]
    answer = solutions.exercise_3(train)
    near = train["days_to_holiday"] <= 1
    assert answer["coverage"] == pytest.approx(near.mean(), abs=0.0005)
    assert answer["accuracy"] == pytest.approx(train.loc[near, "late"].mean(), abs=0.0005)
    assert answer["accuracy"] < train["late"].mean()  # worse than the base rate: a bad heuristic


def test_exercise_4_undersampling_keeps_every_severe_flight(solutions: ModuleType, splits) -> None:
    small = {**splits, "train": splits["train"].iloc[:20_000]}
    answer = solutions.exercise_4(small, ratio=0.25, seed=SEED, **SMALL)
    severe = small["train"].loc[small["train"]["severe"] == 1, "flight_id"]
    assert answer["train_rows"] == len(severe) + round(len(severe) / 0.25)
    assert answer["positive_share"] == pytest.approx(0.2, abs=0.001)
    assert set(severe) <= set(answer["train_ids"]) and answer["train_ids"].is_unique
    assert list(answer["scores"].index) == ["none", "undersample 0.25"]
    assert ((answer["scores"] > 0.05) & (answer["scores"] <= 1)).all().all()


def test_exercise_5_averages_the_runs_of_each_seed(solutions: ModuleType, splits) -> None:
    pool, valid = splits["train"].iloc[:5_000], splits["valid"].iloc[:5_000]
    setup = {"start": 100, "step": 100, "rounds": 2, **SMALL, "min_child_samples": 20}
    answer = solutions.exercise_5(pool, valid, seeds=(1, 2), **setup)
    runs = [labeling.active_learning_curves(pool, valid, seed=seed, **setup) for seed in (1, 2)]
    for strategy in ("random", "uncertainty"):
        per_seed = np.array([r.loc[r["strategy"] == strategy, "roc_auc"].to_numpy() for r in runs])
        np.testing.assert_allclose(answer[("mean", strategy)].to_numpy(), per_seed.mean(axis=0))
        np.testing.assert_allclose(answer[("std", strategy)].to_numpy(), per_seed.std(axis=0, ddof=1))
    assert list(answer.index) == [100, 200, 300]
    # both strategies start from the same random labels
    assert answer.loc[100, ("mean", "random")] == answer.loc[100, ("mean", "uncertainty")]
