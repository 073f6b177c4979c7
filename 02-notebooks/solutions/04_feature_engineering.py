"""Solutions to the exercises of lesson 04 (feature engineering). Try the exercises yourself first.

One function per exercise of `02-notebooks/04_feature_engineering.ipynb`, on the splits of
`mlsys.features.load_splits` and the tables of `mlsys.data`.
`tests/solutions/test_04_feature_engineering.py` runs each of them and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from mlsys import leakage, pipeline

RAW_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "tailnum", "distance")


def exercise_1(train: pd.DataFrame) -> pd.DataFrame:
    """What a gap stands for: the weather when `wx_pressure` is missing, the hour when `carrier_mean_delay_3h` is.

    The hours without a pressure reading are hours of poor weather (lower visibility, far more
    often under 3 miles, more humid): the gap is a bad-weather flag, hence the high late rate. No
    departure of the carrier in the previous three hours happens early in the morning, before
    delays build up: the gap is a time-of-day flag, hence the low late rate.
    """
    pressure = train["wx_pressure"].isna()
    carrier = train["carrier_mean_delay_3h"].isna()
    rows = {}
    for name, missing in (("wx_pressure", pressure), ("carrier_mean_delay_3h", carrier)):
        for state, mask in (("missing", missing), ("present", ~missing)):
            part = train[mask]
            rows[(name, state)] = {
                "flights": int(mask.sum()),
                "late rate": round(float(part["late"].mean()), 4),
                "mean visibility (miles)": round(float(part["wx_visib"].mean()), 2),
                "share with visibility < 3 miles": round(float((part["wx_visib"] < 3).mean()), 4),
                "mean humidity (%)": round(float(part["wx_humid"].mean()), 1),
                "median scheduled hour": float(part["sched_hour"].median()),
            }
    return pd.DataFrame(rows).T.rename_axis(["feature", "value"])


def exercise_2(flights: pd.DataFrame, columns: Sequence[str] = RAW_COLUMNS) -> dict[str, list[str]]:
    """Raw columns whose missingness gives the course label away, and which of them exist at decision time.

    Every column that is missing only for cancelled or diverted flights is flagged: the departure
    and arrival times and delays and the air time are recorded after the fact (missing because the
    flight never left or never arrived), and the tail number is missing only for cancelled flights.
    `distance` is never missing. Of the flagged columns only `tailnum` is in the schedule before
    departure, which is why a feature built on it (v1's `tail_flights_before_today`) could leak
    through its gaps without any post-decision column in sight.
    """
    flagged = leakage.missingness_proxies(flights, list(columns), "late")
    known_before = {"tailnum", "distance"}
    return {"flagged": flagged, "flagged and known before departure": [c for c in flagged if c in known_before]}


def exercise_3(train: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """Overlap of test flights with training, for a random split and a split that keeps aircraft whole.

    Keeping aircraft whole leaves no test aircraft in training, but almost every test flight still
    has flights of its day in training: a split keeps whole only the group it is told about.
    Flights without a tail number are left out (they have no aircraft to group by).
    """
    flights = train[train["tailnum"].notna()].reset_index(drop=True)
    _, by_tail = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed).split(flights, groups=flights["tailnum"]))
    is_test_by_tail = np.isin(np.arange(len(flights)), by_tail)
    is_test_random = np.isin(np.arange(len(flights)), np.random.default_rng(seed).permutation(len(flights))[: int(is_test_by_tail.sum())])
    return pd.DataFrame(
        {
            name: leakage.split_overlap(flights[~is_test], flights[is_test])
            for name, is_test in (("random", is_test_random), ("aircraft kept whole", is_test_by_tail))
        }
    )


def exercise_4(train: pd.DataFrame, target: float = 0.10) -> dict[str, float]:
    """The smallest hash width 2^k with fewer than `target` of the training tokens sharing a column.

    Only the share measured on the data decides; the formula 1 - (1 - 1/m)^(n - 1) (n tokens,
    m columns) is its expectation for a random hash and lands close to it.
    """
    for k in range(8, 25):
        table = pipeline.hash_collisions(train, sizes=(2**k,))
        measured = float(table["tokens sharing a column"].iloc[0])
        if measured < target:
            tokens = int(table["tokens"].iloc[0])
            return {"columns": 2**k, "tokens": tokens, "measured share": measured, "formula": 1 - (1 - 1 / 2**k) ** (tokens - 1)}
    raise ValueError(f"no width up to 2^24 brings the share below {target}")


def exercise_5(splits: Mapping[str, pd.DataFrame], seed: int = 42, fast: bool = True) -> list[str]:
    """Which lineage rows change when one training label flips: only the training split's fingerprint.

    The raw files, the feature code and the other splits are untouched; the training split has the
    same rows but another label, so its row fingerprint (flight ids and labels) changes.
    """
    before = leakage.lineage_table(dict(splits), fast=fast, seed=seed)
    changed_train = splits["train"].copy()
    changed_train.loc[changed_train.index[0], "late"] = 1 - changed_train["late"].iloc[0]
    after = leakage.lineage_table({**splits, "train": changed_train}, fast=fast, seed=seed)
    differs = (before != after).any(axis=1)
    return [str(stage) for stage in before.index[differs]]
