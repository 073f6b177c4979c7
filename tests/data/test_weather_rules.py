"""Lesson 02's helpers: which weather row each availability rule picks, the OLTP/OLAP comparison, ELT."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlsys import warehouse


def test_stamped_rule_reads_a_row_before_it_is_known() -> None:
    weather = pd.DataFrame(
        {
            "origin": ["LGA"] * 3,
            "time_hour": pd.to_datetime(["2013-12-10 06:00", "2013-12-10 07:00", "2013-12-10 08:00"], utc=True),
            "precip": [0.0, 0.0, 0.1],
            "visib": [10.0, 2.5, 0.5],
        }
    )
    departures = pd.to_datetime(["2013-12-10 10:00", "2013-12-10 10:55", "2013-12-10 10:51"], utc=True)
    flights = pd.DataFrame({"flight_id": [1, 2, 3], "origin": "LGA", "sched_dep_utc": departures, "split": "test"})
    rules = warehouse.weather_by_rule(flights, weather)
    # decided at 08:00: the 08:00 row is stamped but known only at 08:52
    assert rules.loc[1, "stamped_time"] == weather["time_hour"][2] and rules.loc[1, "known_time"] == weather["time_hour"][1]
    assert rules.loc[1, "reads_future"]
    # decided at 08:55: the 08:00 row is known, both rules agree
    assert rules.loc[2, "stamped_time"] == rules.loc[2, "known_time"] == weather["time_hour"][2]
    assert not rules.loc[2, "reads_future"]
    # decided at 08:51: one minute short
    assert rules.loc[3, "reads_future"]
    summary = warehouse.weather_rule_summary(rules)
    assert summary.loc["test", "stamped row not yet known (share)"] == round(2 / 3, 4)


def test_elt_loads_raw_rows_and_filters_in_sql(tmp_path: Path) -> None:
    raw = tmp_path / "weather.csv"
    raw.write_text(
        "origin,time_hour,precip,visib,wind_speed\n"
        "EWR,2013-01-01T06:00:00Z,0,10,10.4\n"
        "EWR,2013-01-01T07:00:00Z,0,10,1048.4\n"
        "EWR,2013-01-01T08:00:00Z,NA,10,NA\n"
    )
    counts = warehouse.elt_weather(raw, max_wind_speed=150)["rows"]
    assert counts.to_dict() == {"weather_raw": 3, "weather_clean": 2}


def test_a_key_lookup_reads_one_row_and_an_aggregate_all() -> None:
    eng = warehouse.connect("sqlite://")
    warehouse.create_schema(eng)
    flights = pd.DataFrame(
        {
            "flight_id": [0, 1, 2], "year": 2013, "month": 1, "day": 1, "dep_time": [517, 533, None], "sched_dep_time": 515,
            "dep_delay": [2.0, 4.0, None], "arr_time": [830, 850, None], "sched_arr_time": 819, "arr_delay": [11.0, 20.0, None],
            "carrier": ["UA", "UA", "AA"], "flight": [1545, 1714, 1141], "tailnum": ["N14228", "N24211", None], "origin": "EWR",
            "dest": "IAH", "air_time": [227.0, 227.0, None], "distance": 1400.0, "hour": 5, "minute": 15,
            "time_hour": pd.Timestamp("2013-01-01 10:00"),
        }
    )
    with eng.begin() as conn:
        flights.to_sql("flights", conn, if_exists="append", index=False)
    table = warehouse.oltp_vs_olap(eng, flight_id=1, repeat=1)
    assert table["access path"].tolist() == ["index lookup", "full scan"]
    assert table["rows read"].tolist() == [1, 3]
    assert table["rows returned"].tolist() == [1, 2]
