"""Point-in-time correctness of the features: nothing known only after the decision time leaks in.

The property test rebuilds, for random flights, the world as it was known at the flight's decision
time t0 (every schedule, but outcomes only of flights that had departed before t0 and weather
stamped up to t0) and checks that every feature comes out the same as when computed, with the
same code, from the full year. The rebuild uses only the flights around t0, for speed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsys import data, features, warehouse
from mlsys.features import CATEGORICAL, DECISION_LEAD, FEATURES, NUMERIC, POST_DECISION_COLUMNS

#: Flights scheduled in [t0 - BEFORE, t0 + AFTER] are enough to compute every feature at t0:
#: the aircraft's previous departure is looked for in the 24 h before t0 and may have been
#: scheduled up to a day before that (delays reach ~22 h); the flight's own scheduled hour, whose
#: departures are counted, ends before t0 + 3 h.
BEFORE, AFTER = pd.Timedelta(days=2), pd.Timedelta(hours=3)


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    flights = data.load_flights()
    flights["flight_id"] = np.arange(len(flights))  # as in features.build_features / feature_table
    # the reference: today's code on the whole year, outcomes after every decision time included
    table = features.build_features(flights, data.load_table("weather"), data.load_table("planes")).set_index("flight_id")
    return {
        "flights": flights,
        "weather": data.load_table("weather"),
        "planes": data.load_table("planes"),
        "features": table,
    }


def features_as_known_at_decision(world: dict[str, pd.DataFrame], flight_id: int) -> tuple[pd.Series, pd.DataFrame]:
    """One flight's features rebuilt from the flights around its decision time t0, as known at t0."""
    flights = world["flights"]
    t0 = flights.loc[flight_id, "sched_dep_utc"] - DECISION_LEAD
    sched = flights["sched_dep_utc"]
    window = flights.loc[(sched >= t0 - BEFORE) & (sched <= t0 + AFTER)]
    wx = world["weather"]
    wx = wx.loc[wx["time_hour"] >= t0 - BEFORE]
    known_flights, known_weather = warehouse.as_known_at(window, wx, t0)
    rebuilt = features.build_features(known_flights, known_weather, world["planes"]).set_index("flight_id")
    return rebuilt.loc[flight_id], known_flights


def assert_same_features(got: pd.Series, want: pd.Series) -> None:
    for col in CATEGORICAL:
        assert str(got[col]) == str(want[col]), col
    g = got[NUMERIC].astype("float64").to_numpy()
    w = want[NUMERIC].astype("float64").to_numpy()
    # rolling weather sums may differ in the last bits when computed over a shorter history
    close = np.isclose(g, w, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert close.all(), {c: (a, b) for c, a, b, ok in zip(NUMERIC, g, w, close) if not ok}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0, max_value=336_775))
def test_features_only_use_what_is_known_at_decision_time(world, position):
    flight_id = int(world["flights"]["flight_id"].iloc[position])
    got, known = features_as_known_at_decision(world, flight_id)
    # the flight's own outcome was really hidden from the rebuild
    me = known.set_index("flight_id").loc[flight_id]
    assert pd.isna(me["dep_delay"]) and pd.isna(me["actual_dep_utc"])
    assert_same_features(got, world["features"].loc[flight_id])


def test_as_known_at_hides_the_future_and_keeps_the_schedule(world):
    flights = world["flights"].iloc[:3000]
    t0 = flights["sched_dep_utc"].iloc[1500]
    known, wx = warehouse.as_known_at(flights, world["weather"], t0)
    assert len(known) == len(flights)
    assert known["sched_dep_utc"].equals(flights["sched_dep_utc"])  # the schedule is public
    assert (known["actual_dep_utc"].dropna() < t0).all()
    future = known["actual_dep_utc"].isna()
    assert future.sum() > 0 and (~future).sum() > 0
    for col in POST_DECISION_COLUMNS:
        if col in ("cancelled", "diverted"):
            assert not known.loc[future, col].any()
        else:
            assert known.loc[future, col].isna().all(), col
    assert wx["time_hour"].max() <= t0
    # what had departed keeps its outcome
    past = flights["actual_dep_utc"] < t0
    assert known.loc[past, "dep_delay"].equals(flights.loc[past, "dep_delay"].astype("float64"))


def _features(flights: pd.DataFrame, world: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return features.build_features(flights, world["weather"], world["planes"]).set_index("flight_id")[FEATURES]


def test_own_departure_never_counts_in_own_features(world):
    flights = world["flights"]
    # one busy day at one airport: plenty of departures in every flight's windows
    day = flights.loc[(flights["month"] == 6) & (flights["day"] == 14) & (flights["origin"] == "EWR")]
    reference = _features(day, world)
    for flight_id in day.loc[day["actual_dep_utc"].notna(), "flight_id"].iloc[[60, 150]]:
        row = day["flight_id"] == flight_id
        # the earliest departure validation allows (120 min early) is exactly the decision time
        earliest = day.copy()
        earliest.loc[row, "dep_delay"] = -120.0
        earliest.loc[row, "actual_dep_utc"] = earliest.loc[row, "sched_dep_utc"] - DECISION_LEAD
        # and a version in which the flight never departs at all
        never = day.copy()
        never.loc[row, "dep_delay"] = np.nan
        never.loc[row, "actual_dep_utc"] = pd.NaT
        moved = _features(earliest, world)
        assert_same_features(moved.loc[flight_id], reference.loc[flight_id])
        assert_same_features(_features(never, world).loc[flight_id], reference.loc[flight_id])
        # sanity: moving the departure does change other flights' windows, so it was seen at all
        assert not moved.drop(index=flight_id).equals(reference.drop(index=flight_id))
