"""Fixtures for the data tests: a data folder of one's own, and an isolated PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlsys import data, warehouse
from mlsys.config import Settings, get_settings, in_ci, override

PG_URL = os.environ.get("DATABASE_URL_TEST", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@cache
def real_flight_lines() -> tuple[str, ...]:
    """The header and the first 500 data lines of the course's flights file, as text."""
    archive = zipfile.ZipFile(get_settings().raw_dir / data.RAW_FILES["flights"])
    return tuple(archive.read("flights.csv").decode().splitlines()[:501])


@dataclass
class OwnData:
    """A data folder of one's own (`MLSYS_DATA_DIR`) with small real tables and its own SHA256SUMS."""

    folder: Path
    settings: Settings

    @property
    def raw_dir(self) -> Path:
        return self.folder / "raw"

    def flights(self, content: str | bytes, name: str = "flights.csv") -> Path:
        """Make `content` the flights file (removing any other) and record the checksums again."""
        for other in data.raw_names("flights"):
            (self.raw_dir / other).unlink(missing_ok=True)
        path = self.raw_dir / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        data.record_checksums(self.folder, self.settings)
        return path


@pytest.fixture()
def own_data(tmp_path: Path) -> OwnData:
    """The first 500 real flights, the first 300 weather rows and the whole reference tables."""
    raw = tmp_path / "my-data" / "raw"
    raw.mkdir(parents=True)
    real = get_settings().raw_dir
    (raw / "weather.csv").write_text("\n".join((real / "weather.csv").read_text().splitlines()[:301]) + "\n")
    for name in ("planes.csv", "airports.csv", "airlines.csv"):
        (raw / name).write_bytes((real / name).read_bytes())
    settings = override(get_settings(), data_dir=tmp_path / "my-data", database_url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    own = OwnData(tmp_path / "my-data", settings)
    own.flights("\n".join(real_flight_lines()) + "\n")
    return own


@contextmanager
def isolated_schema() -> Iterator[sa.Engine]:
    """An engine whose tables live in a new, uniquely named schema, dropped afterwards.

    Entered inside the test (not as a fixture's setup) so that a missing server makes the test
    itself FAIL in CI, and skip only on a laptop without PostgreSQL.
    """
    try:
        admin = warehouse.connect(PG_URL)
    except warehouse.WarehouseUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    schema = f"mlsys_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng = warehouse.connect(PG_URL, schema=schema)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture()
def pg_schema() -> Callable[[], AbstractContextManager[sa.Engine]]:
    """`with pg_schema() as eng:` an isolated PostgreSQL schema (see `isolated_schema`)."""
    return isolated_schema
