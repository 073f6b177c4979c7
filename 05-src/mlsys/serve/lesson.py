"""Lesson 07's glue: the service as a subprocess, request bodies, its prediction log, desk figures, bench report.

The lesson starts the real service (`uvicorn --factory mlsys.serve.app:create_app`) on a free
port of 127.0.0.1 with the notebook's own settings (its MLflow store and warehouse), calls it
over HTTP and stops it with SIGTERM. `ServiceProcess` does the process handling, so a notebook
cell stays one line and the process is stopped at interpreter exit even if a cell fails. The
other helpers turn what the service writes (the prediction log) and what `make bench` wrote
(`bench.md`) into tables whose text does not change from run to run (latencies only through
`mlsys.display.duration`).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys import batch
from mlsys.config import Settings, get_settings
from mlsys.display import duration, ratio
from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import HASHED, INPUT_COLUMNS
from mlsys.serve.features import FlightQuery, OnlineRow
from mlsys.serve.prediction_log import prediction_log

HOST = "127.0.0.1"
READY_TIMEOUT_S = 240.0  # a busy 2-core machine needs far longer than the usual ~10 s
STOP_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- the service process


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment, pointed explicitly at `settings`' registry and warehouse, plus `extra`."""
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "MLSYS_ARTIFACT_ROOT": settings.mlflow_artifact_root,
            "DATABASE_URL": settings.database_url,
            "MLSYS_MODEL_NAME": settings.registered_model_name,
            "MLSYS_CHAMPION_ALIAS": settings.champion_alias,
            "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE"),
        }
    )
    return {**env, **extra}


@dataclass
class ServiceProcess:
    """The prediction service in a subprocess (its own process group), its output in a log file."""

    process: subprocess.Popen
    port: int
    log: Path
    exit_code: int | None = None

    @classmethod
    def start(cls, settings: Settings | None = None, log: Path | None = None, **env: str) -> ServiceProcess:
        """Start uvicorn on a free port of 127.0.0.1; `env` adds variables (e.g. `MLSYS_PREDICTION_LOG_MS`).

        stdout and stderr go to `log` (default `logs/service-07.log`), never to the notebook. The
        process is stopped at interpreter exit if nobody stopped it before.
        """
        settings = settings or get_settings()
        log = log or settings.log_dir / "service-07.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "--factory", "mlsys.serve.app:create_app", "--host", HOST, "--port", str(port)]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, env=service_env(settings, **env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        service = cls(process=process, port=port, log=log)
        atexit.register(service.kill)
        return service

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the service's output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Poll `GET /ready` until it answers 200; its body. Raises with the log's tail if the service dies or never gets ready."""
        import httpx

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.process.returncode}; {self.log} ends:\n{self.log_tail()}")
            try:
                response = httpx.get(self.url + "/ready", timeout=5)
                if response.status_code == 200:
                    return response.json()
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"the service was not ready after {timeout:.0f} s (last answer: {last}); {self.log} ends:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (what Docker, systemd and Kubernetes send), wait for the graceful shutdown; the exit code.

        uvicorn finishes the shutdown (the prediction log writes its queue), then re-raises the
        signal, so the code is -15 ("ended by SIGTERM"). Killed after `timeout` seconds.
        """
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        self.exit_code = self.process.wait()
        return self.exit_code

    def kill(self) -> None:
        """SIGKILL the process group if it still runs (the atexit safety net)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def log_lines(self, pattern: str) -> list[str]:
        """Messages of the service's log lines that match `pattern` (the text after the last ' - ', no timestamps)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line.rsplit(" - ", 1)[-1] for line in text.splitlines() if re.search(pattern, line)]


def exit_status(code: int) -> str:
    """An exit code in words (a negative code is the signal that ended the process)."""
    if code < 0:
        return f"ended by {signal.Signals(-code).name} ({code})"
    return f"exited with code {code}"


# --------------------------------------------------------------------------- request bodies


