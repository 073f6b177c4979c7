"""Batch prediction: every flight of a period scored from the offline feature table, on Dask.

The operations desk's morning plan does not need a service: the features of every flight of the
day are precomputed (`features.feature_table()`), so one job scores them all at once and leaves
the results where the desk's tools read them (Huyen, 2022, ch. 7, "Batch prediction versus online
prediction"). The job runs on an existing engine, Dask:

* `dask_client()` starts a `LocalCluster` (`MLSYS_DASK_WORKERS` worker processes, one thread each)
  or, when `DASK_SCHEDULER_ADDRESS` is set, connects to a running scheduler: same code either way;
* `broadcast()` ships the model to every worker once, as a worker plugin that builds its scorer
  there, instead of pickling it into every partition's task;
* `score_dask()` maps the scorer over the partitions (`map_partitions`);
* `run_batch()` writes the predictions to Parquet (one file per partition, written by the
  workers) and loads them into the warehouse table `batch_predictions`, replacing any earlier
  result of the same model version and period (idempotent).

Three scorers turn feature rows into P(late): `pipeline` (the fitted scikit-learn model on a
DataFrame), `lean` (the service's `serve.lean.LeanModel`, built for single rows) and `compiled`
(the booster compiled by lleaves, `serve.speedups.CompiledModel`). `python -m mlsys.bench`
measures all three in one process and on 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import dask.dataframe as dd
import numpy as np
import pandas as pd
import sqlalchemy as sa
from distributed import Client, LocalCluster, WorkerPlugin, get_worker, wait
from sqlalchemy.engine import Engine

from mlsys import features
from mlsys.config import Settings, get_settings
from mlsys.logger import logger
from mlsys.objectives import COURSE_COSTS
from mlsys.pipeline import INPUT_COLUMNS

SCORERS = ("pipeline", "lean", "compiled")
SPLITS = ("train", "valid", "test")
#: Rows per partition when the caller does not choose: big enough that a task's fixed cost
#: (about a millisecond of scheduling) is noise, small enough to spread over the workers.
PARTITION_ROWS = 50_000
CONNECT_TIMEOUT_S = 10
START_HINT = (
    "start one with `dask scheduler` (and `dask worker tcp://...` next to it), "
    "or unset DASK_SCHEDULER_ADDRESS to start a LocalCluster"
)


class SchedulerUnavailable(RuntimeError):
    """The Dask scheduler at DASK_SCHEDULER_ADDRESS does not answer; the message says what to start."""


class Scorer(Protocol):
    """What a scorer does: P(late) for each row of a frame of model inputs."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """The flights to score: one split, or local scheduled-departure dates from `start` to `end` inclusive."""

    label: str
    split: str | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, text: str) -> Period:
        """`test`, `all`, `2013-11-01` or `2013-11-01..2013-11-07` (local New York dates, inclusive)."""
        text = text.strip()
        if text in SPLITS:
            return cls(label=text, split=text)
        if text == "all":
            return cls(label="all")
        first, _, last = text.partition("..")
        try:
            start = date.fromisoformat(first)
            end = date.fromisoformat(last) if last else start
        except ValueError:
            raise ValueError(
                f"period {text!r}: use a split ({', '.join(SPLITS)}), 'all', a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD"
            ) from None
        if end < start:
            raise ValueError(f"period {text!r}: the range ends ({end}) before it starts ({start})")
        return cls(label=f"{start}..{end}" if end != start else str(start), start=start, end=end)

    def select(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of the feature table that fall in this period."""
        if self.split is not None:
            return table[table["split"] == self.split]
        if self.start is None:
            return table
        day = table["sched_dep_local"].dt.normalize()
        end = self.end or self.start
        return table[(day >= pd.Timestamp(self.start)) & (day <= pd.Timestamp(end))]


