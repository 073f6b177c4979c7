"""Solutions to lesson 10's exercises (`02-notebooks/10_infrastructure.ipynb`)."""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient

from mlsys import features
from mlsys.featurestore import online


# Exercise 1: one more online feature, read from the same sorted sets.
def origin_delayed_3h(store: online.OnlineStore, queries: pd.DataFrame) -> pd.Series:
    """Departures from the flight's origin in [t - 3 h, t) that left at least 15 minutes late."""
    keys = online.query_keys(queries)
    pipe = store.conn.pipeline(transaction=False)
    for origin, _, _, _, t0 in keys:
        pipe.zrangebyscore(store.key("origin", origin), t0 - 3 * online.HOUR, f"({t0}")
    answers = pipe.execute()
    counts = [sum(float(m.rsplit(b"|", 1)[1]) >= features.DELAYED_MINUTES for m in found) for found in answers]
    return pd.Series(counts, index=queries.index, dtype="float64", name="origin_delayed_3h")


# Exercise 2: what differs between two registered versions' lineage.
def version_diff(name: str, a: str, b: str, prefixes: tuple[str, ...] = ("lineage.", "param.")) -> pd.DataFrame:
    """Lineage and parameter tags whose values differ between versions `a` and `b` (missing = "")."""
    client = MlflowClient()
    tags_a = {k: v for k, v in client.get_model_version(name, a).tags.items() if k.startswith(prefixes)}
    tags_b = {k: v for k, v in client.get_model_version(name, b).tags.items() if k.startswith(prefixes)}
    keys = sorted(k for k in tags_a.keys() | tags_b.keys() if k != "lineage.run_id" and tags_a.get(k) != tags_b.get(k))
    return pd.DataFrame({"tag": keys, f"version {a}": [tags_a.get(k, "") for k in keys], f"version {b}": [tags_b.get(k, "") for k in keys]}).set_index("tag")


# Exercise 3: a consumer crashed after reading entries and before acknowledging them.
def recover_pending(store: online.OnlineStore, crashed: str, min_idle_ms: int = 0) -> int:
    """Claim the entries `crashed` read but never acknowledged (XAUTOCLAIM) and fold them in; returns how many."""
    recovered, start = 0, "0-0"
    while True:
        answer = store.conn.xautoclaim(store.stream, online.GROUP, store.consumer, min_idle_time=min_idle_ms, start_id=start, count=1000)
        start, entries = answer[0], answer[1]
        entries = [e for e in entries if e is not None and e[1]]  # entries trimmed from the stream come back empty
        store.fold(entries)
        recovered += len(entries)
        if start in (b"0-0", "0-0"):
            return recovered


#: The names the other lessons' solution modules use, one per exercise.
exercise_1, exercise_2, exercise_3 = origin_delayed_3h, version_diff, recover_pending