def flight_body(row: Mapping[str, Any] | pd.Series, as_of: pd.Timestamp | None = None) -> dict[str, Any]:
    """A `POST /predict` body for a feature-table row: the flight as the desk knows it (New York local time)."""
    tail = row["tailnum"]
    body: dict[str, Any] = {
        "carrier": str(row["carrier"]),
        "flight": int(row["flight"]),
        "origin": str(row["origin"]),
        "dest": str(row["dest"]),
        "scheduled_departure": pd.Timestamp(row["sched_dep_local"]).isoformat(),
        "tailnum": None if pd.isna(tail) else str(tail),
    }
    if as_of is not None:
        body["as_of"] = pd.Timestamp(as_of).isoformat()
    return body


def score_body(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """A `POST /score` body: the model's input columns of a row, missing values as null."""
    out: dict[str, Any] = {}
    for col in INPUT_COLUMNS:
        value = row[col]
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            out[col] = None
        elif col in CATEGORICAL or col in HASHED:
            out[col] = str(value)
        else:
            out[col] = float(value)
    return out


def flight_query(row: Mapping[str, Any] | pd.Series, as_of: pd.Timestamp | None = None) -> FlightQuery:
    """The service's `FlightQuery` for a feature-table row (what `POST /predict` builds from its body)."""
    tail = row["tailnum"]
    return FlightQuery(
        carrier=str(row["carrier"]),
        flight=int(row["flight"]),
        origin=str(row["origin"]),
        dest=str(row["dest"]),
        sched_dep_utc=pd.Timestamp(row["sched_dep_utc"]).tz_convert("UTC"),
        tailnum=None if pd.isna(tail) else str(tail),
        as_of=None if as_of is None else pd.Timestamp(as_of).tz_convert("UTC"),
    )


def flight_label(row: Mapping[str, Any] | pd.Series) -> str:
    """`UA1545 EWR->IAH 11-05 17:15` (local scheduled departure)."""
    return f"{row['carrier']}{int(row['flight'])} {row['origin']}->{row['dest']} {pd.Timestamp(row['sched_dep_local']):%m-%d %H:%M}"


# --------------------------------------------------------------------------- feature parity


def feature_parity(online: Sequence[OnlineRow | Mapping[str, Any]], offline: pd.DataFrame) -> pd.DataFrame:
    """Per flight: online features (the service's code, or a logged row) against the offline table's row.

    `online` holds `OnlineRow`s or plain column -> value mappings (e.g. `log_features` rows);
    `offline` the same flights in the same order. Numbers must agree to 1e-9 (both missing counts
    as equal), categories as text. One row per flight: how many of the model's input columns
    agree, and the largest gap between two present numbers.
    """
    rows = []
    for got, (_, want) in zip(online, offline.iterrows(), strict=True):
        values = got.values if isinstance(got, OnlineRow) else got
        same, gap = 0, 0.0
        for col in INPUT_COLUMNS:
            a, b = values.get(col), want[col]
            if col in NUMERIC:
                x = np.nan if a is None else float(a)
                y = np.nan if pd.isna(b) else float(b)
                if np.isnan(x) or np.isnan(y):
                    equal = bool(np.isnan(x) and np.isnan(y))
                else:
                    equal = bool(np.isclose(x, y, rtol=1e-9, atol=1e-9))
                    gap = max(gap, abs(x - y))
            else:
                equal = ("<NA>" if a is None else str(a)) == ("<NA>" if pd.isna(b) else str(b))
            same += equal
        rows.append({"flight": flight_label(want), "columns equal": f"{same} / {len(INPUT_COLUMNS)}", "largest numeric gap": gap})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the prediction log


def read_prediction_log(engine: Engine, request_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The warehouse's `prediction_log` (optionally only some requests), oldest first; `flags` as lists."""
    query = sa.select(prediction_log).order_by(prediction_log.c.id)
    if request_ids is not None:
        query = query.where(prediction_log.c.request_id.in_(list(request_ids)))
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["flags"] = frame["flags"].map(json.loads)
    return frame


def wait_for_log(engine: Engine, request_ids: Sequence[str], timeout: float = 30.0) -> pd.DataFrame:
    """The log rows of `request_ids`, once every one of them has been written (the log writes in the
    background, every `MLSYS_PREDICTION_LOG_MS`); raises after `timeout` seconds with how many are missing."""
    wanted = set(request_ids)
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = read_prediction_log(engine, request_ids)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # the table appears with the service's first write
            rows = pd.DataFrame(columns=["request_id"])
        missing = wanted - set(rows["request_id"])
        if not missing:
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} of {len(wanted)} requests are not in prediction_log after {timeout:.0f} s")
        time.sleep(0.1)


def log_features(log: pd.DataFrame) -> pd.DataFrame:
    """The logged model inputs, one row per log row (JSON null -> NaN/None), in `INPUT_COLUMNS` order."""
    return pd.DataFrame([json.loads(text) for text in log["features"]], index=log.index)[INPUT_COLUMNS]


def latency_by_route(log: pd.DataFrame) -> pd.DataFrame:
    """Per route: requests, rows, p50 and p99 of the service's own time per request (durations, as text)."""
    per_request = log.drop_duplicates("request_id")  # a batch request logs one row per flight, with its latency
    grouped = per_request.groupby("route")["latency_ms"]
    out = pd.DataFrame(
        {
            "requests": grouped.size(),
            "rows": log.groupby("route").size(),
            "p50": grouped.quantile(0.5).map(lambda ms: duration(ms / 1000)),
            "p99": grouped.quantile(0.99).map(lambda ms: duration(ms / 1000)),
        }
    )
    out.index.name = "route"
    return out


def plot_latency(log: pd.DataFrame, ax: Any = None) -> Any:
    """The service's time per request (ms, log scale), one histogram per route."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.4))
    per_request = log.drop_duplicates("request_id")
    ms = per_request["latency_ms"].clip(lower=1e-3)
    bins = np.logspace(np.log10(ms.min() / 1.2), np.log10(ms.max() * 1.2), 30)
    for route, group in per_request.groupby("route"):
        ax.hist(group["latency_ms"].clip(lower=1e-3), bins=bins, alpha=0.6, label=f"{route} ({len(group)} requests)")
    ax.set_xscale("log")
    ax.set(xlabel="time in the service per request (ms, log scale)", ylabel="requests", title="Latency from the prediction log")
    ax.legend()
    return ax


# --------------------------------------------------------------------------- the desk's numbers


def desk_load(table: pd.DataFrame) -> pd.Series:
    """What the operations desk's decisions ask of a system: flights per day and per busiest hour, in 2013."""
    per_day = table.groupby(table["sched_dep_local"].dt.date).size()
    decisions = table["decision_time_utc"].dt.floor("h")
    per_hour = table.groupby(decisions).size()
    return pd.Series(
        {
            "flights in 2013": f"{len(table):,}",
            "flights per day (mean)": f"{per_day.mean():,.0f}",
            "flights on the busiest day": f"{per_day.max():,}",
            "decisions in the busiest hour": f"{per_hour.max():,}",
            "busiest hour, decisions per minute": f"{per_hour.max() / 60:.1f}",
        },
        name="2013",
    )


# --------------------------------------------------------------------------- batch on Dask


#: What a worker needs to score a pipeline (unpickling the model, `batch`'s partition function).
WARM_MODULES = ("pandas", "sklearn.pipeline", "lightgbm", "mlsys.pipeline", "mlsys.batch")


def _import_all(names: Sequence[str]) -> int:
    import importlib

    for name in names:
        importlib.import_module(name)
    return len(names)


class BackgroundCluster:
    """A Dask `LocalCluster` (`batch.dask_client`) started in a background thread, its workers warmed up.

    A worker process starts empty: before it scores anything it imports pandas, scikit-learn and
    LightGBM, which takes seconds. Started early, the cluster does that while the notebook works
    on something else; `client` waits for it when it is needed. Closed by `close()` or at exit.
    """

    def __init__(self, settings: Settings | None = None, workers: int = 2, warm: Sequence[str] = WARM_MODULES):
        import contextvars
        import threading

        # the client is entered and exited in one context (it sets a context variable), whichever thread does it
        self._context_vars = contextvars.copy_context()
        self._settings = settings or get_settings()
        self._workers = workers
        self._warm = tuple(warm)
        self._context: Any = None
        self._client: Any = None
        self._error: BaseException | None = None
        self._futures: list[Any] = []
        self._thread = threading.Thread(target=self._context_vars.run, args=(self._start,), name="dask-cluster", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _start(self) -> None:
        try:
            self._context = batch.dask_client(self._settings, workers=self._workers, address="")
            self._client = self._context.__enter__()
            addresses = sorted(self._client.scheduler_info(n_workers=-1)["workers"])
            # one task per worker, pinned to it: each process imports the stack while the notebook goes on
            self._futures = [
                self._client.submit(_import_all, self._warm, workers=[a], allow_other_workers=False, pure=False) for a in addresses
            ]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the notebook's thread by `client`
            self._error = exc

    @property
    def client(self) -> Any:
        """The cluster's client, once the cluster is up (re-raises a failure to start it)."""
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"the Dask cluster did not start: {self._error}") from self._error
        return self._client

    def warm(self) -> int:
        """Wait until every worker has imported the scoring stack; the number of workers."""
        client = self.client
        client.gather(self._futures)
        return len(self._futures)

    def close(self) -> None:
        """Stop the workers and the scheduler (idempotent)."""
        self._thread.join()
        if self._context is not None:
            context, self._context = self._context, None
            self._context_vars.run(context.__exit__, None, None, None)


def dask_scaling(client: Any, frame: pd.DataFrame, model: Any, threshold: float, kind: str = "pipeline", npartitions: int = 8, repeats: int = 2) -> pd.DataFrame:
    """Rows/s of scoring `frame` in this process (pandas) and on 1 and 2 workers of `client`'s cluster.

    The same partitions, scorer and threshold everywhere (`batch.pandas_throughput`,
    `batch.dask_throughput`): the best of `repeats` timed runs after an untimed one. `cores` is
    the CPU time of the scoring processes over the wall time of the run.
    """
    scorer = batch.make_scorer(model, kind)
    batch.score_frame(frame.iloc[:1000], scorer, threshold)  # warm-up
    runs = {"pandas, 1 process": batch.pandas_throughput(frame, scorer, threshold, repeats)}
    addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
    for used in (addresses[:1], addresses[:2]):
        label = f"Dask, {len(used)} worker{'s' if len(used) > 1 else ''}"
        runs[label] = batch.dask_throughput(client, frame, model, kind, threshold, npartitions, repeats, workers=used)
    out = pd.DataFrame({"rows_per_second": {k: r.rows_per_second for k, r in runs.items()}, "cores": {k: r.cores for k, r in runs.items()}})
    out.index.name = "engine"
    return out


def format_scaling(figures: pd.DataFrame) -> pd.DataFrame:
    """Rows/s as the time per million rows (a duration) and as a speed-up over pandas (a ratio), and
    the cores used (CPU time / wall time, a ratio): text whose shape nbval's sanitizer knows."""
    base = figures["rows_per_second"].iloc[0]
    return pd.DataFrame(
        {
            "time per 1,000,000 rows": (1e6 / figures["rows_per_second"]).map(duration),
            "speed-up over pandas": (figures["rows_per_second"] / base).map(ratio),
            "CPU time / wall time": figures["cores"].map(ratio),
        }
    )


# --------------------------------------------------------------------------- make bench's report


@dataclass
class BenchReport:
    """`make bench`'s report (`bench.md`), read back: its context lines, its tables and its findings."""

    path: Path
    context: dict[str, str] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)


