"""Row- versus column-oriented storage: the flights table as CSV and as Parquet, measured.

CSV stores a table row by row as text: to read any column a reader has to scan and parse every
line. Parquet stores it column by column, typed and compressed, with the position of each
column chunk in the file footer, so a reader that needs three columns reads only those three
(Huyen, 2022, ch. 3). `benchmark` measures both on the same data in the same run; `report`
turns the numbers into text that stays comparable between runs (sizes rounded, times and ratios
through `mlsys.display`).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mlsys.display import duration, ratio

#: Three columns a delay analysis typically needs, out of the flights table's nineteen.
DEFAULT_COLUMNS = ("carrier", "origin", "arr_delay")
FORMATS = ("CSV", "Parquet")
MEASURES = ("write", "read all columns", "read 3 columns")


def _best_time(action: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs in seconds (the minimum is the least disturbed by other load)."""
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _writers(df: pd.DataFrame, path: Path) -> dict[str, Callable[[], object]]:
    """Both formats written by pyarrow from the same in-memory Arrow table, so only the format differs.

    (pandas' own `to_csv` is single-threaded and slow on time-zone-aware timestamps: ~10 s here.)
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with warnings.catch_warnings():
        # pyarrow reads tz-aware columns through `Series.values`, which pandas 3.1 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        table = pa.Table.from_pandas(df, preserve_index=False)
    csv, parquet = path / "flights.csv", path / "flights.parquet"
    return {
        "CSV": lambda: pa_csv.write_csv(table, csv),
        "Parquet": lambda: pq.write_table(table, parquet),  # snappy compression by default
    }


def _readers(path: Path, columns: Sequence[str]) -> dict[str, dict[str, Callable[[], object]]]:
    csv, parquet = path / "flights.csv", path / "flights.parquet"
    cols = list(columns)
    return {
        "CSV": {
            "read all columns": lambda: pd.read_csv(csv),
            # usecols still has to scan every byte of every line to find the fields
            "read 3 columns": lambda: pd.read_csv(csv, usecols=cols),
        },
        "Parquet": {
            "read all columns": lambda: pd.read_parquet(parquet),
            # only the three column chunks are read from disk and decoded
            "read 3 columns": lambda: pd.read_parquet(parquet, columns=cols),
        },
    }


def benchmark(
    df: pd.DataFrame, columns: Sequence[str] = DEFAULT_COLUMNS, repeat: int = 3, workdir: Path | None = None
) -> pd.DataFrame:
    """Write `df` as CSV and Parquet, then time full reads and reads of `columns` only.

    Returns one row per format with `size_mb` (file size, MB = 10**6 bytes) and the best time of
    `repeat` runs in seconds for each of `MEASURES`. Files go to a temporary directory that is
    removed afterwards unless `workdir` is given.
    """
    if len(columns) != 3:
        raise ValueError(f"pass exactly 3 columns to read, got {list(columns)}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the table")
    with tempfile.TemporaryDirectory(prefix="mlsys-formats-") as tmp:
        path = Path(workdir) if workdir is not None else Path(tmp)
        path.mkdir(parents=True, exist_ok=True)
        rows = {}
        readers = _readers(path, columns)
        for fmt, write in _writers(df, path).items():
            row = {"write": _best_time(write, 1)}
            row["size_mb"] = (path / f"flights.{fmt.lower()}").stat().st_size / 1e6
            for measure, read in readers[fmt].items():
                row[measure] = _best_time(read, repeat)
            rows[fmt] = row
    out = pd.DataFrame.from_dict(rows, orient="index")[["size_mb", *MEASURES]]
    out.index.name = "format"
    return out


def speedups(bench: pd.DataFrame) -> pd.Series:
    """CSV ÷ Parquet for every measure: how many times smaller or faster Parquet is."""
    return bench.loc["CSV"] / bench.loc["Parquet"]


def report(bench: pd.DataFrame) -> pd.DataFrame:
    """`benchmark`'s result as text: sizes in MB (1 decimal), times and ratios via `mlsys.display`."""
    gain = speedups(bench)
    table = pd.DataFrame(index=["file size", *MEASURES], columns=[*FORMATS, "CSV ÷ Parquet"], dtype="object")
    for fmt in FORMATS:
        table.loc["file size", fmt] = f"{bench.loc[fmt, 'size_mb']:.1f} MB"
        for measure in MEASURES:
            table.loc[measure, fmt] = duration(bench.loc[fmt, measure])
    table.loc["file size", "CSV ÷ Parquet"] = ratio(gain["size_mb"])
    for measure in MEASURES:
        table.loc[measure, "CSV ÷ Parquet"] = ratio(gain[measure])
    return table


def plot(bench: pd.DataFrame):  # noqa: ANN201 - returns a matplotlib Figure
    """Two bar charts side by side: file size, and read times per format."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    colors = ["tab:gray", "tab:blue"]
    left.bar(bench.index, bench["size_mb"], color=colors)
    left.set_ylabel("MB on disk")
    left.set_title("File size")
    times = bench[["read all columns", "read 3 columns"]].T
    times.plot.bar(ax=right, color=colors, rot=0)
    right.set_ylabel("seconds")
    right.set_title("Read time")
    fig.tight_layout()
    return fig


def column_sizes(path: Path) -> pd.DataFrame:
    """Compressed bytes per column in a Parquet file, read from its footer (no data is read)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    sizes: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            sizes[chunk.path_in_schema] = sizes.get(chunk.path_in_schema, 0) + chunk.total_compressed_size
    out = pd.Series(sizes, name="compressed_bytes").rename_axis("column").to_frame()
    out["share"] = (out["compressed_bytes"] / out["compressed_bytes"].sum()).round(3)
    return out.sort_values("compressed_bytes", ascending=False)


def roundtrip_dtypes(df: pd.DataFrame, rows: int = 1000) -> pd.DataFrame:
    """The dtype of every column in memory, after a CSV round trip and after a Parquet round trip.

    CSV is text: a reader has to guess types again (timestamps come back as strings, nullable
    integers as floats). Parquet stores the schema with the data.
    """
    sample = df.head(rows)
    with tempfile.TemporaryDirectory(prefix="mlsys-formats-") as tmp:
        path = Path(tmp)
        for write in _writers(sample, path).values():
            write()
        back = {"CSV": pd.read_csv(path / "flights.csv"), "Parquet": pd.read_parquet(path / "flights.parquet")}
    out = pd.DataFrame({"in memory": sample.dtypes.astype(str)})
    for fmt, frame in back.items():
        out[f"after {fmt}"] = frame.dtypes.astype(str)
    out.index.name = "column"
    return out


def arrow_table(df: pd.DataFrame):  # noqa: ANN201 - a pyarrow Table
    """`df` as an Arrow table, without pandas' deprecation warnings about tz-aware columns."""
    import pyarrow as pa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return pa.Table.from_pandas(df, preserve_index=False)


def parquet_size(df: pd.DataFrame, compression: str | None = "snappy") -> int:
    """Bytes of `df` written as Parquet with `compression` ("none", "snappy", "zstd", "gzip", ...)."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="mlsys-formats-") as tmp:
        path = Path(tmp) / "table.parquet"
        pq.write_table(arrow_table(df), path, compression=compression)
        return path.stat().st_size
