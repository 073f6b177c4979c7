"""The solutions to lesson 02's exercises give the right answers (`02-notebooks/solutions/02_data_engineering.py`).

Every answer is checked against an independent computation: plain pandas on the validated tables
instead of SQL, the minute-of-the-hour rule instead of the as-of joins, the cached feature table
instead of the departure events. The warehouse holds January only, in memory, to keep the file fast.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine

from mlsys import data, features, formats, warehouse


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return data.load_flights()


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return data.load_table("weather")


@pytest.fixture(scope="module")
def january() -> Engine:
    eng = warehouse.connect("sqlite://")
    warehouse.load_warehouse(eng, months=[1])
    return eng


def _stamped_rule_reads_future(flights: pd.DataFrame, weather: pd.DataFrame, lead: pd.Timedelta) -> float:
    """Share of test flights whose stamped row is not known yet, by the minute rule alone.

    The stamped rule takes the row of the decision time's own hour when it exists; that row is known
    from minute 52 on. Without it, the rule falls back to an earlier hour, which is known already.
    """
    test = flights[flights["split"] == "test"]
    decision = test["sched_dep_utc"] - lead
    hour = decision.dt.floor("h")
    rows = set(zip(weather["origin"], weather["time_hour"].astype("datetime64[ns, UTC]"), strict=True))
    has_row = np.array([(o, h) in rows for o, h in zip(test["origin"], hour.astype("datetime64[ns, UTC]"), strict=True)])
    return float(((decision.dt.minute < 52).to_numpy() & has_row).mean())


def test_exercise_1_the_share_depends_on_the_minute_not_the_lead(solutions: ModuleType, flights, weather) -> None:
    answer = solutions.exercise_1(flights, weather, lead=pd.Timedelta(hours=1))
    assert answer["lead"] == pytest.approx(_stamped_rule_reads_future(flights, weather, pd.Timedelta(hours=1)))
    assert answer["two hours"] == pytest.approx(_stamped_rule_reads_future(flights, weather, pd.Timedelta(hours=2)))
    assert 0.8 < answer["lead"] < 0.9
    assert abs(answer["lead"] - answer["two hours"]) < 0.005


def test_exercise_2_sql_agrees_with_pandas(solutions: ModuleType, january: Engine, flights) -> None:
    answer = solutions.exercise_2(january, min_flights=1000)
    jan = flights[flights["month"] == 1]
    names = data.load_table("airlines").set_index("carrier")["name"]
    expected = jan.groupby(jan["carrier"].map(names))["late"].agg(["size", "mean"])
    table = answer["table"]
    assert sorted(table.index) == sorted(expected.index)
    assert table["flights"].to_dict() == expected["size"].to_dict()
    np.testing.assert_allclose(table["late_share"].to_numpy(), expected.loc[table.index, "mean"].to_numpy(), rtol=1e-12)
    big = expected[expected["size"] >= 1000]
    assert answer["latest"] == big["mean"].idxmax()
    assert answer["access_path"] == "full scan"


def test_exercise_3_compression_shrinks_the_file(solutions: ModuleType) -> None:
    flights_raw = data.load_table("flights")
    sizes = solutions.exercise_3(flights_raw)
    assert list(sizes.index) == ["none", "snappy", "zstd"]
    assert sizes["none"] > sizes["snappy"] > sizes["zstd"] > 0
    # snappy is pyarrow's default: the same file as a plain write_table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default.parquet"
        pq.write_table(formats.arrow_table(flights_raw), path)
        assert sizes["snappy"] == path.stat().st_size / 1e6


@pytest.mark.parametrize("flight_id", [214472, 91796])
def test_exercise_4_matches_the_feature_table(solutions: ModuleType, flights, flight_id: int) -> None:
    answer = solutions.exercise_4(flights, flight_id)
    table = features.feature_table().set_index("flight_id")
    assert answer["origin_departures_3h"] == table.loc[flight_id, "origin_departures_3h"]
    assert answer["origin_mean_delay_3h"] == pytest.approx(table.loc[flight_id, "origin_mean_delay_3h"])
