"""Natural labels: arrival times in the destination's time zone, and a join that never looks ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsys import data
from mlsys.monitor import labels

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def test_an_arrival_after_midnight_at_the_destination_lands_the_next_day() -> None:
    # leaves JFK 19:00 New York (23:00 UTC), lands at LAX 22:10 Los Angeles = 05:10 UTC next day
    got = labels.local_clock_after(pd.Series([ts("2013-09-10 23:00")]), pd.Series([2210]), pd.Series(["America/Los_Angeles"]))
    assert got.iloc[0] == ts("2013-09-11 05:10")
    # leaves 22:00 New York (02:00 UTC), lands in Chicago 00:30 local = 05:30 UTC
    got = labels.local_clock_after(pd.Series([ts("2013-09-11 02:00")]), pd.Series([30]), pd.Series(["America/Chicago"]))
    assert got.iloc[0] == ts("2013-09-11 05:30")


def test_the_hour_the_clocks_go_back_takes_the_first_reading_after_departure() -> None:
    # VX 413 on 2 November 2013: left JFK 02:17 UTC, arr_time 0114 in Los Angeles, the night clocks went back
    got = labels.local_clock_after(pd.Series([ts("2013-11-03 02:17")]), pd.Series([114]), pd.Series(["America/Los_Angeles"]))
    assert got.iloc[0] == ts("2013-11-03 08:14")  # 01:14 PDT; 01:14 PST (09:14 UTC) is an hour later


def flights_frame() -> pd.DataFrame:
    """Three flights to Denver: one lands, one is cancelled, one diverted without an arrival time."""
    sched = pd.Series([ts("2013-12-01 14:00")] * 3)
    return pd.DataFrame(
        {
            "flight_id": [1, 2, 3],
            "dest": ["DEN"] * 3,
            "sched_dep_utc": sched,
            "actual_dep_utc": [ts("2013-12-01 14:30"), pd.NaT, ts("2013-12-01 14:05")],
            "arr_time": [950, np.nan, np.nan],  # 09:50 Denver = 16:50 UTC
            "sched_arr_time": [920, 920, 920],
            "arr_delay": [30.0, np.nan, np.nan],
            "cancelled": [False, True, False],
            "diverted": [False, False, True],
            "late": [1, 1, 1],
        }
    )


def test_outcomes_know_landed_cancelled_and_diverted_flights_at_the_right_time() -> None:
    airports = pd.DataFrame({"faa": ["DEN"], "tzone": ["America/Denver"]})
    out = labels.flight_outcomes(flights_frame(), airports).set_index("flight_id")
    assert out.loc[1, "label_known_at"] == ts("2013-12-01 16:50")
    assert out.loc[2, "label_known_at"] == ts("2013-12-01 14:00")
    assert out.loc[3, "label_known_at"] == ts("2013-12-01 16:20")  # the scheduled arrival
    assert out["known_by"].tolist() == [labels.KNOWN_LANDED, labels.KNOWN_CANCELLED, labels.KNOWN_DIVERTED_SCHEDULED]


def test_a_destination_without_a_time_zone_is_named() -> None:
    with pytest.raises(ValueError, match="DEN"):
        labels.flight_outcomes(flights_frame(), pd.DataFrame({"faa": ["ORD"], "tzone": ["America/Chicago"]}))


@pytest.fixture(scope="module")
def outcomes_2013() -> pd.DataFrame:
    flights = data.load_flights()
    return labels.flight_outcomes(flights, data.load_table("airports")).merge(flights[["flight_id", "air_time"]], on="flight_id")


def test_no_real_flight_is_known_to_have_landed_before_it_could_have(outcomes_2013: pd.DataFrame) -> None:
    landed = outcomes_2013[outcomes_2013["known_by"] == labels.KNOWN_LANDED]
    block = (landed["arrival_utc"] - landed["actual_dep_utc"]).dt.total_seconds() / 60
    # gate to gate is the time in the air plus taxiing: never less, and never a day more
    assert (block >= landed["air_time"]).all()
    assert (block - landed["air_time"] < 6 * 60).all()
    assert (outcomes_2013["label_known_at"] >= outcomes_2013["sched_dep_utc"] - pd.Timedelta(minutes=60)).all()
    assert outcomes_2013["label_known_at"].notna().all()


def random_log(seed: int, n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = ts("2013-11-01")
    decision = start + pd.to_timedelta(rng.uniform(0, 96, n), unit="h")
    known = decision + pd.to_timedelta(rng.uniform(2, 30, n), unit="h")
    log = pd.DataFrame({"flight_id": np.arange(n), "decision_time": decision.tz_localize(None), "probability": rng.uniform(size=n)})
    log.loc[n - 5 :, "flight_id"] = None  # /score rows: no flight, never a label
    outcomes = pd.DataFrame({"flight_id": np.arange(n), "late": rng.integers(0, 2, n), "label_known_at": known})
    return log, outcomes


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), hours=st.floats(0, 140))
def test_the_label_join_never_uses_an_outcome_before_it_is_known(seed: int, hours: float) -> None:
    log, outcomes = random_log(seed)
    clock = ts("2013-11-01") + pd.Timedelta(hours=hours)
    joined = labels.join_labels(log, outcomes, clock)
    assert (joined["decision_time"] <= clock).all()
    assert len(joined) == int((pd.to_datetime(log["decision_time"]).dt.tz_localize(UTC) <= clock).sum())
    known_at = joined["flight_id"].map(outcomes.set_index("flight_id")["label_known_at"])
    assert (known_at[joined["labelled"]] <= clock).all()
    assert not joined.loc[known_at.isna(), "labelled"].any()
    assert joined.loc[known_at.notna() & (known_at <= clock), "labelled"].all()  # and every known label is used
    truth = joined.loc[joined["labelled"], "flight_id"].map(outcomes.set_index("flight_id")["late"])
    assert (joined.loc[joined["labelled"], "late"].astype(int) == truth).all()


def test_feedback_loop_summarises_hours_from_decision_to_label() -> None:
    airports = pd.DataFrame({"faa": ["DEN"], "tzone": ["America/Denver"]})
    table = labels.feedback_loop(labels.flight_outcomes(flights_frame(), airports))
    assert table.loc["cancelled", "median h"] == 2.0  # decided 2 h before the scheduled departure
    assert table.loc["landed", "median h"] == pytest.approx(4 + 50 / 60, abs=0.01)
    assert table.loc["all flights", "flights"] == 3
