"""The peer's set-up leaks and ours does not: rows, predictors and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.config import get_settings
from mlsys import data, features, leakage

UTC = "UTC"


def hand_made_flights() -> pd.DataFrame:
    """Eight flights, each testing one of the tutorial's row rules."""
    t = pd.Timestamp("2013-03-05 15:00", tz=UTC)
    rows = [
        # dep_time, air_time, arr_delay, tailnum, origin, time_hour, why
        (1503, 120.0, 30.0, "N1", "JFK", t, "kept, late: 30 min counts"),
        (1501, 118.0, 29.0, "N2", "JFK", t, "kept, on time: 29 min"),
        (None, None, None, "N3", "JFK", t, "cancelled: no dep_time -> dropped"),
        (1510, None, None, "N4", "JFK", t, "diverted: no arr_delay -> dropped"),
        (1520, None, 45.0, "N5", "EWR", t, "no air_time -> dropped"),
        (1502, 100.0, 50.0, None, "EWR", t, "no tail number: not a used column -> kept"),
        (1504, 100.0, 5.0, "N7", "LGA", t, "no weather at LGA that hour -> dropped"),
        (2300, 100.0, 5.0, "N8", "JFK", pd.Timestamp("2013-01-01 03:00", tz=UTC), "kept; local date 2012-12-31"),
    ]
    frame = pd.DataFrame(rows, columns=["dep_time", "air_time", "arr_delay", "tailnum", "origin", "time_hour", "why"])
    frame["dep_time"] = frame["dep_time"].astype("Int64")
    frame["sched_dep_time"] = pd.array([1500] * 7 + [2259], dtype="Int64")
    frame["flight"] = pd.array(range(1, 9), dtype="Int64")
    frame["dest"] = pd.Series(["BOS"] * 8, dtype="string")
    frame["carrier"] = pd.Series(["B6"] * 8, dtype="string")
    frame["distance"] = 187.0
    return frame


def hand_made_weather() -> pd.DataFrame:
    t = pd.Timestamp("2013-03-05 15:00", tz=UTC)
    return pd.DataFrame(
        {
            "origin": ["JFK", "EWR", "LGA", "JFK"],
            "time_hour": [t, t, t - pd.Timedelta(hours=1), pd.Timestamp("2013-01-01 03:00", tz=UTC)],
            "temp": [40.0, 41.0, 39.0, 30.0],
        }
    )


def test_peer_frame_follows_the_tutorials_row_rules() -> None:
    flights = hand_made_flights()
    out = leakage.peer_frame(flights, hand_made_weather())
    kept = flights.loc[out["flight_id"], "why"].tolist()
    assert kept == [
        "kept, late: 30 min counts",
        "kept, on time: 29 min",
        "no tail number: not a used column -> kept",
        "kept; local date 2012-12-31",
    ]
    assert out["late"].tolist() == [1, 0, 1, 0]
    assert out["date"].tolist()[-1] == pd.Timestamp("2012-12-31")
    assert "temp" not in out.columns  # the join only filters
    assert out["split"].tolist() == ["train"] * 4


def test_peer_frame_on_the_real_data_matches_the_tutorial(peer: pd.DataFrame) -> None:
    assert len(peer) == leakage.TUTORIAL["rows"]
    assert round(peer["late"].mean(), 3) == leakage.TUTORIAL["late_rate"]


def test_leak_free_predictors_contain_no_post_decision_column(peer: pd.DataFrame) -> None:
    sample = peer.head(100)
    leaky = set(leakage.peer_predictors(sample, leaky=True).columns)
    honest = set(leakage.peer_predictors(sample, leaky=False).columns)
    post = set(features.POST_DECISION_COLUMNS)
    assert {"dep_time", "air_time"} <= leaky & post  # the check can fail: the leaky set has them
    assert not honest & post
    assert not set(features.FEATURES) & post


def test_holidays_are_the_federal_ones_of_2013() -> None:
    holidays = leakage.holiday_dates()
    assert len(holidays) == 10
    assert list(holidays["holiday_thanksgiving_day"]) == [pd.Timestamp("2013-11-28")]


@pytest.fixture(scope="module")
def peer() -> pd.DataFrame:
    return leakage.peer_frame(data.load_flights(), data.load_table("weather"))


