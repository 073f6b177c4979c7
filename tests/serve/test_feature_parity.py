"""The service's online features equal the offline feature table's, flight by flight.

1,000 seeded test flights (November–December) are asked for as requests (carrier, flight number,
airports, scheduled departure, tail number; decision time = the default, 2 h before departure).
The service reads the warehouse, hides what was not known at the decision time and calls
`features.build_features`; the result must equal `features.feature_table()`'s row of the flight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import features
from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import HASHED, INPUT_COLUMNS
from mlsys.serve.features import OnlineFeatures
from mlsys.serve.lesson import flight_query

N_FLIGHTS = 1_000
SEED = 42


@pytest.fixture(scope="module")
def offline() -> pd.DataFrame:
    return features.feature_table().set_index("flight_id")


def test_online_features_equal_the_offline_table(offline, warehouse_engine):
    test = offline[offline["split"] == "test"]
    sample = test.sample(N_FLIGHTS, random_state=SEED)
    rows = OnlineFeatures(warehouse_engine).compute([flight_query(r) for _, r in sample.iterrows()])

    assert [r.flight_id for r in rows] == sample.index.tolist()  # every request was found in the warehouse
    online = pd.DataFrame([r.values for r in rows], index=sample.index)[INPUT_COLUMNS]
    for col in [*CATEGORICAL, *HASHED]:
        want = sample[col].astype("string").fillna("<NA>")
        got = online[col].astype("string").fillna("<NA>")
        assert (got == want).all(), f"{col}: {(got != want).sum()} flights differ"
    got = online[NUMERIC].astype("float64").to_numpy()
    want = sample[NUMERIC].astype("float64").to_numpy()
    close = np.isclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    bad = {c: int((~close[:, j]).sum()) for j, c in enumerate(NUMERIC) if not close[:, j].all()}
    assert not bad, f"features that differ (number of flights): {bad}"


def test_single_requests_equal_the_offline_table(offline, warehouse_engine):
    """One request at a time (what `POST /predict` does): the world masked at its own decision time."""
    test = offline[offline["split"] == "test"]
    sample = test.sample(20, random_state=SEED + 1)
    online = OnlineFeatures(warehouse_engine)
    for flight_id, row in sample.iterrows():
        (got,) = online.compute([flight_query(row)])
        assert got.flight_id == flight_id
        values = pd.Series(got.values)
        assert np.isclose(values[NUMERIC].astype("float64"), row[NUMERIC].astype("float64"), rtol=1e-9, atol=1e-9, equal_nan=True).all()
        assert [str(values[c]) for c in CATEGORICAL] == [str(row[c]) for c in CATEGORICAL]
