"""Schema validation: bad rows are quarantined with a reason, counts always add up."""

import io
from pathlib import Path

import pandas as pd
import pytest

from mlsys import data
from mlsys.config import get_settings


def _raw_flights() -> pd.DataFrame:
    raw_dir = data.ensure_raw(get_settings())
    return data.read_raw(raw_dir / data.RAW_FILES["flights"]).head(200)


def test_real_tables_pass_with_known_quarantine() -> None:
    report = data.validation_report()
    assert (report["rows in"] == report["accepted"] + report["quarantined"]).all()
    # every real flight passes, the local-time/UTC and calendar-date rules included
    assert report.loc["flights"].tolist() == [336_776, 336_776, 0]
    assert report.loc["weather"].tolist() == [26_115, 26_114, 1]
    assert report.loc["planes"].tolist() == [3_322, 3_322, 0]
    assert report.loc["airports"].tolist() == [1_458, 1_458, 0]
    assert report.loc["airlines"].tolist() == [16, 16, 0]
    # the one weather row with a 1,048 mph wind is the data set's known glitch (EWR 2013-02-12 03:00 local)
    quarantined = data.load_quarantine("weather")
    assert len(quarantined) == 1
    row = quarantined.loc[0]
    assert (row["line"], row["origin"], row["time_hour"], row["reason"]) == (1011, "EWR", "2013-02-12T08:00:00Z", "wind_speed: above 150")


def test_flight_id_is_the_raw_row_number() -> None:
    """No flight is quarantined and the file has no blank lines, so flight_id is 0..n-1 in file order."""
    flights = data.load_flights()
    assert flights["flight_id"].tolist() == list(range(336_776))


def test_checksums_match_committed_files() -> None:
    raw_dir = get_settings().raw_dir
    for name, digest in data.expected_checksums(raw_dir).items():
        assert data.sha256(raw_dir / name) == digest


def test_broken_file_is_quarantined_with_reasons(tmp_path: Path) -> None:
    raw = _raw_flights()
    raw.loc[0, "dep_delay"] = "soon"  # wrong type
    raw.loc[1, "month"] = "13"  # out of range
    raw.loc[2, "origin"] = "BOS"  # not a NYC airport
    raw.loc[3, "carrier"] = None  # missing required value
    raw.loc[5] = raw.loc[4]  # duplicate key: both copies quarantined
    raw.loc[6, "hour"] = "3"  # disagrees with sched_dep_time
    path = tmp_path / "flights.csv"
    raw.to_csv(path, index=False)

    result = data.validate_file(path, "flights")
    assert result.n_in == len(raw) == len(result.accepted) + len(result.quarantined)
    reasons = dict(zip(result.quarantined["line"], result.quarantined["reason"], strict=True))
    assert "dep_delay: not a valid float" in reasons[2]
    assert "month: above 12" in reasons[3]
    assert "origin: not one of" in reasons[4]
    assert "carrier: missing" in reasons[5]
    assert "duplicate key" in reasons[6] and "duplicate key" in reasons[7]
    assert "sched_dep_time" in reasons[8]
    assert len(result.quarantined) == 7
    # the original text survives in the quarantine, so a human can fix and replay it
    assert result.quarantined.loc[result.quarantined["line"] == 2, "dep_delay"].item() == "soon"


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    raw = _raw_flights().drop(columns=["arr_delay"])
    with pytest.raises(data.SchemaError, match="missing column.*arr_delay"):
        data.validate(raw, data.SCHEMAS["flights"])


def test_fractional_value_in_integer_column_is_a_type_error() -> None:
    raw = pd.read_csv(io.StringIO("carrier,name\nAA,American\nBB,Bee\n"), dtype=str)
    assert len(data.validate(raw, data.SCHEMAS["airlines"]).accepted) == 2
    planes = data.read_raw(get_settings().raw_dir / "planes.csv").head(3)
    planes.loc[0, "engines"] = "1.5"
    result = data.validate(planes, data.SCHEMAS["planes"])
    assert result.quarantined["reason"].tolist() == ["engines: not a valid int"]


def test_tampered_raw_file_fails_its_checksum(tmp_path: Path) -> None:
    from mlsys.config import load_settings

    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    real = get_settings().raw_dir
    for name in (*data.RAW_FILES.values(), data.CHECKSUM_FILE):
        (raw_dir / name).write_bytes((real / name).read_bytes())
    (raw_dir / "airlines.csv").write_text("carrier,name\nZZ,Tampered\n")
    settings = load_settings(env_file=tmp_path / "none", environ={"MLSYS_DATA_DIR": str(tmp_path)})
    with pytest.raises(data.ChecksumError, match=r"airlines\.csv does not match .*python -m mlsys\.data checksums"):
        data.ensure_raw(settings)


def test_missing_raw_file_is_restored_from_the_installed_package(tmp_path: Path) -> None:
    from mlsys.config import load_settings

    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / data.CHECKSUM_FILE).write_bytes((get_settings().raw_dir / data.CHECKSUM_FILE).read_bytes())
    settings = load_settings(env_file=tmp_path / "none", environ={"MLSYS_DATA_DIR": str(tmp_path)})
    data.ensure_raw(settings)
    assert data.sha256(raw_dir / "weather.csv") == data.expected_checksums(raw_dir)["weather.csv"]
