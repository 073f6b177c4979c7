"""The course's warehouse: validated tables loaded into SQL, queried with dialect-neutral joins.

`engine(settings)` connects to `settings.database_url`: a SQLite file (`03-data/warehouse.db`) by
default, PostgreSQL when `.env` sets `DATABASE_URL=postgresql+psycopg://...` (see `docker/`).
`load_warehouse(engine)` is the ETL's load step: it creates any missing table below and replaces the
contents of every table with the validated rows from `mlsys.data` in one transaction, so running
it twice leaves exactly the same rows (idempotent), and a failure half-way leaves the previous load.
It refuses to replace a table that has rows with an empty one (say, a header-only file) unless
called with `allow_empty=True`.

Tables (all timestamps are UTC, stored without a time zone so SQLite and PostgreSQL compare them
the same way):

* `flights`    — surrogate key `flight_id` (0-based data-row number in the raw file, the same
  `flight_id` as in the feature table: both come from `data.source_rows`) and the natural key
  (time_hour, carrier, flight) as a UNIQUE constraint;
* `weather`    — key (origin, time_hour); `planes` — tailnum; `airports` — faa; `airlines` — carrier;
* `quarantine` — rows that failed validation: table_name, physical line in the raw file (blank
  lines counted), reason, and the raw row as JSON text;
* `predictions` — written by the prediction service (later lesson), one row per prediction:
  which flight, which model name and version, the probability, the decision time it was made
  for and when it was requested. Loading never touches it, and it has no foreign key to
  `flights` so that reloading flights does not cascade into the prediction log.

String columns are as wide as `data.SCHEMAS` says (`max_length`), which validation enforces, so
PostgreSQL never refuses a validated row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlsys import data
from mlsys.config import Settings, get_settings, mask_password
from mlsys.features import DECISION_LEAD
from mlsys.logger import logger

#: Rows per executemany call: bounds the memory the driver holds at once.
CHUNK_ROWS = 20_000

START_HINT = (
    "start PostgreSQL, e.g. `make up` or `docker compose -f docker/compose.yml up -d postgres`, "
    "or remove DATABASE_URL from .env to use SQLite"
)


class WarehouseUnavailable(RuntimeError):
    """The configured database cannot be reached; the message says what to start."""


class EmptyLoadError(ValueError):
    """A load would replace a non-empty warehouse table with no rows (`allow_empty=True` permits it)."""


# --------------------------------------------------------------------------- schema

metadata = sa.MetaData()


def _text(table: str, column: str, **kwargs: object) -> sa.Column:
    """A `String` column as wide as `data.SCHEMAS` allows, so every accepted value fits (PostgreSQL checks)."""
    return sa.Column(column, sa.String(data.SCHEMAS[table].columns[column].max_length), **kwargs)


flights = sa.Table(
    "flights",
    metadata,
    sa.Column("flight_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("month", sa.Integer, nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("dep_time", sa.Integer),
    sa.Column("sched_dep_time", sa.Integer, nullable=False),
    sa.Column("dep_delay", sa.Float),
    sa.Column("arr_time", sa.Integer),
    sa.Column("sched_arr_time", sa.Integer, nullable=False),
    sa.Column("arr_delay", sa.Float),
    _text("flights", "carrier", nullable=False),
    sa.Column("flight", sa.Integer, nullable=False),
    _text("flights", "tailnum"),
    _text("flights", "origin", nullable=False),
    _text("flights", "dest", nullable=False),
    sa.Column("air_time", sa.Float),
    sa.Column("distance", sa.Float, nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("minute", sa.Integer, nullable=False),
    sa.Column("time_hour", sa.DateTime, nullable=False),
    sa.UniqueConstraint("time_hour", "carrier", "flight", name="flights_natural_key"),
)

weather = sa.Table(
    "weather",
    metadata,
    _text("weather", "origin", primary_key=True),
    sa.Column("time_hour", sa.DateTime, primary_key=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("month", sa.Integer, nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    *(sa.Column(c, sa.Float) for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust")),
    sa.Column("precip", sa.Float, nullable=False),
    sa.Column("pressure", sa.Float),
    sa.Column("visib", sa.Float, nullable=False),
)

planes = sa.Table(
    "planes",
    metadata,
    _text("planes", "tailnum", primary_key=True),
    sa.Column("year", sa.Integer),
    _text("planes", "type", nullable=False),
    _text("planes", "manufacturer", nullable=False),
    _text("planes", "model", nullable=False),
    sa.Column("engines", sa.Integer, nullable=False),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("speed", sa.Float),
    _text("planes", "engine", nullable=False),
)

airports = sa.Table(
    "airports",
    metadata,
    _text("airports", "faa", primary_key=True),
    _text("airports", "name", nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("alt", sa.Float, nullable=False),
    sa.Column("tz", sa.Integer, nullable=False),
    _text("airports", "dst", nullable=False),
    _text("airports", "tzone"),
)

airlines = sa.Table(
    "airlines",
    metadata,
    _text("airlines", "carrier", primary_key=True),
    _text("airlines", "name", nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("table_name", sa.String(20), primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),  # JSON object: column -> original text (null if empty)
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flight_id", sa.Integer, nullable=False, index=True),
    sa.Column("model_name", sa.String(100), nullable=False),
    sa.Column("model_version", sa.String(40), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision_time", sa.DateTime, nullable=False),
    sa.Column("requested_at", sa.DateTime, nullable=False),
)

#: Tables `load_warehouse` fills, in load order; `predictions` belongs to the service.
LOADED = ("flights", "weather", "planes", "airports", "airlines", "quarantine")


# --------------------------------------------------------------------------- connection


def connect(url: str, schema: str | None = None) -> Engine:
    """An engine for `url`, checked with one connection; `schema` sets PostgreSQL's search_path.

    Raises `WarehouseUnavailable` (with what to start) when the server cannot be reached.
    """
    url_obj = sa.make_url(url)
    connect_args: dict[str, object] = {}
    if url_obj.get_backend_name() == "sqlite":
        if url_obj.database and url_obj.database != ":memory:":
            Path(url_obj.database).parent.mkdir(parents=True, exist_ok=True)
    elif url_obj.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5
        if schema:
            # every statement, including the text() joins, then resolves table names in `schema`
            connect_args["options"] = f"-csearch_path={schema}"
    eng = sa.create_engine(url_obj, connect_args=connect_args)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        eng.dispose()
        raise WarehouseUnavailable(
            f"cannot reach the warehouse at {mask_password(url)}: {START_HINT}. (driver said: {_first_line(exc)})"
        ) from exc
    return eng


def engine(settings: Settings | None = None, schema: str | None = None) -> Engine:
    """The warehouse engine for `settings.database_url` (SQLite file by default, or PostgreSQL)."""
    settings = settings or get_settings()
    return connect(settings.database_url, schema=schema)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def schema_summary() -> pd.DataFrame:
    """Every warehouse table with its primary key, unique constraints and number of columns."""
    rows = []
    for table in metadata.sorted_tables:
        uniques = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        rows.append(
            {
                "table": table.name,
                "primary key": ", ".join(c.name for c in table.primary_key.columns),
                "unique": "; ".join(", ".join(col.name for col in u.columns) for u in uniques),
                "columns": len(table.columns),
                "filled by": "prediction service" if table.name == "predictions" else "load_warehouse",
            }
        )
    return pd.DataFrame(rows).set_index("table")


def create_schema(eng: Engine) -> None:
    """Create every table that does not exist yet (never drops anything)."""
    metadata.create_all(eng)


# --------------------------------------------------------------------------- extract / transform


def table_frames(settings: Settings | None = None, months: Sequence[int] | None = None) -> dict[str, pd.DataFrame]:
    """The validated tables and the quarantine as frames shaped like the warehouse tables.

    `months` keeps only flights and weather of those months (tests load one month for speed).
    """
    settings = settings or get_settings()
    frames: dict[str, pd.DataFrame] = {}
    quarantined = []
    for name in data.TABLES:
        # accepted rows and quarantine of the same input file, their counts checked by `data`
        result = data.load_validated(name, settings)
        table, bad = result.accepted, result.quarantined
        if name == "flights":
            table = table.assign(flight_id=data.source_rows(len(table), bad))
        if months is not None and name in ("flights", "weather"):
            table = table[table["month"].isin(list(months))]
        frames[name] = table
        quarantined.append(_quarantine_rows(name, bad))
    frames["quarantine"] = pd.concat(quarantined, ignore_index=True)
    return frames


def _quarantine_rows(name: str, bad: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows as warehouse rows: table, physical line, reason, the original text as JSON."""
    raw_cols = [c for c in bad.columns if c not in data.QUARANTINE_COLUMNS]
    raw = [json.dumps({c: (None if pd.isna(v) else str(v)) for c, v in zip(raw_cols, row)}) for row in bad[raw_cols].itertuples(index=False)]
    return pd.DataFrame(
        {"table_name": name, "line": pd.to_numeric(bad["line"]).astype("int64"), "reason": bad["reason"].astype(str), "raw": raw}
    )