#: Context lines that name a machine's paths, not the run (left out of what the lesson shows).
_PRIVATE_CONTEXT = ("registry", "warehouse")


def read_bench_report(path: Path) -> BenchReport:
    """Parse a `bench.md` written by `mlsys.bench.report`: bullets before the first section are its context,
    each section's pipe table becomes a DataFrame (text cells) and its bullets the findings."""
    report = BenchReport(path=path)
    section = ""
    table_lines: list[str] = []

    def close_table() -> None:
        if table_lines:
            header = [c.strip() for c in table_lines[0].strip("|").split("|")]
            body = [[c.strip() for c in line.strip("|").split("|")] for line in table_lines[2:]]
            report.tables[section] = pd.DataFrame(body, columns=header)
            table_lines.clear()

    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("## "):
            close_table()
            section = line[3:].split(":")[0].strip()
            report.findings[section] = []
        elif line.startswith("|"):
            table_lines.append(line)
        else:
            close_table()
            if line.startswith("- "):
                text = line[2:].replace("**", "")
                if not section:
                    key, _, value = text.partition(": ")
                    if key not in _PRIVATE_CONTEXT:
                        report.context[key] = value
                else:
                    report.findings[section].append(text)
    close_table()
    return report


# --------------------------------------------------------------------------- set-up of a fresh store


