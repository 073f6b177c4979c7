"""Ingest loses nothing: deliberately broken flights files, each with the message it must give.

Every test writes a small file (the first real flights, then one defect), reads it the way a user
would (`validate_file`, `load_validated`, `load_warehouse`), and checks which file, line or column
and which rule the message names, and that rows in = accepted + quarantined.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlsys import data, warehouse
from mlsys.config import get_settings, override
from mlsys.logger import logger



@cache
def real_flight_lines() -> tuple[str, ...]:
    """The header and the first 500 data lines of the course's flights file (as `own_data` holds them)."""
    archive = zipfile.ZipFile(get_settings().raw_dir / data.RAW_FILES["flights"])
    return tuple(archive.read("flights.csv").decode().splitlines()[:501])


HEADER = real_flight_lines()[0]
COLUMNS = HEADER.split(",")


def rows(n: int = 10) -> list[str]:
    """The first `n` real data lines (all valid)."""
    return list(real_flight_lines()[1 : n + 1])


def with_value(line: str, column: str, value: str) -> str:
    """`line` with one column's text replaced (the real lines have no quotes)."""
    fields = line.split(",")
    fields[COLUMNS.index(column)] = value
    return ",".join(fields)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def reasons(result: data.ValidationResult) -> dict[int, str]:
    """`{physical line: reason}` of the quarantine."""
    return dict(zip(result.quarantined["line"].tolist(), result.quarantined["reason"], strict=True))


def assert_adds_up(result: data.ValidationResult, rows_in: int) -> None:
    assert result.rows_in == rows_in == len(result.accepted) + len(result.quarantined)


# --------------------------------------------------------------------------- silent row loss


def four_bad_rows() -> str:
    lines = rows(500)
    for i in (10, 20, 30, 40):
        lines[i] = with_value(lines[i], "month", "13")
    return "\n".join([HEADER, *lines]) + "\n"


def test_a_file_loaded_again_gets_its_own_quarantine_back(own_data) -> None:
    settings = own_data.settings
    own_data.flights(four_bad_rows())
    first = data.load_validated("flights", settings)
    assert (len(first.accepted), len(first.quarantined)) == (496, 4)
    own_data.flights("\n".join([HEADER, *rows(500)]) + "\n")
    assert (len(data.load_table("flights", settings)), len(data.load_quarantine("flights", settings))) == (500, 0)

    own_data.flights(four_bad_rows())  # the first file again: a cache hit for its accepted rows
    again = data.load_validated("flights", settings)
    assert_adds_up(again, 500)
    assert len(again.quarantined) == 4, "the quarantine must come from the same file as the accepted rows"
    assert again.quarantined["line"].tolist() == [12, 22, 32, 42]
    assert again.quarantined["reason"].str.contains("month: above 12").all()

    frames = warehouse.table_frames(settings)
    assert set(frames["flights"]["flight_id"]) == set(range(500)) - {10, 20, 30, 40}
    eng = warehouse.engine(settings)
    counts = warehouse.load_warehouse(eng, settings)
    eng.dispose()
    assert counts.loc["flights", "warehouse rows"] == 496
    assert counts.loc["quarantine", "warehouse rows"] == 4