def _column_values(series: pd.Series, sqlite: bool) -> list[object]:
    """One column as plain Python values: None for missing, naive UTC timestamps.

    SQLite has no timestamp type; SQLAlchemy stores `DateTime` there as ISO text
    (`2013-01-01 10:00:00.000000`), so that is what we write, and it still reads back as datetime.
    Both that text and PostgreSQL's `timestamp` hold microseconds (`data.TIMESTAMP_RESOLUTION`),
    which is why validation compares keys at that precision and refuses finer timestamps.
    """
    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = series.dt.floor(data.TIMESTAMP_RESOLUTION)  # what both dialects keep, stated once
        values = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else pd.Series(series.dt.to_pydatetime(), dtype=object)
        out = values.astype(object).to_numpy(copy=True)
    elif pd.api.types.is_integer_dtype(series.dtype):
        out = series.astype("float64").fillna(0).astype("int64").astype(object).to_numpy(copy=True)
    else:
        out = series.astype(object).to_numpy(copy=True)
    out[missing] = None
    return out.tolist()


def _insert(conn: Connection, table: sa.Table, df: pd.DataFrame) -> None:
    """Bulk-insert `df`: PostgreSQL's COPY with psycopg, chunked executemany everywhere else.

    Both go straight to the driver: SQLAlchemy's per-value type processing made a Core `insert()`
    of the 336,776 flights several times slower. With psycopg, COPY streams the rows in one
    command and costs about a quarter of the CPU of batched INSERTs.
    """
    cols = [c.name for c in table.columns if c.name in df.columns]
    sqlite = conn.dialect.name == "sqlite"
    rows = list(zip(*(_column_values(df[c], sqlite) for c in cols)))
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in cols)
    if conn.dialect.driver == "psycopg":
        with conn.connection.driver_connection.cursor() as cur, cur.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark or '?'] * len(cols))})"
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        if mark is None:  # another driver's placeholder style: let SQLAlchemy bind the values
            conn.execute(table.insert(), [dict(zip(cols, row)) for row in chunk])
        else:
            conn.exec_driver_sql(sql, chunk)


