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