def test_a_cache_that_does_not_add_up_is_an_error_not_a_result(own_data) -> None:
    settings = own_data.settings
    path = own_data.flights(four_bad_rows())
    data.load_validated("flights", settings)
    folder = data.ingest_dir(settings, "flights", data.sha256(path))

    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    quarantine.head(1).to_parquet(folder / "quarantine.parquet", index=False)  # three rows lost
    with pytest.raises(data.IngestError, match=r"flights: the cache in .*flights-\w+ does not match its manifest: 496 accepted \+ 1 quarantined"):
        data.load_table("flights", settings)

    quarantine.to_parquet(folder / "quarantine.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"rows_in": 501}))
    with pytest.raises(data.IngestError, match=r"flights \(.*flights.csv\): rows do not add up: 501 rows in, 496 accepted \+ 4 quarantined"):
        data.load_quarantine("flights", settings)


# --------------------------------------------------------------------------- unreadable files


def test_zero_byte_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flights.csv"
    path.write_bytes(b"")
    with pytest.raises(data.RawFileError, match=r"flights\.csv is empty \(0 bytes\): a CSV file needs at least a header line"):
        data.validate_file(path, "flights")


def test_gzip_file_named_csv_is_a_clear_error(tmp_path: Path) -> None:
    body = ("\n".join([HEADER, *rows(5)]) + "\n").encode()
    path = tmp_path / "flights.csv"
    path.write_bytes(gzip.compress(body))
    with pytest.raises(data.RawFileError, match=r"flights\.csv is gzip-compressed but named '\.csv': rename it to flights\.csv\.gz"):
        data.validate_file(path, "flights")
    # named for what it is, it reads
    path.rename(tmp_path / "flights.csv.gz")
    assert_adds_up(data.validate_file(tmp_path / "flights.csv.gz", "flights"), 5)


def test_zip_with_two_files_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("flights.csv", HEADER + "\n")
        archive.writestr("notes.txt", "hello")
    with pytest.raises(data.RawFileError, match=r"flights\.csv\.zip holds 2 files \['flights\.csv', 'notes\.txt'\]"):
        data.validate_file(path, "flights")


def test_utf16_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flights.csv"
    path.write_bytes(("\n".join([HEADER, *rows(2)]) + "\n").encode("utf-16"))
    with pytest.raises(data.RawFileError, match=r"flights\.csv, line 1: contains NUL bytes.*save it as UTF-8"):
        data.validate_file(path, "flights")


def test_latin1_byte_quarantines_its_row_with_line_and_column(tmp_path: Path) -> None:
    lines = rows(5)
    body = "\n".join([HEADER, *lines[:3]]).encode() + b"\n" + with_value(lines[3], "dest", "MI\xe9").encode("latin-1") + b"\n" + lines[4].encode() + b"\n"
    path = tmp_path / "flights.csv"
    path.write_bytes(body)
    result = data.validate_file(path, "flights")
    assert_adds_up(result, 5)
    assert len(result.accepted) == 4
    line, reason = next(iter(reasons(result).items()))
    assert line == 5 and reason.startswith("dest: not valid UTF-8 (byte 0xe9") and "save the file as UTF-8" in reason
    assert result.quarantined.loc[0, "dest"] == "MI\\xe9"  # the byte is kept, visibly


def test_row_with_an_extra_field_is_quarantined_not_fatal(tmp_path: Path) -> None:
    lines = rows(5)
    lines[3] += ",x"  # physical line 5
    result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, *lines]), "flights")
    assert_adds_up(result, 5)
    assert reasons(result) == {5: "20 fields where the header has 19 (extra: 'x')"}
    assert result.quarantined.loc[0, "data_row"] == 3
    assert result.quarantined.loc[0, "carrier"] == lines[3].split(",")[9]  # fields kept by position


def test_row_with_a_missing_field_is_quarantined(tmp_path: Path) -> None:
    lines = rows(5)
    lines[1] = lines[1].rsplit(",", 1)[0]  # drops time_hour: line 3
    result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, *lines]), "flights")
    assert_adds_up(result, 5)
    assert reasons(result) == {3: "18 fields where the header has 19"}


def test_missing_column_names_the_file(tmp_path: Path) -> None:
    header = HEADER.replace(",arr_delay", "")
    lines = [line.split(",") for line in rows(2)]
    body = [header, *(",".join(f[:8] + f[9:]) for f in lines)]
    with pytest.raises(data.SchemaError, match=r"flights\.csv: missing column\(s\) \['arr_delay'\] in the header"):
        data.validate_file(write(tmp_path / "flights.csv", body), "flights")


# --------------------------------------------------------------------------- impossible values


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("flight", "7.25e2", "flight: not a valid int"),
        ("carrier", "UAX", "carrier: longer than 2 characters"),
        ("dest", "IAHX", "dest: longer than 3 characters"),
        ("tailnum", "N14228XYZ", "tailnum: longer than 8 characters"),
        ("day", "2", "year/month/day/hour differ from time_hour in New York time"),
        ("hour", "7", "year/month/day/hour differ from time_hour in New York time"),
        ("time_hour", "2013-01-01T11:30:00Z", "time_hour: not a whole hour"),
    ],
)
def test_impossible_value_is_quarantined(tmp_path: Path, column: str, value: str, rule: str) -> None:
    lines = rows(10)
    lines[6] = with_value(lines[6], column, value)
    if column == "hour":  # keep hour*100+minute = sched_dep_time, so only the time-zone rule fires
        minute = int(lines[6].split(",")[COLUMNS.index("minute")])
        lines[6] = with_value(lines[6], "sched_dep_time", str(7 * 100 + minute))
    result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, *lines]), "flights")
    assert_adds_up(result, 10)
    assert reasons(result) == {8: rule}
    assert result.quarantined.loc[0, column] == value


def test_february_30th_is_not_a_date(tmp_path: Path) -> None:
    line = with_value(with_value(rows(1)[0], "month", "2"), "day", "30")
    result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, line, *rows(3)[1:]]), "flights")
    assert_adds_up(result, 3)
    assert "year/month/day: not a calendar date" in reasons(result)[2]