def test_leaky_setup_scores_higher_than_leak_free(peer: pd.DataFrame) -> None:
    sample = peer.sample(40_000, random_state=0).sort_values("flight_id")
    leaky = leakage.evaluate_peer(sample, leaky=True, split="random", seed=0)
    same_split = leakage.evaluate_peer(sample, leaky=False, split="random", seed=0)
    honest = leakage.evaluate_peer(sample, leaky=False, split="time", seed=0)
    # the actual departure time and air time carry part of the delay itself ...
    assert leaky["roc_auc"] > same_split["roc_auc"] + 0.02
    # ... and a model judged on the months after its training data looks worse still
    assert honest["roc_auc"] < same_split["roc_auc"]
    assert np.intersect1d(leaky["test_ids"], honest["test_ids"]).size > 0


# --------------------------------------------------------------------------- missingness proxies


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return features.feature_table()


def test_no_current_feature_is_a_missingness_proxy_for_either_label(table: pd.DataFrame) -> None:
    assert leakage.missingness_proxies(table, features.FEATURES, "late") == []
    flown = table.assign(late30=features.peer_label(table))
    assert leakage.missingness_proxies(flown, features.FEATURES, "late30") == []


def test_the_retired_tail_count_is_found_when_rebuilt(table: pd.DataFrame) -> None:
    rebuilt = table.assign(tail_flights_before_today=leakage.tail_flights_before_today(table))
    # the feature is missing exactly for the flights without a tail number, all of them cancelled
    assert rebuilt["tail_flights_before_today"].isna().equals(table["tailnum"].isna())
    assert table.loc[table["tailnum"].isna(), "late"].eq(1).all()
    assert leakage.missingness_proxies(rebuilt, [*features.FEATURES, "tail_flights_before_today"], "late") == ["tail_flights_before_today"]


def test_missingness_check_flags_a_perfect_gap_and_spares_an_informative_one() -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    y = (rng.random(n) < 0.3).astype(float)
    frame = pd.DataFrame({"y": y, "proxy": np.where(y == 1, np.nan, 1.0), "informative": np.where(rng.random(n) < np.where(y == 1, 0.5, 0.1), np.nan, 1.0)})
    # a few gaps in a rare group: too few rows to call it a proxy
    frame["few"] = 1.0
    frame.loc[frame.index[y == 1][:10], "few"] = np.nan
    table = leakage.missingness_table(frame, ["proxy", "informative", "few"], "y")
    assert table["proxy"].to_dict() == {"proxy": True, "informative": False, "few": False}
    # "proxy" is missing for every late row: its *present* rows are all on time, and that side is flagged too
    assert table.loc["proxy", "y rate if missing"] == 1.0
    assert leakage.missingness_table(frame, ["y"], "y").empty


# --------------------------------------------------------------------------- groups and lineage


def test_split_overlap_counts_shared_days_aircraft_and_flights() -> None:
    day = pd.Timestamp("2013-05-01 08:00")
    frame = pd.DataFrame(
        {
            "sched_dep_local": [day, day + pd.Timedelta(days=1), day, day + pd.Timedelta(days=2)],
            "tailnum": ["N1", "N2", "N2", "N9"],
            "carrier": ["AA"] * 4,
            "flight": [1, 2, 1, 3],
            "route": ["JFK-BOS"] * 4,
        }
    )
    overlap = leakage.split_overlap(frame.iloc[:2], frame.iloc[2:])
    assert overlap == {"same day in train": 0.5, "same aircraft in train": 0.5, "same scheduled flight in train": 0.5}


def test_a_random_split_shares_days_and_scores_higher_than_one_that_keeps_days_whole(table: pd.DataFrame) -> None:
    result = leakage.group_leakage_table(table, n_rows=16_000, seed=0)
    random, by_day = result.iloc[0], result.iloc[1]
    assert random["same day in train"] == 1.0
    assert by_day["same day in train"] == 0.0
    assert random["roc_auc"] > by_day["roc_auc"]


def test_course_splits_share_no_day() -> None:
    splits = features.load_splits(fast=True, seed=42)
    for part in ("valid", "test"):
        assert leakage.split_overlap(splits["train"], splits[part])["same day in train"] == 0.0


def test_lineage_names_raw_checksums_feature_version_and_rows() -> None:
    splits = features.load_splits(fast=True, seed=42)
    lineage = leakage.lineage_table(splits, fast=True, seed=42)
    sums = data.expected_checksums(data.ensure_raw())
    raw = lineage.loc["raw file"]
    assert {f"sha256 {sums[name][:12]}" for name in raw["artefact"]} == set(raw["identified by"])
    assert lineage.loc["feature table", "identified by"] == f"code {features.FEATURE_VERSION} + input checksums + rules"
    assert lineage.loc["feature table", "artefact"] == features.feature_cache_path(get_settings()).name
    assert lineage.loc["split: test", "rows"] == f"{len(splits['test']):,}"
    assert len({lineage.loc[f"split: {name}", "identified by"] for name in splits}) == 3
