"""Point-in-time features against a reference built independently of the feature code.

`test_point_in_time.py` rebuilds features with the feature code itself on a world cut at the
decision time; it cannot catch a wrong availability rule that both share (the weather leak of
feature table v1 passed it). Here the reference is written from the raw CSV files and the sources'
construction rules alone, one flight at a time, with plain filters:

* a flight's decision time T is its scheduled departure (`time_hour` in UTC + `minute`) minus 2 h;
* a flight has departed at `scheduled + dep_delay` (BTS's definition of the departure delay);
* a weather row stamped H is built by nycflights13's `data-raw/weather.R` from the reports of
  minute <= 51, so it is known at H:52 (not at H:00).

Flights are sampled where mistakes hide: aircraft whose previous leg departs at or after T,
decision times between midnight and 04:00 (local), previous legs that left after midnight, and
flights whose weather row of the decision hour is stamped before T but known after it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import data, features

KNOWN_AFTER = pd.Timedelta(minutes=52)  # from weather.R, restated here on purpose
LEAD = pd.Timedelta(hours=2)
PER_CASE = 40


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    raw_dir = data.ensure_raw()
    flights = pd.read_csv(raw_dir / "flights.csv.zip")
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    flights["sched"] = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")
    flights["T"] = flights["sched"] - LEAD
    flights["actual"] = flights["sched"] + pd.to_timedelta(flights["dep_delay"], unit="min")
    weather = pd.read_csv(raw_dir / "weather.csv")
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    # the one row validation quarantines (wind 1,048 mph) is not weather the features may use
    bad = data.load_quarantine("weather")
    weather = weather[~weather.set_index(["origin", "time_hour"]).index.isin(
        list(zip(bad["origin"], pd.to_datetime(bad["time_hour"], utc=True), strict=True))
    )]
    return {"flights": flights, "weather": weather, "table": features.feature_table().set_index("flight_id")}


def _window(frame: pd.DataFrame, mask: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[mask & (frame["actual"] >= start) & (frame["actual"] < end)]


def reference_features(raw: dict[str, pd.DataFrame], flight_id: int) -> dict[str, float]:
    """The dynamic features of one flight, computed from the raw tables as known at its decision time."""
    f, wx = raw["flights"], raw["weather"]
    me = f.loc[flight_id]
    t = me["T"]
    out: dict[str, float] = {}

    station = wx[(wx["origin"] == me["origin"]) & (wx["time_hour"] + KNOWN_AFTER <= t)]
    if len(station):
        row = station.loc[station["time_hour"].idxmax()]
        for col in features.WEATHER_COLUMNS:
            out[f"wx_{col}"] = row[col]
        last3 = station[station["time_hour"] > row["time_hour"] - pd.Timedelta(hours=3)]
        out["wx_precip_3h"] = last3["precip"].sum()
        out["wx_visib_min_3h"] = last3["visib"].min()
        out["wx_age_minutes"] = (t - row["time_hour"]).total_seconds() / 60

    gone = f["actual"].notna()
    hour, three = pd.Timedelta(hours=1), pd.Timedelta(hours=3)
    at_origin = _window(f, gone & (f["origin"] == me["origin"]), t - hour, t)
    out["origin_departures_1h"] = len(at_origin)
    out["origin_delayed_1h"] = float((at_origin["dep_delay"] >= 15).sum())
    out["origin_mean_delay_1h"] = at_origin["dep_delay"].mean()
    at_origin_3h = _window(f, gone & (f["origin"] == me["origin"]), t - three, t)
    out["origin_departures_3h"] = len(at_origin_3h)
    out["origin_mean_delay_3h"] = at_origin_3h["dep_delay"].mean()
    scheduled = ((f["origin"] == me["origin"]) & (f["sched"] >= t - three) & (f["sched"] < t)).sum()
    out["origin_backlog_3h"] = float(scheduled - len(at_origin_3h))
    out["carrier_mean_delay_3h"] = _window(f, gone & (f["carrier"] == me["carrier"]), t - three, t)["dep_delay"].mean()
    to_dest = _window(f, gone & (f["dest"] == me["dest"]), t - three, t)
    out["dest_departures_3h"] = len(to_dest)
    out["dest_mean_delay_3h"] = to_dest["dep_delay"].mean()

    legs = _window(f, gone & (f["tailnum"] == me["tailnum"]), t - pd.Timedelta(hours=24), t) if pd.notna(me["tailnum"]) else f.iloc[:0]
    if len(legs):
        prev = legs.loc[legs["actual"].idxmax()]
        out["tail_prev_dep_delay"] = prev["dep_delay"]
        out["tail_prev_minutes_ago"] = (t - prev["actual"]).total_seconds() / 60
    return {k: float(v) for k, v in out.items()}


def edge_cases(raw: dict[str, pd.DataFrame]) -> dict[str, list[int]]:
    """Flight ids of each kind of flight where a point-in-time rule is easy to get wrong."""
    f = raw["flights"]
    rng = np.random.default_rng(7)
    by_tail = f[f["tailnum"].notna() & f["actual"].notna()].sort_values("actual")
    nxt = by_tail.groupby("tailnum")["actual"].shift(1)  # the aircraft's previous departure
    prev_at_or_after_t = by_tail.index[(nxt >= by_tail["T"]) & (nxt < by_tail["sched"])]
    local_t = f["T"].dt.tz_convert("America/New_York")
    night = f.index[local_t.dt.hour < 4]
    prev_leg = by_tail.groupby("tailnum")["actual"].shift(1)
    prev_local = prev_leg.dt.tz_convert("America/New_York")
    prev_sched_local = by_tail.groupby("tailnum")["sched"].shift(1).dt.tz_convert("America/New_York")
    after_midnight = by_tail.index[prev_local.dt.date > prev_sched_local.dt.date]
    # T within 52 minutes after a weather stamp: the stamped row exists but is not known yet
    into_hour = (f["T"] - f["T"].dt.floor("h")) < KNOWN_AFTER
    unknown_stamp = f.index[into_hour]
    cases = {
        "previous leg departs at or after T": prev_at_or_after_t,
        "decision time 00:00-04:00 local": night,
        "previous leg left after midnight": after_midnight,
        "weather row stamped before T, known after": unknown_stamp,
        "random": f.index,
    }
    return {name: sorted(rng.choice(ids, size=min(PER_CASE, len(ids)), replace=False).tolist()) for name, ids in cases.items()}


def test_every_edge_case_exists_in_the_data(raw: dict[str, pd.DataFrame]) -> None:
    assert all(len(ids) == PER_CASE for ids in edge_cases(raw).values())


def test_features_equal_the_independent_reference(raw: dict[str, pd.DataFrame]) -> None:
    table = raw["table"]
    columns = [c for c in features.DYNAMIC_NUMERIC]
    wrong = []
    for case, ids in edge_cases(raw).items():
        for flight_id in ids:
            want = reference_features(raw, flight_id)
            got = table.loc[flight_id, columns]
            for col in columns:
                w, g = want.get(col, np.nan), float(got[col])
                if not np.isclose(w, g, rtol=1e-9, atol=1e-9, equal_nan=True):
                    wrong.append((case, flight_id, col, w, g))
    assert not wrong, f"{len(wrong)} feature values differ from the reference, e.g. {wrong[:5]}"


def test_the_reference_would_catch_the_stamp_as_known_rule(raw: dict[str, pd.DataFrame]) -> None:
    """The v1 rule (a row is known at its stamp) disagrees with the reference where it matters."""
    f, wx = raw["flights"], raw["weather"]
    ids = edge_cases(raw)["weather row stamped before T, known after"]
    differs = 0
    for flight_id in ids:
        me = f.loc[flight_id]
        station = wx[wx["origin"] == me["origin"]]
        stamped = station.loc[station[station["time_hour"] <= me["T"]]["time_hour"].idxmax(), "time_hour"]
        known = station.loc[station[station["time_hour"] + KNOWN_AFTER <= me["T"]]["time_hour"].idxmax(), "time_hour"]
        differs += stamped != known
    assert differs == len(ids)
