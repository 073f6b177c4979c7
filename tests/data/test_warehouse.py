"""The warehouse ETL: idempotent loads, counts that match validation, quarantine, joins, errors.

Loads only January's flights and weather (`MONTHS`) to stay fast; the reference tables are
loaded whole. The PostgreSQL test uses its own schema, created and dropped around it.
"""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest
import sqlalchemy as sa

from mlsys import data, warehouse
from mlsys.config import get_settings, override

MONTHS = [1]


def expected_counts() -> dict[str, int]:
    """Rows validation accepted per table (January only for flights and weather), plus quarantined rows."""
    counts = {}
    for name in data.TABLES:
        table = data.load_table(name)
        if name in ("flights", "weather"):
            table = table[table["month"].isin(MONTHS)]
        counts[name] = len(table)
    counts["quarantine"] = sum(len(data.load_quarantine(name)) for name in data.TABLES)
    return counts


def checksums(eng: sa.Engine) -> dict[str, str]:
    return {name: warehouse.checksum(eng, name) for name in warehouse.LOADED}


def check_idempotent_load(eng: sa.Engine) -> None:
    """Shared by the SQLite and PostgreSQL tests."""
    first = warehouse.load_warehouse(eng, months=MONTHS)
    sums = checksums(eng)
    second = warehouse.load_warehouse(eng, months=MONTHS)
    pd.testing.assert_series_equal(first["warehouse rows"], second["warehouse rows"])
    assert checksums(eng) == sums

    expected = expected_counts()
    assert second["warehouse rows"].to_dict() == expected
    assert (second["source rows"] == second["warehouse rows"]).all()
    assert warehouse.row_counts(eng).to_dict() == expected
    assert expected["quarantine"] > 0, "the raw data has a known bad weather row; it must reach the quarantine"

    # the join keeps one row per flight: weather has one row per (origin, hour), planes per tailnum
    cube = warehouse.late_rate_cube(eng)
    assert cube["flights"].sum() == expected["flights"]
    flights = warehouse.read_table(eng, "flights")
    late = flights["dep_time"].isna() | flights["arr_delay"].isna() | (flights["arr_delay"] >= data.LATE_MINUTES)
    assert cube["late"].sum() == late.sum()
    for dimension in warehouse.DIMENSIONS:
        rates = warehouse.late_rates(cube, dimension)
        assert rates["flights"].sum() == expected["flights"]
        assert rates["late_rate"].between(0, 1).all()


@pytest.fixture()
def sqlite_engine(tmp_path):
    settings = override(get_settings(), database_url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    eng = warehouse.engine(settings)
    yield eng
    eng.dispose()


def test_sqlite_load_is_idempotent_and_complete(sqlite_engine):
    check_idempotent_load(sqlite_engine)


def test_reload_repairs_tampering_and_keeps_predictions(sqlite_engine):
    eng = sqlite_engine
    warehouse.load_warehouse(eng, months=MONTHS)
    sums = checksums(eng)
    with eng.begin() as conn:
        conn.execute(sa.delete(warehouse.flights).where(warehouse.flights.c.flight_id < 100))
        conn.execute(sa.update(warehouse.weather).values(precip=9.0))
        conn.execute(
            sa.insert(warehouse.predictions).values(
                flight_id=1,
                model_name="m",
                model_version="1",
                probability=0.3,
                decision_time=pd.Timestamp("2013-01-01 08:15").to_pydatetime(),
                requested_at=pd.Timestamp("2013-01-01 08:15").to_pydatetime(),
            )
        )
    assert checksums(eng) != sums
    warehouse.load_warehouse(eng, months=MONTHS)
    assert checksums(eng) == sums
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(warehouse.predictions)).scalar_one() == 1


def test_flights_keys_and_quarantine_content(sqlite_engine):
    eng = sqlite_engine
    warehouse.load_warehouse(eng, months=MONTHS)
    flights = warehouse.read_table(eng, "flights")
    accepted = data.load_table("flights")
    accepted = accepted[accepted["month"].isin(MONTHS)]
    # no flight is quarantined, so flight_id is the position in the validated table (as in features)
    assert flights["flight_id"].tolist() == accepted.index.tolist()
    assert flights["time_hour"].min() == accepted["time_hour"].min().tz_localize(None)
    assert not flights.duplicated(["time_hour", "carrier", "flight"]).any()

    stored = warehouse.read_table(eng, "quarantine")
    bad = data.load_quarantine("weather")
    weather_rows = stored[stored["table_name"] == "weather"].reset_index(drop=True)
    assert weather_rows["line"].tolist() == pd.to_numeric(bad["line"]).tolist()
    raw = json.loads(weather_rows.loc[0, "raw"])
    assert raw["wind_speed"] == bad.loc[0, "wind_speed"]
    assert weather_rows.loc[0, "reason"] == bad.loc[0, "reason"]


def test_natural_key_is_enforced(sqlite_engine):
    eng = sqlite_engine
    warehouse.load_warehouse(eng, months=MONTHS)
    row = warehouse.read_table(eng, "flights").iloc[0].to_dict()
    row["flight_id"] = 10_000_000
    row = {k: (None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)) for k, v in row.items()}
    with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
        conn.execute(sa.insert(warehouse.flights).values(**row))


def test_flight_ids_skip_quarantined_lines():
    quarantined = pd.DataFrame({"line": ["3", "5"]})  # data rows 1 and 3 (0-based)
    assert data.source_rows(4, quarantined).tolist() == [0, 2, 4, 5]
    assert data.source_rows(3, quarantined.iloc[:0]).tolist() == [0, 1, 2]
    # after blank lines the physical line no longer gives the data row: data_row does
    quarantined = pd.DataFrame({"line": [9, 12], "data_row": [1, 3]})
    assert data.source_rows(4, quarantined).tolist() == [0, 2, 4, 5]
    with pytest.raises(data.IngestError, match="not distinct rows"):
        data.source_rows(4, pd.DataFrame({"line": [9, 12], "data_row": [1, 1]}))


def test_late_rates_roll_up_the_cube():
    cube = pd.DataFrame(
        {"weather": ["dry", "dry", "wet"], "plane_age": ["old", "new", "old"], "dest_tz": ["a", "a", "b"], "flights": [10, 30, 10], "late": [1, 3, 5]}
    )
    by_weather = warehouse.late_rates(cube, "weather")
    assert by_weather.index.tolist() == ["wet", "dry"]  # highest late rate first
    assert by_weather.loc["dry", "flights"] == 40 and by_weather.loc["dry", "late_rate"] == 0.1
    with pytest.raises(KeyError, match="dimension"):
        warehouse.late_rates(cube, "carrier")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_says_what_to_start():
    settings = override(get_settings(), database_url=f"postgresql+psycopg://postgres:secret@127.0.0.1:{_closed_port()}/test")
    with pytest.raises(warehouse.WarehouseUnavailable) as err:
        warehouse.engine(settings)
    message = str(err.value)
    assert "start PostgreSQL" in message
    assert "make up" in message and "docker compose -f docker/compose.yml up -d postgres" in message
    assert "remove DATABASE_URL" in message
    assert "secret" not in message  # the password is masked


@pytest.mark.postgres
def test_postgres_load_is_idempotent_and_complete(pg_schema):
    with pg_schema() as eng:
        check_idempotent_load(eng)
        with eng.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        assert schema.startswith("mlsys_test_")  # the load went to the isolated schema, not public