def period_rows(period: Period | str, table: pd.DataFrame | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """`flight_id` and the model's input columns of every flight in `period`, in schedule order."""
    period = Period.parse(period) if isinstance(period, str) else period
    table = features.feature_table(settings) if table is None else table
    rows = period.select(table)
    if rows.empty:
        raise ValueError(f"period {period.label!r} holds no flights (the data cover 2013-01-01..2013-12-31)")
    return rows[["flight_id", *INPUT_COLUMNS]].reset_index(drop=True)


# --------------------------------------------------------------------------- model and scorers


@dataclass(frozen=True)
class BatchModel:
    """A fitted model with what the output rows record about it: name, version and decision threshold."""

    model: Any
    name: str
    version: str
    threshold: float = COURSE_COSTS.bayes_threshold()


def champion(settings: Settings | None = None) -> BatchModel:
    """The registered champion (`models:/<name>@<alias>`), with the threshold it was promoted with."""
    from mlsys.serve.model import from_registry  # local import: the service module loads MLflow

    service = from_registry(settings)
    return BatchModel(model=service.model, name=service.card.name, version=str(service.card.version), threshold=service.threshold)


def adhoc(model: Any, threshold: float = COURSE_COSTS.bayes_threshold(), name: str = "adhoc", version: str = "0") -> BatchModel:
    """A model passed in directly (not from the registry): name and version label its output rows."""
    return BatchModel(model=model, name=name, version=version, threshold=threshold)


class PipelineScorer:
    """P(late) from the fitted scikit-learn model on a DataFrame (what `mlflow models serve` runs)."""

    def __init__(self, model: Any):
        self.model = model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(frame[INPUT_COLUMNS])[:, 1], dtype="float64")


def make_scorer(model: Any, kind: str = "pipeline", cache_dir: Path | None = None) -> Scorer:
    """A scorer of `kind` for a fitted model: `pipeline`, `lean` or `compiled` (see the module docstring)."""
    if kind == "pipeline":
        return PipelineScorer(model)
    if kind == "lean":
        from mlsys.serve.lean import LeanModel

        return LeanModel.from_pipeline(model)
    if kind == "compiled":
        from mlsys.serve.speedups import CompiledModel

        return CompiledModel.from_model(model, cache_dir=cache_dir)
    raise ValueError(f"unknown scorer {kind!r}: use one of {', '.join(SCORERS)}")


def score_frame(frame: pd.DataFrame, scorer: Scorer, threshold: float) -> pd.DataFrame:
    """`flight_id`, `probability` and `decision` (P(late) >= threshold) for each row of `frame`."""
    p = np.asarray(scorer.predict_proba(frame), dtype="float64")
    return pd.DataFrame({"flight_id": frame["flight_id"].to_numpy(dtype="int64"), "probability": p, "decision": p >= threshold})


OUTPUT_META = pd.DataFrame(
    {"flight_id": pd.Series(dtype="int64"), "probability": pd.Series(dtype="float64"), "decision": pd.Series(dtype="bool")}
)


# --------------------------------------------------------------------------- Dask


@contextmanager
def dask_client(
    settings: Settings | None = None, workers: int | None = None, address: str | None = None, timeout: float = CONNECT_TIMEOUT_S
) -> Iterator[Client]:
    """A client of the scheduler at `address` (default `DASK_SCHEDULER_ADDRESS`), else of a new LocalCluster.

    The LocalCluster has `workers` (default `MLSYS_DASK_WORKERS`) worker processes of one thread
    each: LightGBM and pandas hold the GIL for parts of a prediction, so processes, not threads,
    are what scales. Both are closed on exit; a remote cluster is left running.
    """
    settings = settings or get_settings()
    address = settings.dask_scheduler_address if address is None else address
    if address:
        try:
            client = Client(address, timeout=timeout)
        except OSError as exc:
            raise SchedulerUnavailable(f"no Dask scheduler answers at {address}: {START_HINT}. ({exc})") from exc
        with client:
            yield client
        return
    n = workers or settings.dask_workers
    # Dask logs every worker start and stop at INFO (and a stop it had to force at WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        # dashboard_address ":0": its HTTP server (health, metrics) takes a free port, not 8787;
        # OMP_WAIT_POLICY: LightGBM's idle OpenMP threads must not spin on a busy machine
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            env={"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


class ScorerPlugin(WorkerPlugin):
    """Holds a model on a worker and builds its scorer there, once per worker.

    Registered with the scheduler, the plugin (and the model in it) is pickled once and sent to
    each worker once, and to workers that join later. Partitions look the scorer up by name
    instead of carrying the model in their task. Building on the worker also covers scorers that
    cannot be pickled (a compiled model is machine code loaded into the process).
    """

    def __init__(self, name: str, model: Any, kind: str = "pipeline", cache_dir: Path | None = None):
        self.name = name
        self.model = model
        self.kind = kind
        self.cache_dir = cache_dir
        self.scorer: Scorer | None = None

    def setup(self, worker: Any) -> None:
        self.scorer = make_scorer(self.model, self.kind, self.cache_dir)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "scorer": None}


