"""Solutions to the exercises of lesson 02 (data engineering). Try the exercises yourself first.

One function per exercise of `02-notebooks/02_data_engineering.ipynb`. `flights` is
`mlsys.data.load_flights()`, `weather` is `mlsys.data.load_table("weather")` and `eng` a loaded
warehouse (`mlsys.warehouse.engine()` after `load_warehouse`). `tests/solutions/test_02_data_engineering.py`
runs each of them and checks its answer.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys import data, formats, warehouse
from mlsys.features import DECISION_LEAD


def exercise_1(flights: pd.DataFrame, weather: pd.DataFrame, lead: pd.Timedelta = pd.Timedelta(hours=1)) -> pd.Series:
    """The decision lead: the share of test flights whose stamped weather row was not known yet, at `lead` and at 2 h.

    The share hardly moves: a row stamped H is known from H:52, so the stamped rule reads the
    future exactly when the decision time falls at minutes :00 to :51 of its hour. Moving the
    decision time by whole hours keeps its minute, so only the few flights whose origin misses a
    weather row change.
    """
    shares = {}
    for name, value in (("lead", lead), ("two hours", DECISION_LEAD)):
        rules = warehouse.weather_by_rule(flights, weather, lead=value)
        test = rules[(rules["split"] == "test") & rules["stamped_time"].notna() & rules["known_time"].notna()]
        shares[name] = float(test["reads_future"].mean())
    return pd.Series(shares, name="stamped row not yet known (share of test flights)")


#: Exercise 2's query: late share per carrier name, joined in the warehouse.
CARRIER_SQL = """
SELECT l.name AS carrier_name,
       COUNT(*) AS flights,
       AVG(CASE WHEN f.dep_time IS NULL OR f.arr_delay IS NULL OR f.arr_delay >= {late_minutes}
                THEN 1.0 ELSE 0.0 END) AS late_share
FROM flights AS f
JOIN airlines AS l ON l.carrier = f.carrier
GROUP BY l.name
ORDER BY late_share DESC
"""


def exercise_2(eng: Engine, min_flights: int = 1000) -> dict[str, object]:
    """A question across tables: late share per carrier name, the latest carrier with `min_flights`+ flights, and the access path.

    The query reads every flight (a full scan: it aggregates all of them), like the OLAP query of
    the lesson; the join to the 16 airlines costs next to nothing.
    """
    sql = CARRIER_SQL.format(late_minutes=data.LATE_MINUTES)
    with eng.connect() as conn:
        table = pd.read_sql(sa.text(sql), conn).set_index("carrier_name")
        path = warehouse.access_path(conn, sql, {})
    big = table[table["flights"] >= min_flights]
    return {"table": table, "latest": str(big["late_share"].idxmax()), "access_path": path}


def exercise_3(flights_raw: pd.DataFrame, codecs: tuple[str, ...] = ("none", "snappy", "zstd")) -> pd.Series:
    """Compression: the validated flights table (`data.load_table("flights")`) as Parquet, in MB per codec.

    Compression works well in a column store because each chunk holds the values of one column: one
    type, often repeated (carrier codes, origins, the year), which encodings and codecs shrink far
    more than the mixed fields of a row.
    """
    return pd.Series({codec: formats.parquet_size(flights_raw, codec) / 1e6 for codec in codecs}, name="MB")


def exercise_4(flights: pd.DataFrame, flight_id: int = 214472) -> pd.Series:
    """A streaming feature by hand: `origin_departures_3h` and `origin_mean_delay_3h` from the departure events.

    `flights` needs `flight_id` (as `mlsys.data.load_flights` gives it). The events are the
    departures at the flight's origin in the 3 h before its decision time.
    """
    events = warehouse.departures_before(flights, flight_id, window=pd.Timedelta(hours=3))
    return pd.Series(
        {"origin_departures_3h": float(len(events)), "origin_mean_delay_3h": float(events["dep_delay"].mean())},
        name=flight_id,
    )
