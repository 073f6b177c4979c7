"""Train/serve consistency: the online store's aggregates equal the offline feature table's.

A week of November departures is replayed in event time through the Redis Stream (XADD), folded in
by the consumer group (XREADGROUP, with a 26 h retention as a live store would keep), and 1,000
flights are read at their own decision times, each seeing only the departures before it. Every
value must equal `features.feature_table()`'s (built by `features.build_features`, in pandas): on
the embedded Redis and on the Redis server.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.featurestore import offline, online

N_FLIGHTS = 1_000
START, END = pd.Timestamp("2013-11-01", tz="UTC"), pd.Timestamp("2013-11-08", tz="UTC")
RETENTION = 26 * 3600  # the longest window (24 h) plus slack


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_online_aggregates_equal_the_offline_table(backend, table, flights, tmp_path, store_factory):
    week = flights.loc[(flights["actual_dep_utc"] >= START) & (flights["actual_dep_utc"] < END)]
    events = offline.departure_events(week)
    sample = offline.consistency_sample(table, START, END, N_FLIGHTS)
    with store_factory(backend, tmp_path, RETENTION) as store:
        got = online.replay(store, events, sample)
        size = store.size()
    want = offline.feature_rows(got.index, table=table)

    result = offline.compare(got, want)
    assert len(got) == N_FLIGHTS
    assert (result["equal"] == N_FLIGHTS).all(), result
    assert (result["max abs diff"] == 0).all(), result
    # every departure before the last decision time went through the stream and was folded in
    assert size["unconsumed"] == 0
    assert size["stream entries"] == int((events["actual_dep_utc"] < sample["decision_time_utc"].max()).sum())
    # not vacuous: the windows hold departures, and most aircraft flew in the previous 24 h
    assert (got["origin_departures_3h"] > 0).mean() > 0.8
    assert got["tail_prev_dep_delay"].notna().mean() > 0.5


def test_a_wrong_window_is_caught(table, flights, tmp_path, store_factory):
    """The comparison can fail: reading 2 h windows where the table has 3 h ones differs."""
    week = flights.loc[(flights["actual_dep_utc"] >= START) & (flights["actual_dep_utc"] < END)]
    sample = offline.consistency_sample(table, START, END, 200)
    with store_factory("embedded", tmp_path) as store:
        store.publish(offline.departure_events(week))
        store.consume()
        shifted = sample.assign(decision_time_utc=sample["decision_time_utc"] - pd.Timedelta(hours=1))
        got = store.features(shifted).set_index(sample["flight_id"].to_numpy())
    result = offline.compare(got, offline.feature_rows(got.index, table=table))
    assert (result["equal"] < len(sample)).any()
    assert np.isfinite(result["max abs diff"]).all()
