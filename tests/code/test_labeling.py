"""Labelling functions on hand-made rows, the label matrix analysis, and the two vote combiners."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import labeling
from mlsys.labeling import ABSTAIN, LATE, ON_TIME


@pytest.fixture
def rows() -> pd.DataFrame:
    """Four flights: a stormy evening, a calm early morning, a missing-data row, a quiet midday."""
    return pd.DataFrame(
        {
            "carrier": ["EV", "DL", "XX", "UA"],
            "sched_hour": [20.0, 6.0, 12.0, 12.0],
            "wx_precip": [0.1, 0.0, np.nan, 0.0],
            "wx_visib": [10.0, 10.0, np.nan, 10.0],
            "origin_mean_delay_1h": [45.0, -5.0, np.nan, 3.0],
            "origin_backlog_3h": [2.0, 0.0, np.nan, 1.0],
            "tail_prev_dep_delay": [90.0, np.nan, np.nan, 10.0],
        }
    )


def test_rule_lfs_vote_or_abstain(rows: pd.DataFrame) -> None:
    assert labeling.lf_bad_weather(rows).tolist() == [LATE, ABSTAIN, ABSTAIN, ABSTAIN]
    assert labeling.lf_late_evening(rows).tolist() == [LATE, ABSTAIN, ABSTAIN, ABSTAIN]
    assert labeling.lf_early_morning(rows).tolist() == [ABSTAIN, ON_TIME, ABSTAIN, ABSTAIN]
    assert labeling.lf_congested_origin(rows).tolist() == [LATE, ABSTAIN, ABSTAIN, ABSTAIN]
    assert labeling.lf_quiet_origin(rows).tolist() == [ABSTAIN, ON_TIME, ABSTAIN, ABSTAIN]
    assert labeling.lf_late_inbound(rows).tolist() == [LATE, ABSTAIN, ABSTAIN, ABSTAIN]


def test_missing_features_make_every_rule_abstain(rows: pd.DataFrame) -> None:
    train = pd.DataFrame({"carrier": ["EV"] * 100, "late": [1] * 100})
    lfs = labeling.default_lfs(train)
    assert all(lf(rows)[2] == ABSTAIN for lf in lfs.values())


def test_carrier_lf_learns_rates_from_training_rows_only(rows: pd.DataFrame) -> None:
    train = pd.DataFrame({"carrier": ["EV"] * 200 + ["DL"] * 200 + ["UA"] * 200 + ["OO"] * 5})
    y = np.r_[np.ones(120), np.zeros(80), np.ones(20), np.zeros(180), np.ones(60), np.zeros(140), np.ones(5)]
    lf = labeling.CarrierHistoryLF(margin=0.05, min_flights=100).fit(train, y)
    assert lf.high_ == ["EV"] and lf.low_ == ["DL"]  # OO: too few flights to judge
    # UA is average -> abstain; XX was never seen -> abstain
    assert lf(rows).tolist() == [LATE, ON_TIME, ABSTAIN, ABSTAIN]


def test_majority_vote_ties_and_all_abstain_stay_unlabelled() -> None:
    L = np.array(
        [
            [LATE, LATE, ON_TIME],  # 2 vs 1
            [LATE, ON_TIME, ABSTAIN],  # tie
            [ABSTAIN, ABSTAIN, ABSTAIN],  # nobody votes
            [ON_TIME, ABSTAIN, ABSTAIN],  # a single vote decides
        ]
    )
    assert labeling.majority_vote(L).tolist() == [LATE, ABSTAIN, ABSTAIN, ON_TIME]


def test_lf_analysis_coverage_overlap_conflict_accuracy() -> None:
    L = pd.DataFrame({"a": [1, 1, -1, 0], "b": [1, 0, -1, -1], "c": [-1, -1, -1, 0]})
    y = np.array([1, 0, 0, 0])
    table = labeling.lf_analysis(L, y)
    assert table.loc["a", "coverage"] == 0.75
    assert table.loc["a", "overlap"] == 0.75  # rows 0, 1 (b) and 3 (c)
    assert table.loc["a", "conflict"] == 0.25  # row 1: b says on time
    assert table.loc["a", "accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert table.loc["c", "conflict"] == 0.0
    assert table.loc["a", "polarity"] == "0,1"


def test_label_model_trusts_the_lf_that_agrees_with_the_others() -> None:
    # three LFs that agree with one another, and a contrarian that always says the opposite
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500)
    good = np.column_stack([np.where(rng.random(500) < 0.9, truth, 1 - truth) for _ in range(3)])
    L = np.column_stack([good, 1 - truth])
    model = labeling.AccuracyWeightedVote().fit(L)
    assert model.weights_[:3].min() > 0 > model.weights_[3]
    assert (model.predict(L) == truth).mean() > 0.9
    assert model.predict(np.full((1, 4), ABSTAIN)).tolist() == [ABSTAIN]
    assert model.predict_proba(np.full((1, 4), ABSTAIN))[0, 1] == 0.5


def test_weak_label_scores_ignore_uncovered_rows() -> None:
    scores = labeling.weak_label_scores(np.array([1, 0, 1, 0]), np.array([1, 1, -1, -1]))
    assert scores == {"coverage": 0.5, "accuracy": 0.5, "precision": 0.5, "recall": 1.0, "late_share": 1.0}


def test_arrival_is_localised_at_the_destination_and_wraps_past_midnight() -> None:
    flights = pd.DataFrame(
        {
            "year": [2013, 2013, 2013],
            "month": [7, 7, 1],
            "day": [1, 1, 1],
            "dest": ["LAX", "SJU", "LAX"],
            "arr_time": [1000.0, 130.0, np.nan],
            "arr_delay": [0.0, 5.0, np.nan],
            "actual_dep_utc": pd.to_datetime(["2013-07-01 13:00", "2013-07-02 01:30", "2013-01-01 12:00"], utc=True),
            "cancelled": [False, False, True],
            "diverted": [False, False, False],
        }
    )
    airports = pd.DataFrame({"faa": ["LAX"], "tzone": ["America/Los_Angeles"]})
    arrival = labeling.actual_arrival_utc(flights, airports)
    assert arrival[0] == pd.Timestamp("2013-07-01 17:00", tz="UTC")  # 10:00 PDT
    assert arrival[1] == pd.Timestamp("2013-07-02 05:30", tz="UTC")  # 01:30 in Puerto Rico, the next day
    assert pd.isna(arrival[2])  # cancelled: no landing, no label time