def test_local_date_may_differ_from_the_utc_date(tmp_path: Path) -> None:
    """A departure at 20:00 in New York is 01:00 the next day in UTC: that is consistent."""
    archive = zipfile.ZipFile(get_settings().raw_dir / data.RAW_FILES["flights"])
    first_day = archive.read("flights.csv").decode().splitlines()[1:843]  # the 842 flights of 2013-01-01
    evening = [line for line in first_day if line.split(",")[COLUMNS.index("hour")] == "20"][:3]
    assert evening and all("T01:00:00Z" in line and "2013-01-02" in line for line in evening)
    result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, *evening]), "flights")
    assert (len(result.accepted), len(result.quarantined)) == (len(evening), 0)


# --------------------------------------------------------------------------- line numbers


def test_line_numbers_are_physical_after_blank_lines(tmp_path: Path) -> None:
    good = rows(3)
    bad = with_value(good[2], "month", "13")
    path = write(tmp_path / "flights.csv", [HEADER, "", good[0], "", good[1], bad])
    result = data.validate_file(path, "flights")
    assert_adds_up(result, 3)
    assert list(reasons(result)) == [6]
    assert result.quarantined.loc[0, "data_row"] == 2  # blank lines are not data rows
    assert data.source_rows(len(result.accepted), result.quarantined).tolist() == [0, 1]


def test_line_numbers_are_physical_with_quoted_line_breaks(tmp_path: Path) -> None:
    """A quoted field may hold commas and line breaks: the csv-module path keeps counting lines."""
    good = rows(3)
    bad = with_value(good[2], "dep_delay", "soon")
    lines = [HEADER + ",note", good[0] + ',"two,\nlines"', good[1] + ",", "", bad + ',"x"', ""]
    result = data.validate_file(write(tmp_path / "flights.csv", lines), "flights")
    assert_adds_up(result, 3)
    assert reasons(result) == {6: "dep_delay: not a valid float"}
    assert result.quarantined.loc[0, "note"] == "x"
    assert result.quarantined.loc[0, "data_row"] == 2


def test_unclosed_quote_is_reported_where_it_starts(tmp_path: Path) -> None:
    good = rows(4)
    lines = [HEADER, good[0], with_value(good[1], "tailnum", '"N1'), good[2], good[3]]
    result = data.validate_file(write(tmp_path / "flights.csv", lines), "flights")
    assert_adds_up(result, 2)
    assert "the row spans lines 3-5 (an unclosed quote?)" in reasons(result)[3]


# --------------------------------------------------------------------------- keys at warehouse precision


def hundred_ns_apart() -> str:
    first, second = rows(2)
    second = with_value(first, "time_hour", "2013-01-01T10:00:00.0000001Z")
    return "\n".join([HEADER, first, second, *rows(5)[2:]]) + "\n"


def test_keys_are_compared_at_the_warehouse_precision(tmp_path: Path) -> None:
    path = tmp_path / "flights.csv"
    path.write_text(hundred_ns_apart())
    result = data.validate_file(path, "flights")
    assert_adds_up(result, 5)
    found = reasons(result)
    assert "duplicate key ('time_hour', 'carrier', 'flight')" in found[2]
    assert "time_hour: finer than microseconds (the warehouse stores microseconds)" in found[3]
    assert "duplicate key" in found[3]


def test_keys_100ns_apart_load_into_sqlite(own_data) -> None:
    own_data.flights(hundred_ns_apart())
    eng = warehouse.engine(own_data.settings)
    counts = warehouse.load_warehouse(eng, own_data.settings)  # was: UNIQUE constraint failed
    eng.dispose()
    assert counts.loc["flights", "warehouse rows"] == 3
    assert counts.loc["quarantine", "warehouse rows"] == 2


@pytest.mark.postgres
def test_keys_100ns_apart_load_into_postgres(own_data, pg_schema) -> None:
    own_data.flights(hundred_ns_apart())
    with pg_schema() as eng:
        counts = warehouse.load_warehouse(eng, own_data.settings)
        assert counts.loc["flights", "warehouse rows"] == 3
        stored = warehouse.read_table(eng, "quarantine")
        assert stored.loc[stored["table_name"] == "flights", "line"].tolist() == [2, 3]


# --------------------------------------------------------------------------- empty loads


def test_empty_load_does_not_replace_a_table(own_data) -> None:
    settings = own_data.settings
    eng = warehouse.engine(settings)
    warehouse.load_warehouse(eng, settings)
    assert warehouse.row_counts(eng)["flights"] == 500

    own_data.flights(HEADER + "\n")
    assert_adds_up(data.load_validated("flights", settings), 0)
    with pytest.raises(warehouse.EmptyLoadError, match=r"refusing to replace the 500 rows of warehouse table 'flights' with an empty load") as err:
        warehouse.load_warehouse(eng, settings)
    assert "load_warehouse(..., allow_empty=True)" in str(err.value)
    assert warehouse.row_counts(eng)["flights"] == 500  # nothing changed

    counts = warehouse.load_warehouse(eng, settings, allow_empty=True)
    assert counts.loc["flights", "warehouse rows"] == 0
    eng.dispose()


