"""`mlsys.formats`: the CSV-versus-Parquet benchmark and its reproducible report."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from mlsys import data, formats


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return data.load_table("flights").head(5_000)


@pytest.fixture(scope="module")
def bench(flights, tmp_path_factory) -> pd.DataFrame:
    return formats.benchmark(flights, repeat=1, workdir=tmp_path_factory.mktemp("formats"))


def test_benchmark_shape_and_values(bench):
    assert list(bench.index) == ["CSV", "Parquet"]
    assert list(bench.columns) == ["size_mb", *formats.MEASURES]
    assert (bench > 0).all().all()


def test_parquet_file_is_smaller(bench):
    # sizes are deterministic (same data, same writer), unlike times
    assert bench.loc["Parquet", "size_mb"] < bench.loc["CSV", "size_mb"]
    assert formats.speedups(bench)["size_mb"] == pytest.approx(bench.loc["CSV", "size_mb"] / bench.loc["Parquet", "size_mb"])


def test_files_are_written_where_asked(flights, tmp_path):
    formats.benchmark(flights.head(100), repeat=1, workdir=tmp_path)
    assert (tmp_path / "flights.csv").stat().st_size > 0
    back = pd.read_parquet(tmp_path / "flights.parquet")
    pd.testing.assert_frame_equal(back, flights.head(100))  # Parquet keeps values and types


def test_report_uses_stable_formats(bench):
    table = formats.report(bench)
    assert list(table.index) == ["file size", *formats.MEASURES]
    assert list(table.columns) == ["CSV", "Parquet", "CSV ÷ Parquet"]
    assert re.fullmatch(r"\d+\.\d MB", table.loc["file size", "CSV"])
    for measure in formats.MEASURES:
        for fmt in formats.FORMATS:
            # the fixed-width shapes tests/nbval_sanitize.cfg rewrites
            assert re.fullmatch(r" *\d+\.\d\d (s|ms|µs)", table.loc[measure, fmt])
            assert len(table.loc[measure, fmt]) == 10
        assert re.fullmatch(r" *\d+\.\d×", table.loc[measure, "CSV ÷ Parquet"])


def test_benchmark_needs_three_existing_columns(flights):
    with pytest.raises(ValueError, match="exactly 3"):
        formats.benchmark(flights, columns=["carrier", "origin"])
    with pytest.raises(KeyError, match="nope"):
        formats.benchmark(flights, columns=["carrier", "origin", "nope"])


def test_roundtrip_dtypes_show_what_csv_loses(flights):
    types = formats.roundtrip_dtypes(flights, rows=500)
    assert types.loc["time_hour", "after Parquet"] == types.loc["time_hour", "in memory"]
    assert types.loc["time_hour", "after CSV"] == "str"  # a timestamp comes back as text
    assert (types["after Parquet"] == types["in memory"]).all()


def test_column_sizes_cover_every_column(flights, tmp_path):
    flights.to_parquet(tmp_path / "f.parquet", index=False)
    sizes = formats.column_sizes(tmp_path / "f.parquet")
    assert set(sizes.index) == set(flights.columns)
    assert sizes["share"].sum() == pytest.approx(1, abs=0.01)
    assert sizes["compressed_bytes"].is_monotonic_decreasing