# --------------------------------------------------------------------------- load


def load_warehouse(
    eng: Engine, settings: Settings | None = None, months: Sequence[int] | None = None, *, allow_empty: bool = False
) -> pd.DataFrame:
    """Replace the warehouse's tables with the validated data, idempotently, in one transaction.

    Returns one row per table: rows accepted by validation (the source), rows now in the warehouse
    and seconds spent loading it. A data table that has rows is never replaced by an empty one
    (`EmptyLoadError`, nothing changed) unless `allow_empty=True`; the quarantine may become empty.
    """
    create_schema(eng)
    frames = table_frames(settings, months)
    rows = []
    with eng.begin() as conn:
        _refuse_empty_replacements(conn, frames, months, allow_empty)
        for name in LOADED:
            start = time.perf_counter()
            table = metadata.tables[name]
            conn.execute(table.delete())
            _insert(conn, table, frames[name])
            stored = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            rows.append({"table": name, "source rows": len(frames[name]), "warehouse rows": stored, "seconds": time.perf_counter() - start})
    counts = pd.DataFrame(rows).set_index("table")
    logger.info("warehouse loaded ({}): {} rows", eng.dialect.name, int(counts["warehouse rows"].sum()))
    return counts


def _refuse_empty_replacements(conn: Connection, frames: dict[str, pd.DataFrame], months: Sequence[int] | None, allow_empty: bool) -> None:
    """Raise `EmptyLoadError` before anything is deleted if an empty frame would replace stored rows."""
    if allow_empty:
        return
    for name in LOADED:
        if name == "quarantine" or len(frames[name]):
            continue
        stored = conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[name])).scalar_one()
        if stored:
            scope = f" for months {list(months)}" if months is not None and name in ("flights", "weather") else ""
            raise EmptyLoadError(
                f"refusing to replace the {stored:,} rows of warehouse table {name!r} with an empty load: validation "
                f"accepted no {name} rows{scope} (see data.validation_report() and data.load_quarantine({name!r})). "
                "Nothing was changed. To empty the table on purpose, call load_warehouse(..., allow_empty=True)."
            )


def row_counts(eng: Engine) -> pd.Series:
    """Rows per table currently in the warehouse."""
    with eng.connect() as conn:
        return pd.Series(
            {name: conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[name])).scalar_one() for name in LOADED},
            name="rows",
        )


def read_table(eng: Engine, name: str) -> pd.DataFrame:
    """A whole warehouse table, ordered by its primary key."""
    table = metadata.tables[name]
    with eng.connect() as conn:
        return pd.read_sql(sa.select(table).order_by(*table.primary_key.columns), conn)