def test_empty_month_selection_is_refused_too(own_data) -> None:
    eng = warehouse.engine(own_data.settings)
    warehouse.load_warehouse(eng, own_data.settings)
    with pytest.raises(warehouse.EmptyLoadError, match=r"accepted no flights rows for months \[7\]"):
        warehouse.load_warehouse(eng, own_data.settings, months=[7])
    eng.dispose()


# --------------------------------------------------------------------------- bringing your own data


def test_own_data_folder_with_recorded_checksums(own_data, capsys: pytest.CaptureFixture[str]) -> None:
    folder, settings = own_data.folder, own_data.settings
    lines = rows(20)
    lines[4] = with_value(lines[4], "dep_delay", "soon")
    path = own_data.raw_dir / "flights.csv"
    write(path, [HEADER, *lines])
    with pytest.raises(data.ChecksumError, match=r"flights\.csv does not match .*SHA256SUMS.*python -m mlsys\.data checksums .*my-data"):
        data.load_table("flights", settings)

    assert data.main(["checksums", str(folder), "--check"]) == 1
    assert "changed" in capsys.readouterr().out
    assert data.main(["checksums", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "flights.csv" in out and "changed" in out and "wrote" in out
    assert data.main(["checksums", str(folder), "--check"]) == 0

    result = data.load_validated("flights", settings)
    assert_adds_up(result, 20)
    assert reasons(result) == {6: "dep_delay: not a valid float"}


def test_a_file_added_without_recording_its_checksum_is_not_ignored(own_data) -> None:
    (own_data.raw_dir / "weather.csv.gz").write_bytes(gzip.compress((own_data.raw_dir / "weather.csv").read_bytes()))
    with pytest.raises(data.ChecksumError, match=r"has \['weather\.csv\.gz'\] for the weather table, but SHA256SUMS lists weather\.csv: .*checksums"):
        data.load_table("weather", own_data.settings)
    with pytest.raises(data.ChecksumError, match=r"has \['weather\.csv', 'weather\.csv\.gz'\] for the weather table: keep one file per table"):
        data.record_checksums(own_data.folder, own_data.settings)


def test_checksums_refuses_the_course_folder(capsys: pytest.CaptureFixture[str]) -> None:
    course = get_settings().root / "03-data"
    before = (course / "raw" / data.CHECKSUM_FILE).read_bytes()
    assert data.main(["checksums", str(course)]) == 2
    assert "holds the course's reference files" in capsys.readouterr().err
    assert (course / "raw" / data.CHECKSUM_FILE).read_bytes() == before


def test_tampered_course_file_says_both_routes(tmp_path: Path) -> None:
    course = tmp_path / "03-data" / "raw"
    course.mkdir(parents=True)
    real = get_settings().raw_dir
    for name in (*data.RAW_FILES.values(), data.CHECKSUM_FILE):
        (course / name).write_bytes((real / name).read_bytes())
    (course / "airlines.csv").write_text("carrier,name\nZZ,Tampered\n")
    settings = override(get_settings(), root=tmp_path, data_dir=tmp_path / "03-data")
    with pytest.raises(data.ChecksumError) as err:
        data.ensure_raw(settings)
    message = str(err.value)
    assert "git checkout -- 03-data/raw/airlines.csv" in message
    assert "MLSYS_DATA_DIR=my-data" in message and "python -m mlsys.data checksums my-data" in message


def test_checksums_command_runs_as_a_module(own_data) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlsys.data", "checksums", str(own_data.folder), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "all files match" in done.stdout


# --------------------------------------------------------------------------- logging and schema agreement


def test_routine_quarantine_is_not_a_warning(tmp_path: Path) -> None:
    """Headless notebook runs log WARNING and up to stderr, which nbval compares: keep counts at INFO."""
    lines = rows(5)
    lines[0] = with_value(lines[0], "month", "13")
    seen: list[str] = []
    sink = logger.add(seen.append, level="WARNING")
    try:
        result = data.validate_file(write(tmp_path / "flights.csv", [HEADER, *lines]), "flights")
    finally:
        logger.remove(sink)
    assert len(result.quarantined) == 1
    assert seen == []


def test_warehouse_string_widths_come_from_the_schemas() -> None:
    for name, schema in data.SCHEMAS.items():
        table = warehouse.metadata.tables[name]
        for column, spec in schema.columns.items():
            if spec.kind == "str":
                assert spec.max_length, f"{name}.{column} needs a max_length (the warehouse column's width)"
                assert isinstance(table.c[column].type, sa.String) and table.c[column].type.length == spec.max_length