def broadcast(client: Client, model: Any, kind: str = "pipeline", cache_dir: Path | None = None) -> str:
    """Send `model` to every worker once and build a `kind` scorer on each; returns the name to score with."""
    name = f"mlsys-scorer-{kind}-{time.monotonic_ns()}"
    client.register_plugin(ScorerPlugin(name, model, kind, cache_dir), name=name)
    return name


def release(client: Client, name: str) -> None:
    """Drop a broadcast scorer from the workers."""
    client.unregister_worker_plugin(name)


def _score_partition(part: pd.DataFrame, scorer_name: str, threshold: float, run: int = 0) -> pd.DataFrame:
    """Score one partition with the scorer the worker holds under `scorer_name` (`run` only names the task)."""
    plugin = get_worker().plugins[scorer_name]
    return score_frame(part, plugin.scorer, threshold)


def distribute(client: Client, frame: pd.DataFrame, npartitions: int | None = None, workers: Sequence[str] | None = None) -> dd.DataFrame:
    """`frame` cut into partitions placed on the workers (round robin; only on `workers` if given) before any scoring."""
    n = min(npartitions or -(-len(frame) // PARTITION_ROWS), len(frame))
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    parts = [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    futures = client.scatter(parts, workers=list(workers) if workers else None)
    return dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False)


def score_dask(partitions: dd.DataFrame, scorer_name: str, threshold: float, run: int = 0) -> dd.DataFrame:
    """The scored partitions (lazy): `flight_id`, `probability`, `decision`."""
    return partitions.map_partitions(_score_partition, scorer_name, threshold, run=run, meta=OUTPUT_META)


# --------------------------------------------------------------------------- outputs

batch_metadata = sa.MetaData()

batch_predictions = sa.Table(
    "batch_predictions",
    batch_metadata,
    sa.Column("model_name", sa.String(100), primary_key=True),
    sa.Column("model_version", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(40), primary_key=True),
    sa.Column("flight_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision", sa.Boolean, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("scored_at", sa.DateTime, nullable=False),  # UTC, stored without a time zone
)


def parquet_dir(batch_model: BatchModel, period: Period, settings: Settings | None = None) -> Path:
    """Default output folder: `03-data/processed/predictions/<model name>/<version>/<period>/`."""
    settings = settings or get_settings()
    return settings.processed_dir / "predictions" / batch_model.name / batch_model.version / period.label


def write_warehouse(eng: Engine, scored: pd.DataFrame, batch_model: BatchModel, period: Period, scored_at: datetime) -> int:
    """Replace this model version's predictions for `period` with `scored`, in one transaction; returns rows stored."""
    batch_metadata.create_all(eng)
    key = (
        (batch_predictions.c.model_name == batch_model.name)
        & (batch_predictions.c.model_version == batch_model.version)
        & (batch_predictions.c.period == period.label)
    )
    stamp = scored_at.astimezone(timezone.utc).replace(tzinfo=None)
    rows = [
        {
            "model_name": batch_model.name,
            "model_version": batch_model.version,
            "period": period.label,
            "flight_id": int(flight_id),
            "probability": float(p),
            "decision": bool(decision),
            "threshold": float(batch_model.threshold),
            "scored_at": stamp,
        }
        for flight_id, p, decision in zip(scored["flight_id"], scored["probability"], scored["decision"], strict=True)
    ]
    with eng.begin() as conn:
        conn.execute(batch_predictions.delete().where(key))
        if rows:
            conn.execute(batch_predictions.insert(), rows)
        return conn.execute(sa.select(sa.func.count()).select_from(batch_predictions).where(key)).scalar_one()


def read_batch_predictions(eng: Engine, version: str | None = None, period: str | None = None) -> pd.DataFrame:
    """Rows of `batch_predictions`, optionally of one model version and period."""
    query = sa.select(batch_predictions)
    if version is not None:
        query = query.where(batch_predictions.c.model_version == version)
    if period is not None:
        query = query.where(batch_predictions.c.period == period)
    with eng.connect() as conn:
        return pd.read_sql(query.order_by(batch_predictions.c.flight_id), conn)


@dataclass(frozen=True)
class BatchResult:
    """What one batch job did: rows scored, where they went, and how long each step took."""

    period: str
    model_name: str
    model_version: str
    rows: int
    flagged: int
    parquet: Path
    warehouse_rows: int
    workers: int
    seconds: dict[str, float]

    @property
    def rows_per_second(self) -> float:
        """Scoring throughput (partitions already on the workers, predictions written to Parquet)."""
        return self.rows / self.seconds["score_and_write"]


def run_batch(
    period: Period | str,
    batch_model: BatchModel | None = None,
    settings: Settings | None = None,
    client: Client | None = None,
    kind: str = "pipeline",
    output: Path | None = None,
    npartitions: int | None = None,
    table: pd.DataFrame | None = None,
    to_warehouse: bool = True,
) -> BatchResult:
    """Score every flight of `period` on Dask; write Parquet (and the warehouse); return a summary.

    `batch_model` defaults to the registered champion; `client` to `dask_client(settings)`.
    Rerunning the same model version on the same period replaces both outputs.
    """
    from mlsys import warehouse  # local import: the warehouse module reads the raw data's schema

    settings = settings or get_settings()
    period = Period.parse(period) if isinstance(period, str) else period
    batch_model = batch_model or champion(settings)
    output = Path(output) if output is not None else parquet_dir(batch_model, period, settings)
    frame = period_rows(period, table, settings)
    seconds: dict[str, float] = {}
    with _client_or(client, settings) as active:
        start = time.perf_counter()
        name = broadcast(active, batch_model.model, kind)
        partitions = distribute(active, frame, npartitions).persist()
        wait(partitions)
        seconds["distribute"] = time.perf_counter() - start
        start = time.perf_counter()
        scored = score_dask(partitions, name, batch_model.threshold)
        scored.to_parquet(output, write_index=False, overwrite=True)
        seconds["score_and_write"] = time.perf_counter() - start
        workers = len(active.scheduler_info(n_workers=-1)["workers"])
        release(active, name)
    result = pd.read_parquet(output)
    scored_at = datetime.now(timezone.utc)
    stored = 0
    if to_warehouse:
        start = time.perf_counter()
        stored = write_warehouse(warehouse.engine(settings), result, batch_model, period, scored_at)
        seconds["warehouse"] = time.perf_counter() - start
    logger.info(
        "batch: {} version {} on {}: {} flights, {} flagged -> {}",
        batch_model.name, batch_model.version, period.label, len(result), int(result["decision"].sum()), output,
    )
    return BatchResult(
        period=period.label,
        model_name=batch_model.name,
        model_version=batch_model.version,
        rows=len(result),
        flagged=int(result["decision"].sum()),
        parquet=output,
        warehouse_rows=stored,
        workers=workers,
        seconds=seconds,
    )


@contextmanager
def _client_or(client: Client | None, settings: Settings) -> Iterator[Client]:
    if client is not None:
        yield client
        return
    with dask_client(settings) as started:
        yield started


# --------------------------------------------------------------------------- timing (used by mlsys.bench)


@dataclass(frozen=True)
class Throughput:
    """Rows per second of a timed run, and the CPU cores the scoring processes used during it.

    `cores` is CPU time over wall time: 2 workers that get two free cores show about 2.0; on a
    machine busy with other work they get less, and the rows/s with them.
    """

    rows_per_second: float
    cores: float


def _best(run: Callable[[], tuple[float, float]], repeats: int, rows: int) -> Throughput:
    """The fastest of `repeats` runs; `run` returns (wall seconds, CPU seconds)."""
    wall, cpu = min((run() for _ in range(repeats)), key=lambda r: r[0])
    return Throughput(rows / wall, cpu / wall)


def pandas_throughput(frame: pd.DataFrame, scorer: Scorer, threshold: float, repeats: int = 3) -> Throughput:
    """`score_frame` on all of `frame` in this process (one call per run)."""

    def once() -> tuple[float, float]:
        cpu, start = time.process_time(), time.perf_counter()
        score_frame(frame, scorer, threshold)
        return time.perf_counter() - start, time.process_time() - cpu

    return _best(once, repeats, len(frame))


def _workers_cpu(client: Client, workers: list[str] | None) -> float:
    """CPU seconds the worker processes (all, or `workers`) have used so far."""
    return float(sum(client.run(time.process_time, workers=workers).values()))


def dask_throughput(
    client: Client,
    frame: pd.DataFrame,
    model: Any,
    kind: str,
    threshold: float,
    npartitions: int,
    repeats: int = 3,
    workers: Sequence[str] | None = None,
) -> Throughput:
    """Scoring `frame` on the cluster (or only on `workers`): partitions placed first, results kept there.

    One untimed run first (each worker builds its scorer); every run gets its own task keys, or
    the scheduler would hand back the results of the run before.
    """
    name = broadcast(client, model, kind)
    only = list(workers) if workers else None
    partitions = client.persist(distribute(client, frame, npartitions, only), workers=only)
    wait(partitions)
    runs = iter(range(repeats + 1))

    def once() -> tuple[float, float]:
        cpu, start = _workers_cpu(client, only), time.perf_counter()
        wait(client.persist(score_dask(partitions, name, threshold, run=next(runs)), workers=only))
        return time.perf_counter() - start, _workers_cpu(client, only) - cpu

    try:
        once()
        return _best(once, repeats, len(frame))
    finally:
        release(client, name)


def main(argv: list[str] | None = None) -> None:
    """`python -m mlsys.batch --period test`: score a period with the champion on Dask."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", default="test", help="a split, 'all', YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD (default: test)")
    parser.add_argument("--scorer", default="pipeline", choices=SCORERS)
    parser.add_argument("--output", type=Path, default=None, help="Parquet folder (default: 03-data/processed/predictions/...)")
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: MLSYS_DASK_WORKERS)")
    parser.add_argument("--no-warehouse", action="store_true", help="write Parquet only")
    args = parser.parse_args(argv)
    from mlsys.logger import setup_logging

    setup_logging()
    settings = get_settings()
    with dask_client(settings, workers=args.workers) as client:
        result = run_batch(args.period, settings=settings, client=client, kind=args.scorer, output=args.output, to_warehouse=not args.no_warehouse)
    shown = result.parquet.relative_to(settings.root) if result.parquet.is_relative_to(settings.root) else result.parquet
    print(
        f"{result.rows:,} flights of {result.period} scored by {result.model_name} version {result.model_version} "
        f"on {result.workers} worker(s): {result.flagged:,} flagged; {result.rows_per_second:,.0f} rows/s; "
        f"Parquet {shown}/; warehouse table batch_predictions: {result.warehouse_rows:,} rows"
    )


if __name__ == "__main__":
    main()
