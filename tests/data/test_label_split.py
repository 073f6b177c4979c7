"""Label and time split on the real flights."""

import pandas as pd

from mlsys import data


def test_time_split_has_no_overlap_and_keeps_every_row() -> None:
    flights = data.load_flights()
    bounds = flights.groupby("split")["sched_dep_local"].agg(["min", "max"])
    assert bounds.loc["train", "max"] < bounds.loc["valid", "min"]
    assert bounds.loc["valid", "max"] < bounds.loc["test", "min"]
    assert bounds.loc["test", "min"] >= pd.Timestamp("2013-11-01")
    assert flights["split"].value_counts().sum() == len(flights) == 336_776


def test_label_counts_disruptions_as_late_explicitly() -> None:
    flights = data.load_flights()
    disrupted = flights["cancelled"] | flights["diverted"]
    assert disrupted.sum() == 8_255 + 1_175
    assert (flights.loc[disrupted, "late"] == 1).all()
    flown = flights.loc[~disrupted]
    assert ((flown["arr_delay"] >= 15) == (flown["late"] == 1)).all()


def test_label_can_leave_disruptions_unlabelled() -> None:
    frame = pd.DataFrame({"dep_time": [600, None, 700], "arr_delay": [30.0, None, None]})
    labelled = data.add_label(frame, threshold=30, disrupted_as_late=False)
    assert labelled["late"].iloc[0] == 1 and labelled["late"].iloc[1:].isna().all()


def test_schedule_times_use_utc_time_hour() -> None:
    flights = data.load_flights()
    first = flights.iloc[0]
    # 2013-01-01 05:15 local (EST, UTC-5) is 10:15 UTC
    assert first["sched_dep_local"] == pd.Timestamp("2013-01-01 05:15")
    assert first["sched_dep_utc"] == pd.Timestamp("2013-01-01 10:15", tz="UTC")
    assert first["actual_dep_utc"] == pd.Timestamp("2013-01-01 10:17", tz="UTC")