def checksum(eng: Engine, name: str) -> str:
    """SHA-256 of a table's content, ordered by primary key: equal checksums mean equal rows.

    Reads with a plain text query (no per-value type conversion) and hashes column by column
    with pandas, so it takes seconds even for the flights table. Compare checksums from the
    same database engine (SQLite returns timestamps as text, PostgreSQL as timestamps).
    """
    table = metadata.tables[name]
    quote = eng.dialect.identifier_preparer.quote
    order = ", ".join(quote(c.name) for c in table.primary_key.columns)
    with eng.connect() as conn:
        df = pd.read_sql(sa.text(f"SELECT * FROM {quote(name)} ORDER BY {order}"), conn)
    digest = hashlib.sha256(",".join(df.columns).encode())
    for col in df.columns:
        digest.update(pd.util.hash_pandas_object(df[col], index=False).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- SQL analysis

#: Grouping expressions for `late_rate_cube`, written in SQL that SQLite and PostgreSQL both accept.
DIMENSIONS = {
    "weather": """CASE
        WHEN w.origin IS NULL THEN 'no observation'
        WHEN w.precip > 0 AND w.visib < 3 THEN 'precipitation, low visibility'
        WHEN w.precip > 0 THEN 'precipitation'
        WHEN w.visib < 3 THEN 'low visibility, dry'
        ELSE 'dry, visibility >= 3 mi' END""",
    "plane_age": """CASE
        WHEN p.year IS NULL THEN 'unknown'
        WHEN 2013 - p.year < 5 THEN '0-4 years'
        WHEN 2013 - p.year < 10 THEN '5-9 years'
        WHEN 2013 - p.year < 20 THEN '10-19 years'
        ELSE '20+ years' END""",
    "dest_tz": "COALESCE(a.tzone, 'unknown')",
}

LATE_RATE_SQL = """
SELECT {weather} AS weather,
       {plane_age} AS plane_age,
       {dest_tz} AS dest_tz,
       COUNT(*) AS flights,
       SUM(CASE WHEN f.dep_time IS NULL OR f.arr_delay IS NULL OR f.arr_delay >= {late_minutes}
                THEN 1 ELSE 0 END) AS late
FROM flights AS f
LEFT JOIN weather  AS w ON w.origin = f.origin AND w.time_hour = f.time_hour
LEFT JOIN planes   AS p ON p.tailnum = f.tailnum
LEFT JOIN airports AS a ON a.faa = f.dest
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


def late_rate_sql() -> str:
    """The SQL behind `late_rate_cube` (late = the course label: 15+ min late, cancelled or diverted)."""
    return LATE_RATE_SQL.format(**DIMENSIONS, late_minutes=data.LATE_MINUTES)


def late_rate_cube(eng: Engine) -> pd.DataFrame:
    """Flights and late flights per (weather, plane age, destination time zone), in one SQL pass.

    Joins every flight with the weather at its origin in its scheduled hour, its aircraft and its
    destination airport. `late_rates` rolls the result up along one dimension.
    """
    with eng.connect() as conn:
        cube = pd.read_sql(sa.text(late_rate_sql()), conn)
    return cube.astype({"flights": "int64", "late": "int64"})


def late_rates(cube: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """Flights and share late per group of one of `DIMENSIONS`, highest late rate first."""
    if dimension not in DIMENSIONS:
        raise KeyError(f"unknown dimension {dimension!r}; choose from {sorted(DIMENSIONS)}")
    out = cube.groupby(dimension)[["flights", "late"]].sum()
    out["late_rate"] = (out["late"] / out["flights"]).round(3)
    return out.drop(columns="late").sort_values("late_rate", ascending=False)


def find_flight(eng: Engine, time_hour: pd.Timestamp, carrier: str, flight: int) -> pd.Series:
    """One flight by its natural key (scheduled hour in UTC, carrier, flight number).

    A Core query rather than text: SQLAlchemy formats the timestamp parameter the way each
    dialect stores it (SQLite keeps timestamps as text).
    """
    hour = pd.Timestamp(time_hour).tz_convert("UTC").tz_localize(None).to_pydatetime()
    query = sa.select(flights).where(flights.c.time_hour == hour, flights.c.carrier == carrier, flights.c.flight == flight)
    with eng.connect() as conn:
        found = pd.read_sql(query, conn)
    if len(found) != 1:
        raise KeyError(f"no flight {carrier} {flight} scheduled in the hour {time_hour}")
    return found.iloc[0]


def weather_for_flight(eng: Engine, flight_id: int, lead: pd.Timedelta = DECISION_LEAD) -> pd.DataFrame:
    """The two weather rows a flight could be joined with: as of its decision time, and naive.

    *as of decision time*: the latest row at the origin known at the decision time (scheduled
    departure - `lead`; a row stamped H is known from H:52); *naive join*: the row of the scheduled
    departure hour.
    """
    from mlsys.features import WEATHER_KNOWN_AFTER

    with eng.connect() as conn:
        me = dict(conn.execute(sa.select(flights).where(flights.c.flight_id == flight_id)).mappings().one())
        decision = me["time_hour"] + pd.Timedelta(minutes=me["minute"]).to_pytimedelta() - lead.to_pytimedelta()
        cols = [weather.c.time_hour, weather.c.precip, weather.c.visib, weather.c.wind_speed, weather.c.temp]
        as_of = conn.execute(
            sa.select(*cols)
            .where(weather.c.origin == me["origin"], weather.c.time_hour <= decision - WEATHER_KNOWN_AFTER.to_pytimedelta())
            .order_by(weather.c.time_hour.desc())
            .limit(1)
        ).mappings().one()
        naive = conn.execute(
            sa.select(*cols).where(weather.c.origin == me["origin"], weather.c.time_hour == me["time_hour"])
        ).mappings().one()
    out = pd.DataFrame([dict(as_of), dict(naive)], index=["as of decision time", "naive join (scheduled hour)"])
    out.insert(0, "decision time", decision)
    out["stamped after decision?"] = out["time_hour"] > decision
    return out


# --------------------------------------------------------------------------- point in time


def naive_weather_join(flights_df: pd.DataFrame, weather_df: pd.DataFrame) -> pd.DataFrame:
    """Weather joined on (origin, time_hour): the observation of the scheduled departure hour.

    That row is stamped up to two hours *after* the decision time, so a model fed with it would
    train on information the operations desk does not have yet.
    """
    wx = weather_df[["origin", "time_hour", "precip", "visib", "wind_speed"]]
    return flights_df[["flight_id", "origin", "time_hour"]].merge(wx, on=["origin", "time_hour"], how="left").set_index("flight_id")


def weather_join_comparison(features_df: pd.DataFrame, flights_df: pd.DataFrame, weather_df: pd.DataFrame) -> pd.DataFrame:
    """Per flight: weather as of the decision time (feature table) next to the naive join's.

    Columns: `precip_as_of`, `precip_naive`, `visib_as_of`, `visib_naive`, `naive_minutes_after`
    (how long after the decision time the naive row is stamped) and the label `late`.
    """
    naive = naive_weather_join(flights_df, weather_df)
    f = features_df.set_index("flight_id")
    out = pd.DataFrame(index=f.index)
    out["precip_as_of"] = f["wx_precip"]
    out["precip_naive"] = naive["precip"].reindex(f.index)
    out["visib_as_of"] = f["wx_visib"]
    out["visib_naive"] = naive["visib"].reindex(f.index)
    stamp = flights_df.set_index("flight_id")["time_hour"].reindex(f.index)
    out["naive_minutes_after"] = (stamp - f["decision_time_utc"]).dt.total_seconds() / 60
    out["late"] = f["late"]
    return out


def summarize_weather_joins(cmp: pd.DataFrame) -> pd.Series:
    """How the naive join's weather differs from the point-in-time weather, over all flights."""
    both = cmp.dropna(subset=["precip_as_of", "precip_naive"])
    after = cmp["naive_minutes_after"]
    return pd.Series(
        {
            "flights with both weather rows": len(both),
            "naive row stamped after the decision time (share)": round(float((after > 0).mean()), 4),
            "minutes after the decision time (min)": int(after.min()),
            "minutes after the decision time (max)": int(after.max()),
            "precipitation differs (share)": round(float((both["precip_as_of"] != both["precip_naive"]).mean()), 4),
            "dry at decision time, wet in naive row (share)": round(
                float(((both["precip_as_of"] == 0) & (both["precip_naive"] > 0)).mean()), 4
            ),
            "visibility differs (share)": round(float((both["visib_as_of"] != both["visib_naive"]).mean()), 4),
        },
        dtype=object,
    )


def naive_hour_delay(flights_df: pd.DataFrame) -> pd.Series:
    """Mean departure delay at the origin in each flight's *scheduled* hour (a naive GROUP BY).

    It averages delays that are only known after the decision time, the flight's own included.
    """
    mean = flights_df.groupby(["origin", "time_hour"])["dep_delay"].transform("mean")
    return pd.Series(mean.to_numpy(), index=flights_df["flight_id"].to_numpy(), name="naive_hour_mean_delay")


def roc_auc(y: pd.Series, score: pd.Series) -> float:
    """ROC AUC from ranks (Mann-Whitney U; ties count half), without importing scikit-learn."""
    y = np.asarray(y, dtype=bool)
    ranks = pd.Series(np.asarray(score, dtype="float64")).rank(method="average").to_numpy()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def leak_auc(features_df: pd.DataFrame, flights_df: pd.DataFrame, weather_df: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of single features for `late`: point-in-time versions against their naive twins.

    Each pair is scored on the same flights (those where both values exist).
    """
    f = features_df.set_index("flight_id")
    wx = naive_weather_join(flights_df, weather_df).reindex(f.index)
    pairs = {
        "precipitation (in)": (f["wx_precip"], wx["precip"], 1),
        "visibility (mi)": (f["wx_visib"], wx["visib"], -1),  # lower visibility, more delay
        "mean departure delay at origin (min)": (f["origin_mean_delay_1h"], naive_hour_delay(flights_df).reindex(f.index), 1),
    }
    rows = []
    for name, (as_of, naive, sign) in pairs.items():
        ok = as_of.notna() & naive.notna()
        y = f.loc[ok, "late"]
        rows.append(
            {
                "feature": name,
                "flights": int(ok.sum()),
                "AUC as of decision time": round(roc_auc(y, sign * as_of[ok]), 3),
                "AUC naive join": round(roc_auc(y, sign * naive[ok]), 3),
            }
        )
    return pd.DataFrame(rows).set_index("feature")


def weather_leak_table(cmp: pd.DataFrame) -> pd.DataFrame:
    """Flights and late rate by (precipitation at decision time?, precipitation in the naive row?)."""
    both = cmp.dropna(subset=["precip_as_of", "precip_naive"])
    keys = {
        "precip at decision time": np.where(both["precip_as_of"] > 0, "yes", "no"),
        "precip in naive row": np.where(both["precip_naive"] > 0, "yes", "no"),
    }
    out = both.groupby([pd.Series(v, index=both.index, name=k) for k, v in keys.items()])["late"].agg(["size", "mean"])
    return out.rename(columns={"size": "flights", "mean": "late_rate"}).round({"late_rate": 3})


def departures_before(flights_df: pd.DataFrame, flight_id: int, window: pd.Timedelta = pd.Timedelta(hours=1)) -> pd.DataFrame:
    """The departures at a flight's origin in [decision time - window, decision time): its 1 h events.

    `flights_df` is `data.load_flights()` with `flight_id`; these rows are what the flight's
    `origin_departures_1h`, `origin_delayed_1h` and `origin_mean_delay_1h` are computed from.
    """
    me = flights_df.loc[flights_df["flight_id"] == flight_id].iloc[0]
    t0 = me["sched_dep_utc"] - DECISION_LEAD
    at = flights_df["actual_dep_utc"]
    mask = (flights_df["origin"] == me["origin"]) & (at >= t0 - window) & (at < t0)
    cols = ["flight_id", "carrier", "flight", "dest", "sched_dep_utc", "actual_dep_utc", "dep_delay"]
    return flights_df.loc[mask, cols].sort_values("actual_dep_utc").reset_index(drop=True)


def as_known_at(flights_df: pd.DataFrame, weather_df: pd.DataFrame, t0: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The world as an observer at `t0` sees it: every schedule, but only what has happened before `t0`.

    Flights that had not departed by `t0` (departure at or after `t0`, or cancelled) lose every
    post-decision column (delays, actual times, air time) and count as not departed; weather rows
    not yet known at `t0` are dropped (a row stamped H is known from H:52, `features.weather_known_at`).
    """
    from mlsys.features import POST_DECISION_COLUMNS, weather_known_at

    f = flights_df.copy()
    future = f["actual_dep_utc"].isna() | (f["actual_dep_utc"] >= t0)
    for col in POST_DECISION_COLUMNS:
        if col in ("actual_dep_utc", "cancelled", "diverted"):
            continue
        f[col] = f[col].astype("float64").where(~future)
    f["actual_dep_utc"] = f["actual_dep_utc"].where(~future)
    # not departed yet: neither cancelled nor diverted is known
    f["cancelled"] = f["cancelled"] & ~future
    f["diverted"] = f["diverted"] & ~future
    if "late" in f:  # the label is an outcome too
        f["late"] = f["late"].astype("float64").where(~future)
    return f, weather_df.loc[weather_known_at(weather_df) <= t0].copy()


# --------------------------------------------------------------------------- lesson 02: stamped is not known


def _ny(ts: pd.Series | pd.Timestamp) -> pd.Series | pd.Timestamp:
    """UTC timestamps as New York wall-clock time without a zone (how the desk reads them)."""
    if isinstance(ts, pd.Series):
        return ts.dt.tz_convert(data.NYC_TZ).dt.tz_localize(None)
    return ts.tz_convert(data.NYC_TZ).tz_localize(None)


def weather_by_rule(flights_df: pd.DataFrame, weather_df: pd.DataFrame, lead: pd.Timedelta = DECISION_LEAD) -> pd.DataFrame:
    """Per flight, the weather row each availability rule picks at its decision time.

    *stamped* (the old rule): the latest row at the origin stamped at or before the decision time;
    *known*: the latest row already complete then (stamp + `features.WEATHER_KNOWN_AFTER` <= decision
    time). Built from the weather table and the constant alone, not from the feature code, so it
    checks that code rather than repeating it. `reads_future` marks flights whose stamped row was
    not known yet at the decision time.
    """
    from mlsys.features import WEATHER_KNOWN_AFTER

    keep = [c for c in ("flight_id", "origin", "split") if c in flights_df]
    left = flights_df[keep].assign(decision_time=(flights_df["sched_dep_utc"] - lead).astype("datetime64[ns, UTC]"))
    left = left.sort_values("decision_time")
    wx = weather_df[["origin", "time_hour", "precip", "visib"]].copy()
    wx["time_hour"] = wx["time_hour"].astype("datetime64[ns, UTC]")
    out = left
    for rule, shift in (("stamped", pd.Timedelta(0)), ("known", WEATHER_KNOWN_AFTER)):
        right = wx.assign(available=wx["time_hour"] + shift).sort_values("available")
        right = right.rename(columns={"time_hour": f"{rule}_time", "precip": f"{rule}_precip", "visib": f"{rule}_visib"})
        out = pd.merge_asof(out, right, left_on="decision_time", right_on="available", by="origin", direction="backward")
        out = out.drop(columns="available")
    out["reads_future"] = out["stamped_time"] + WEATHER_KNOWN_AFTER > out["decision_time"]
    return out.set_index("flight_id").sort_index()


def weather_rule_summary(rules: pd.DataFrame, by: str = "split") -> pd.DataFrame:
    """Per group (`by`): flights, and how often the stamped rule reads a row not yet known and changes a value."""
    both = rules.dropna(subset=["stamped_time", "known_time"])
    grouped = both.groupby(by, sort=False)
    out = pd.DataFrame(
        {
            "flights": grouped.size(),
            "stamped row not yet known (share)": grouped["reads_future"].mean(),
            "precipitation differs (share)": grouped.apply(lambda g: (g["stamped_precip"] != g["known_precip"]).mean()),
            "visibility differs (share)": grouped.apply(lambda g: (g["stamped_visib"] != g["known_visib"]).mean()),
        }
    )
    return out.round(4)


def weather_rows_around(eng: Engine, flight_id: int, hours_before: int = 3, lead: pd.Timedelta = DECISION_LEAD) -> pd.DataFrame:
    """The weather rows at a flight's origin from `hours_before` the decision time to its departure, in New York time.

    Queried from the warehouse; for each row: its stamp, when it became known, precipitation,
    visibility, and which availability rule picks it at the decision time (`weather_by_rule`).
    """
    from mlsys.features import WEATHER_KNOWN_AFTER

    with eng.connect() as conn:
        me = dict(conn.execute(sa.select(flights).where(flights.c.flight_id == flight_id)).mappings().one())
        departure = pd.Timestamp(me["time_hour"]) + pd.Timedelta(minutes=me["minute"])
        decision = departure - lead
        query = (
            sa.select(weather.c.time_hour, weather.c.precip, weather.c.visib)
            .where(
                weather.c.origin == me["origin"],
                weather.c.time_hour >= (decision - pd.Timedelta(hours=hours_before)).to_pydatetime(),
                weather.c.time_hour <= departure.to_pydatetime(),
            )
            .order_by(weather.c.time_hour)
        )
        rows = pd.read_sql(query, conn)
    stamp = pd.to_datetime(rows["time_hour"]).dt.tz_localize("UTC")
    known = stamp + WEATHER_KNOWN_AFTER
    t0 = decision.tz_localize("UTC")
    out = pd.DataFrame(
        {
            "stamped": _ny(stamp),
            "known from": _ny(known),
            "precip": rows["precip"],
            "visib": rows["visib"],
        }
    )
    out["stamped rule picks"] = np.where(stamp == stamp[stamp <= t0].max(), "<-", "")
    out["known rule picks"] = np.where(stamp == stamp[known <= t0].max(), "<-", "")
    out.index = pd.Index([f"{me['origin']} {s:%H:%M}" for s in out["stamped"]], name="row")
    return out


def aircraft_previous_departure(flights_df: pd.DataFrame, flight_id: int, lead: pd.Timedelta = DECISION_LEAD) -> pd.Series:
    """The same aircraft's latest departure from New York before this flight's scheduled departure.

    With how long before the decision time it left and whether `features.tail_history` can use it
    (it looks back 24 h from the decision time). Empty when the aircraft has no earlier departure.
    """
    me = flights_df.loc[flights_df["flight_id"] == flight_id].iloc[0]
    decision = me["sched_dep_utc"] - lead
    same = flights_df[(flights_df["tailnum"] == me["tailnum"]) & (flights_df["actual_dep_utc"] < me["sched_dep_utc"])]
    same = same[same["flight_id"] != flight_id]
    if same.empty:
        return pd.Series(dtype=object)
    prev = same.sort_values("actual_dep_utc").iloc[-1]
    before = decision - prev["actual_dep_utc"]
    return pd.Series(
        {
            "tailnum": me["tailnum"],
            "flight_id": int(prev["flight_id"]),
            "route": f"{prev['carrier']}{prev['flight']} {prev['origin']} -> {prev['dest']}",
            "departed (New York time)": _ny(prev["actual_dep_utc"]),
            "hours before the decision time": round(before.total_seconds() / 3600, 1),
            "within the 24 h look-back": bool(pd.Timedelta(0) < before <= pd.Timedelta(hours=24)),
        },
        dtype=object,
    )


def plot_point_in_time(flights_df: pd.DataFrame, weather_df: pd.DataFrame, flight_id: int, hours_before: int = 3, lead: pd.Timedelta = DECISION_LEAD):  # noqa: ANN201 - a matplotlib Figure
    """Timeline of one flight in New York time: the decision time, each weather row's hour of observations
    and the moment it became known, the aircraft's previous departure, and the scheduled and actual departure."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from mlsys.features import WEATHER_KNOWN_AFTER

    me = flights_df.loc[flights_df["flight_id"] == flight_id].iloc[0]
    sched, decision = me["sched_dep_utc"], me["sched_dep_utc"] - lead
    start = decision - pd.Timedelta(hours=hours_before)
    end = max(sched, me["actual_dep_utc"] if pd.notna(me["actual_dep_utc"]) else sched) + pd.Timedelta(minutes=40)
    wx = weather_df[(weather_df["origin"] == me["origin"]) & weather_df["time_hour"].between(start, sched)].sort_values("time_hour")
    stamped_pick = wx.loc[wx["time_hour"] <= decision, "time_hour"].max()
    known_pick = wx.loc[wx["time_hour"] + WEATHER_KNOWN_AFTER <= decision, "time_hour"].max()

    fig, ax = plt.subplots(figsize=(11, 4.5))
    labels = []
    for i, (stamp, precip, visib) in enumerate(zip(wx["time_hour"], wx["precip"], wx["visib"], strict=True)):
        y = len(wx) - i
        color = "tab:green" if stamp == known_pick else ("tab:red" if stamp == stamped_pick else "tab:gray")
        ax.plot([_ny(stamp), _ny(stamp + pd.Timedelta(minutes=51))], [y, y], color=color, linewidth=7, alpha=0.45, solid_capstyle="butt")
        ax.plot([_ny(stamp + WEATHER_KNOWN_AFTER)], [y], marker="o", color=color)
        labels.append((y, f"row {_ny(stamp):%H:%M}: precip {precip:.2f}, visib {visib:g} mi"))
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=8)
    events = [("decision time", decision, "black", "-"), ("scheduled departure", sched, "tab:blue", "--")]
    if pd.notna(me["actual_dep_utc"]):
        events.append(("actual departure", me["actual_dep_utc"], "tab:purple", ":"))
    prev = aircraft_previous_departure(flights_df, flight_id, lead)
    if not prev.empty and prev["departed (New York time)"] >= _ny(start):
        events.append(("aircraft's previous departure", prev["departed (New York time)"].tz_localize(data.NYC_TZ), "tab:orange", "-."))
        note = ""
    elif prev.empty:
        note = f"aircraft {me['tailnum']}: no earlier departure from New York"
    else:
        note = (
            f"aircraft {me['tailnum']}'s previous departure from New York: {prev['departed (New York time)']:%d %b %H:%M} "
            f"({prev['route']}), {prev['hours before the decision time']:g} h before the decision time"
        )
    handles = []
    for label, when, color, style in events:
        ax.axvline(_ny(when), color=color, linestyle=style, linewidth=1.5)
        handles.append(Line2D([], [], color=color, linestyle=style, label=f"{label} {_ny(when):%H:%M}"))
    handles += [
        Line2D([], [], color="tab:red", linewidth=6, alpha=0.45, label="row the stamped rule picks"),
        Line2D([], [], color="tab:green", linewidth=6, alpha=0.45, label="row the known rule picks"),
        Line2D([], [], color="gray", marker="o", linestyle="", label="row known (:52)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_ylim(0.4, len(wx) + 0.6)
    ax.set_xlim(_ny(start) - pd.Timedelta(minutes=10), _ny(end))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel(f"New York time, {_ny(sched):%d %b %Y}; a bar spans the reports a row is built from (up to :51)" + (f"\n{note}" if note else ""))
    ax.set_title(f"flight {flight_id}, {me['carrier']}{me['flight']} {me['origin']} -> {me['dest']}: what is known at the decision time")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- lesson 02: OLTP and OLAP, ETL and ELT

#: One flight by its key, as the prediction service asks for it (OLTP), and an aggregate over all flights (OLAP).
WORKLOAD_SQL = {
    "OLTP: one flight by its key": "SELECT * FROM flights WHERE flight_id = :flight_id",
    "OLAP: late share per carrier": (
        "SELECT carrier, COUNT(*) AS flights, AVG(CASE WHEN arr_delay IS NULL OR arr_delay >= 15 THEN 1.0 ELSE 0.0 END) AS late_share "
        "FROM flights GROUP BY carrier"
    ),
}


def access_path(conn: Connection, sql: str, params: dict[str, object]) -> str:
    """'full scan' when the query plan reads any table whole, else 'index lookup' (SQLite or PostgreSQL).

    Read from the database's own plan: SQLite's `EXPLAIN QUERY PLAN` says SCAN or SEARCH per table,
    PostgreSQL's `EXPLAIN` says Seq Scan or Index Scan.
    """
    if conn.dialect.name == "sqlite":
        steps = [str(r[-1]).strip() for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"), params)]
        return "full scan" if any(s.startswith("SCAN") for s in steps) else "index lookup"
    if conn.dialect.name == "postgresql":
        plan = " ".join(str(r[0]) for r in conn.execute(sa.text(f"EXPLAIN {sql}"), params))
        return "full scan" if "Seq Scan" in plan else "index lookup"
    return "unknown"


def oltp_vs_olap(eng: Engine, flight_id: int, repeat: int = 5) -> pd.DataFrame:
    """Time a key lookup and an aggregate on the flights table, with the rows each must read.

    Rows read follow from the database's query plan: an index lookup reads the matching row, a full
    scan every row of the table. Times are the best of `repeat` runs.
    """
    params = {"flight_id": int(flight_id)}
    rows = []
    with eng.connect() as conn:
        total = conn.execute(sa.text("SELECT COUNT(*) FROM flights")).scalar_one()
        for name, sql in WORKLOAD_SQL.items():
            p = params if ":flight_id" in sql else {}
            best, result = float("inf"), []
            for _ in range(max(repeat, 1)):
                start = time.perf_counter()
                result = conn.execute(sa.text(sql), p).fetchall()
                best = min(best, time.perf_counter() - start)
            path = access_path(conn, sql, p)
            rows.append(
                {
                    "query": name,
                    "access path": path,
                    "rows read": len(result) if path == "index lookup" else int(total),
                    "rows returned": len(result),
                    "seconds": best,
                }
            )
    return pd.DataFrame(rows).set_index("query")


def elt_weather(raw_csv: Path, max_wind_speed: float) -> pd.DataFrame:
    """Extract-load-transform for the weather file in a throwaway in-memory SQLite database.

    Load: every raw row as text into `weather_raw`, nothing checked. Transform, afterwards and in
    SQL: typed columns and the rule that validation applies (`wind_speed` at most `max_wind_speed`),
    into `weather_clean`. Returns the row count of each table; the raw rows stay, so a changed
    transform can be rerun without extracting again.
    """
    raw = pd.read_csv(raw_csv, dtype=str, keep_default_na=False)
    eng = sa.create_engine("sqlite://")
    with eng.begin() as conn:
        raw.to_sql("weather_raw", conn, index=False)
        conn.execute(
            sa.text(
                "CREATE TABLE weather_clean AS "
                "SELECT origin, time_hour, CAST(NULLIF(precip, 'NA') AS REAL) AS precip, CAST(NULLIF(visib, 'NA') AS REAL) AS visib, "
                "CAST(NULLIF(wind_speed, 'NA') AS REAL) AS wind_speed FROM weather_raw "
                "WHERE NULLIF(wind_speed, 'NA') IS NULL OR CAST(wind_speed AS REAL) <= :limit"
            ),
            {"limit": max_wind_speed},
        )
        counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("weather_raw", "weather_clean")}
    eng.dispose()
    return pd.Series(counts, name="rows").to_frame()