def ensure_warehouse_months(settings: Settings | None = None, months: Sequence[int] = (10, 11, 12)) -> int:
    """Flights in the warehouse; loads only `months` when its `flights` table is missing or empty.

    A fresh warehouse (each lesson's, under `python -m mlsys.course refresh`) gets the test months
    and October, which early November looks back into: all the service needs to answer for a
    test flight, in a second or two. A warehouse that has flights is left alone.
    """
    from mlsys.serve.champion import ensure_warehouse

    return ensure_warehouse(settings, months=list(months))


def routes_table(app: Any) -> pd.DataFrame:
    """The app's routes from its own OpenAPI document: method and path, what each does, the statuses it documents."""
    rows = []
    for path, operations in app.openapi()["paths"].items():
        for method, op in operations.items():
            text = op.get("description") or op.get("summary", "")
            rows.append({"route": f"{method.upper()} {path}", "what it does": text.splitlines()[0], "statuses": ", ".join(sorted(op.get("responses", {})))})
    return pd.DataFrame(rows).set_index("route")


# --------------------------------------------------------------------------- the speed-up table, portable


#: Variants whose fit involves a logistic regression (lbfgs, BLAS): their figures move with the CPU's BLAS kernels.
BLAS_SENSITIVE = ("stacking ensemble (teacher)", "distilled student")


def speedup_view(table: pd.DataFrame) -> pd.DataFrame:
    """`speedups.format_table` for a notebook that other CPUs re-run: ROC AUC to 3 decimals (2 where BLAS moves it), trees only where portable.

    The stacking teacher contains a logistic regression, whose lbfgs fit lands on slightly other
    coefficients under other BLAS kernels; its probabilities move in the fourth decimal, and the
    distilled student, early-stopped on a flat validation curve, ends with another number of trees
    (130 here, 169 under `OPENBLAS_CORETYPE=Prescott`), and its ROC AUC moves in the third decimal
    (0.726 on one fresh clone, 0.728 on another). Its trees are left out, its ROC AUC rounded to 2 decimals.
    """
    from mlsys.serve import speedups

    shown = speedups.format_table(table)
    sensitive = table["variant"].isin(BLAS_SENSITIVE).to_numpy()
    # text, so a two-decimal figure is not padded to look like a three-decimal one
    shown["test ROC AUC"] = [f"{auc:.2f}" if blas else f"{auc:.3f}" for auc, blas in zip(table["roc_auc"], sensitive, strict=True)]
    shown.loc[sensitive, "trees"] = ""
    return shown
