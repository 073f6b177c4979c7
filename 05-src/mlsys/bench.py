"""`make bench`: the prediction service against `mlflow models serve`, and batch scoring on Dask, in one run.

`python -m mlsys.bench` (`make bench`) makes sure the configured registry has a champion (the
course's recipe, `serve.champion.ensure_champion`) and the warehouse has flights, then:

1. **Online.** Starts the service (`uvicorn --factory mlsys.serve.app:create_app`) and
   `mlflow models serve --env-manager local --workers 1` on the same registered version, each
   one worker process, and drives both with the same load from a separate process: single-row
   JSON over loopback (127.0.0.1 only), the same model input rows sampled from the test split,
   concurrency 8, warm-up first. Also the service's full path (`POST /predict`: raw flight ->
   features from the warehouse -> prediction -> prediction log), and the load generator's own
   ceiling against a trivial endpoint. Resident memory (RSS) comes from `/proc`.
2. **Batch.** Rows/s of scoring precomputed features (the feature table): pandas in this
   process, Dask with 1 worker and with 2 workers, for each scorer (`batch.SCORERS`).

It prints one report, writes it to `build/bench/bench.md` (and the raw figures to `bench.json`),
and stops every process it started (each in its own process group), also on Ctrl-C or failure.

The load generator (`python -m mlsys.bench load SPEC.json`) is a closed loop on asyncio streams
over keep-alive connections, since Debian's `wrk` and `hey` are not installed by default;
`python -m mlsys.bench trivial PORT` is the framework-free endpoint its ceiling is measured on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsys.config import Settings, get_settings, mask_password
from mlsys.logger import logger

#: Only loopback: the benchmark never sends load anywhere else.
HOST = "127.0.0.1"
CONCURRENCY = 8
#: Measured requests per server (after warm-up), and the time bound of each measured phase.
REQUESTS = {"trivial": 10_000, "ours": 10_000, "full": 1_000, "mlflow": 5_000}
WARMUP = {"trivial": 500, "ours": 500, "full": 20, "mlflow": 40}
MAX_SECONDS = {"trivial": 30.0, "ours": 60.0, "full": 30.0, "mlflow": 260.0}
#: `--quick`: a check that every piece works, in about a minute; its figures mean little
QUICK_REQUESTS = {"trivial": 1_000, "ours": 1_000, "full": 50, "mlflow": 100}
#: Distinct rows (and flights) the requests cycle through, sampled from the test split.
SAMPLE_ROWS = 500
READY_TIMEOUT_S = 240.0  # a busy 2-core machine needs far more than the usual ~10 s
STOP_TIMEOUT_S = 20.0
GOAL_RPS_RATIO, GOAL_P99_RATIO = 20.0, 20.0
GOAL_SCALING, GOAL_BATCH_RPS = 1.8, 1_000_000.0
#: Batch: partitions of the scored frame (the same for 1 and 2 workers) and timed repeats.
BATCH_PARTITIONS = 8
BATCH_REPEATS = 2
#: Each timed batch run lasts about this long in one process (the frame is scored several times)
BATCH_RUN_SECONDS = 1.5


# =========================================================================== load generator


@dataclass(frozen=True)
class LoadSpec:
    """What to send: JSON bodies (cycled) to one route, how many at once, how many and for how long."""

    port: int
    path: str
    bodies: list[str]
    concurrency: int = CONCURRENCY
    requests: int = 5_000
    warmup: int = 200
    max_seconds: float = 120.0
    #: process group of the server under test: its CPU time is read around the measured phase
    server_pgid: int = 0


@dataclass
class LoadResult:
    """Counts, rate and latency quantiles of the measured phase (warm-up excluded)."""

    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    stopped_by: str  # "count" or "time"
    first_error: str = ""
    #: CPU seconds per second the server's processes used in the measured phase (NaN: not watched)
    server_cores: float = float("nan")


def request_bytes(spec: LoadSpec, body: str) -> bytes:
    """One HTTP/1.1 POST with a JSON body, keep-alive (the HTTP/1.1 default)."""
    payload = body.encode()
    head = (
        f"POST {spec.path} HTTP/1.1\r\nHost: {HOST}:{spec.port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the connection stays open (Content-Length or chunked framing)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


async def _phase(spec: LoadSpec, payloads: list[bytes], count: int, deadline: float) -> tuple[list[float], int, str]:
    """`count` requests over `spec.concurrency` connections: latencies (s), error count, first error."""
    latencies: list[float] = []
    errors = 0
    first_error = ""
    sent = 0

    async def connection() -> None:
        nonlocal sent, errors, first_error
        reader, writer = await asyncio.open_connection(HOST, spec.port)
        try:
            while sent < count and time.perf_counter() < deadline:
                payload = payloads[sent % len(payloads)]
                sent += 1  # one event loop: no lock needed between the coroutines
                if writer.is_closing():  # the server closed the last one: open another
                    reader, writer = await asyncio.open_connection(HOST, spec.port)
                start = time.perf_counter()
                writer.write(payload)
                status, body, keep_alive = await read_response(reader)
                latencies.append(time.perf_counter() - start)
                if status >= 400:
                    errors += 1
                    first_error = first_error or f"HTTP {status}: {body[:300].decode(errors='replace')}"
                if not keep_alive:
                    writer.close()
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(spec.concurrency)))
    return latencies, errors, first_error


def summarize(latencies: Sequence[float], errors: int, seconds: float, wanted: int, first_error: str = "") -> LoadResult:
    """A LoadResult from per-request latencies (seconds) of a phase that lasted `seconds`."""
    ms = np.asarray(latencies, dtype="float64") * 1000
    if len(ms) == 0:
        return LoadResult(0, errors, seconds, 0.0, float("nan"), float("nan"), float("nan"), float("nan"), "time", first_error)
    return LoadResult(
        requests=len(ms),
        errors=errors,
        seconds=seconds,
        requests_per_second=len(ms) / seconds,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        max_ms=float(ms.max()),
        stopped_by="count" if len(ms) >= wanted else "time",
        first_error=first_error,
    )


async def run_load(spec: LoadSpec) -> LoadResult:
    """Warm up (not counted), then measure the closed-loop load of `spec` against 127.0.0.1."""
    payloads = [request_bytes(spec, body) for body in spec.bodies]
    if spec.warmup:
        await _phase(spec, payloads, spec.warmup, time.perf_counter() + spec.max_seconds)
    cpu = group_cpu_seconds(spec.server_pgid) if spec.server_pgid else float("nan")
    start = time.perf_counter()
    latencies, errors, first_error = await _phase(spec, payloads, spec.requests, start + spec.max_seconds)
    seconds = time.perf_counter() - start
    result = summarize(latencies, errors, seconds, spec.requests, first_error)
    if spec.server_pgid:
        result.server_cores = (group_cpu_seconds(spec.server_pgid) - cpu) / seconds
    return result


TRIVIAL_BODY = b'{"probability":0.5}'
TRIVIAL_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(TRIVIAL_BODY),
    TRIVIAL_BODY,
)


async def _trivial_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on this connection with the same 200 JSON (framing only, no parsing)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(TRIVIAL_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_trivial(port: int) -> None:
    """The trivial endpoint on 127.0.0.1:`port`, until the process is stopped."""
    server = await asyncio.start_server(_trivial_connection, HOST, port)
    async with server:
        await server.serve_forever()


# =========================================================================== processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def venv_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment with the venv's `bin/` first on PATH (mlflow runs `uvicorn` by name)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return {**env, **extra}


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in process group `pgid`, from /proc (0 if none is left)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # fields after "(comm)": state, ppid, pgrp, ...
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return total


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the living processes of group `pgid`, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


@dataclass
class Server:
    """A server process started in its own process group (so stopping it stops its children too)."""

    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the group id

    def rss_mb(self) -> float:
        return group_rss_bytes(self.pgid) / 2**20

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.pgid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after `STOP_TIMEOUT_S`."""
        stop_group(self.process, self.name)


def stop_group(process: subprocess.Popen, name: str) -> None:
    """End a process started with `start_new_session=True` and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("{} did not stop within {} s: killing its process group", name, STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
    try:  # children may outlive a leader that exited (mlflow's CLI and its uvicorn)
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def start_server(name: str, argv: Sequence[str], env: dict[str, str], port: int, log_dir: Path) -> Server:
    """Start `argv` in a new session with its output in `log_dir/<name>.log`."""
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    logger.info("started {} (pid {}) on {}:{}", name, process.pid, HOST, port)
    return Server(name, process, port, log)


def wait_ready(server: Server, path: str, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll `GET path` until it answers 200; seconds waited. Raises with the log's tail if the server dies."""
    start = time.perf_counter()
    url = f"http://{HOST}:{server.port}{path}"
    last = ""
    while time.perf_counter() - start < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode}; its log ({server.log}) ends:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready at {url} after {timeout:.0f} s (last answer: {last}); log:\n{server.log_tail()}")


def wait_listening(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def post_json(port: int, path: str, body: str, timeout: float = 30.0) -> Any:
    """POST a JSON body to 127.0.0.1 and decode the JSON answer."""
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def get_json(port: int, path: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def drive(spec: LoadSpec, work_dir: Path, stack: ExitStack) -> LoadResult:
    """Run the load generator in its own process (own group, stopped on failure) and read its result."""
    spec_file = work_dir / f"load-{spec.port}-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    process = subprocess.Popen(
        [sys.executable, "-m", "mlsys.bench", "load", str(spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=venv_env(get_settings()),
    )
    stack.callback(stop_group, process, "load generator")
    out, err = process.communicate(timeout=2 * spec.max_seconds + 120)
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return LoadResult(**json.loads(out))


# =========================================================================== request bodies


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values become null (JSON has no NaN), numbers plain Python."""
    records = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                clean[key] = None
            elif isinstance(value, np.integer | int) and not isinstance(value, bool):
                clean[key] = int(value)
            elif isinstance(value, np.floating | float):
                clean[key] = float(value)
            else:
                clean[key] = str(value)
        records.append(clean)
    return records


def flight_bodies(rows: pd.DataFrame) -> list[str]:
    """`POST /predict` bodies: the raw flight as the desk knows it (local New York departure time)."""
    bodies = []
    for row in rows.itertuples(index=False):
        body = {
            "carrier": str(row.carrier),
            "flight": int(row.flight),
            "origin": str(row.origin),
            "dest": str(row.dest),
            "scheduled_departure": pd.Timestamp(row.sched_dep_local).isoformat(),
        }
        if isinstance(row.tailnum, str) and row.tailnum:
            body["tailnum"] = row.tailnum
        bodies.append(json.dumps(body))
    return bodies


# =========================================================================== the benchmark


@dataclass
class Online:
    """Figures of the online half: one LoadResult per load, plus what the servers told us."""

    version: str
    results: dict[str, LoadResult] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    ready_seconds: dict[str, float] = field(default_factory=dict)
    max_abs_difference: float = float("nan")
    compared_rows: int = 0
    lean: bool | None = None


@dataclass
class Bodies:
    """The requests, built once from the same sampled test flights for every server."""

    ours: list[str]
    mlflow: list[str]
    flights: list[str]

    @classmethod
    def sample(cls, test: pd.DataFrame, seed: int, n: int = SAMPLE_ROWS) -> Bodies:
        """`n` seeded test flights: model input rows for /score and /invocations, raw flights for /predict."""
        from mlsys.pipeline import INPUT_COLUMNS

        rows = test.sample(n, random_state=seed)
        records = json_records(rows[INPUT_COLUMNS])
        return cls(
            ours=[json.dumps(r) for r in records],
            mlflow=[json.dumps({"dataframe_records": [r]}) for r in records],
            flights=flight_bodies(rows),
        )


def ensure_champion_and_warehouse(settings: Settings) -> str:
    """The champion's registered version (registered now if the store has none); loads an empty warehouse."""
    from mlsys.serve import champion

    version = champion.ensure_champion(settings)
    flights = champion.ensure_warehouse(settings)
    logger.info("champion: {} version {}; warehouse: {:,} flights", settings.registered_model_name, version, flights)
    return version


class OnlineBench:
    """The online half, step by step, so the caller can start other things while the servers load."""

    def __init__(self, settings: Settings, version: str, bodies: Bodies, work_dir: Path, stack: ExitStack, requests: dict[str, int]):
        self.settings = settings
        self.bodies = bodies
        self.work_dir = work_dir
        self.stack = stack
        self.requests = requests
        self.online = Online(version=version)
        # neither server writes an access log line per request (uvicorn reads UVICORN_* variables)
        self.env = venv_env(settings, UVICORN_ACCESS_LOG="false")
        self.ours: Server | None = None
        self.peer: Server | None = None

    def load(self, key: str, server: Server, path: str, bodies: list[str]) -> LoadResult:
        """Drive one server with `bodies` (the counts and time bound of `key`) and keep the result."""
        n = self.requests[key]
        logger.info("{}: {:,} requests to {} (concurrency {}, at most {:.0f} s)", key, n, path, CONCURRENCY, MAX_SECONDS[key])
        spec = LoadSpec(server.port, path, bodies, requests=n, warmup=min(WARMUP[key], n), max_seconds=MAX_SECONDS[key], server_pgid=server.pgid)
        result = self.online.results[key] = drive(spec, self.work_dir, self.stack)
        logger.info(
            "{}: {:,.0f} req/s, p50 {:.1f} ms, p99 {:.1f} ms, {} errors, server on {:.2f} cores",
            key, result.requests_per_second, result.p50_ms, result.p99_ms, result.errors, result.server_cores,
        )
        return result

    def ceiling(self) -> None:
        """The load generator against the trivial endpoint: the most it can measure here."""
        port = free_port()
        trivial = start_server("trivial", [sys.executable, "-m", "mlsys.bench", "trivial", str(port)], self.env, port, self.work_dir)
        self.stack.callback(trivial.stop)
        wait_listening(port)
        self.load("trivial", trivial, "/", self.bodies.ours)
        trivial.stop()

    def start_servers(self) -> None:
        """Start the service and `mlflow models serve` on the same version (returns while they load)."""
        bin_dir = Path(sys.executable).parent
        ours_port, peer_port = free_port(), free_port()
        self.ours = start_server(
            "service",
            [str(bin_dir / "uvicorn"), "--factory", "mlsys.serve.app:create_app", "--host", HOST, "--port", str(ours_port), "--workers", "1"],
            self.env,
            ours_port,
            self.work_dir,
        )
        self.stack.callback(self.ours.stop)
        model_uri = f"models:/{self.settings.registered_model_name}/{self.online.version}"
        self.peer = start_server(
            "mlflow",
            [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", HOST, "-p", str(peer_port), "--workers", "1"],
            self.env,
            peer_port,
            self.work_dir,
        )
        self.stack.callback(self.peer.stop)

    def measure(self) -> Online:
        """Wait for both servers, check they give the same answers, then load each in turn."""
        ours, peer, online, bodies = self.ours, self.peer, self.online, self.bodies
        assert ours is not None and peer is not None, "start_servers() first"
        online.ready_seconds["ours"] = wait_ready(ours, "/ready")
        online.ready_seconds["mlflow"] = wait_ready(peer, "/ping")
        served = get_json(ours.port, "/model")
        if str(served.get("version")) != str(online.version):
            raise RuntimeError(f"the service loaded version {served.get('version')}, mlflow serves {online.version}: the alias moved during the run")
        online.lean = bool(served.get("lean"))
        online.rss_mb["ours_ready"], online.rss_mb["mlflow_ready"] = ours.rss_mb(), peer.rss_mb()
        diffs = [
            abs(post_json(ours.port, "/score", a)["probability"] - post_json(peer.port, "/invocations", b)["predictions"][0][1])
            for a, b in zip(bodies.ours[:20], bodies.mlflow[:20], strict=True)
        ]
        online.max_abs_difference, online.compared_rows = float(max(diffs)), len(diffs)

        self.load("ours", ours, "/score", bodies.ours)
        online.rss_mb["ours"] = ours.rss_mb()
        self.load("full", ours, "/predict", bodies.flights)
        online.rss_mb["full"] = ours.rss_mb()
        ours.stop()  # the peer gets the machine to itself, as the service did
        self.load("mlflow", peer, "/invocations", bodies.mlflow)
        online.rss_mb["mlflow"] = peer.rss_mb()
        peer.stop()
        return online


def batch_bench(client: Any, frame: pd.DataFrame, model: Any, threshold: float, scorers: Sequence[str]) -> pd.DataFrame:
    """Rows/s per scorer: pandas in this process, then Dask on 1 and on 2 workers of `client`'s cluster.

    A first untimed pass sizes the job: the frame is repeated as many times as fill about
    `BATCH_RUN_SECONDS` in one process, so a fast scorer's partitions are large enough that fixed
    costs (a scorer call costs about 10 ms whatever its rows; the scheduler's round trip) do not
    decide the figure. "1 worker" keeps the partitions and the tasks on the first worker only,
    so both Dask figures come from the same processes, partitions and scorer.
    """
    from mlsys import batch

    rows = []
    addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
    for kind in scorers:
        scorer = batch.make_scorer(model, kind)  # compiled: compiles now (cached), so the workers load the file
        start = time.perf_counter()
        batch.score_frame(frame, scorer, threshold)  # warm-up, and how long one pass takes
        passes = max(1, round(BATCH_RUN_SECONDS / (time.perf_counter() - start)))
        job = pd.concat([frame] * passes, ignore_index=True) if passes > 1 else frame
        for label, used in [("pandas, 1 process", None), ("Dask, 1 worker", addresses[:1]), ("Dask, 2 workers", addresses[:2])]:
            if used is None:
                result = batch.pandas_throughput(job, scorer, threshold, BATCH_REPEATS)
            else:
                result = batch.dask_throughput(client, job, model, kind, threshold, BATCH_PARTITIONS, BATCH_REPEATS, used)
            rows.append({"scorer": kind, "engine": label, "rows_per_second": result.rows_per_second, "cores": result.cores, "rows_per_run": len(job)})
            logger.info("batch {} {}: {:,.0f} rows/s on {:.2f} cores ({:,} rows per run)", kind, label, result.rows_per_second, result.cores, len(job))
    return pd.DataFrame(rows)


# =========================================================================== report


def _met(value: float, goal: float) -> str:
    return "met" if np.isfinite(value) and value >= goal else "not met"


def online_table(online: Online) -> pd.DataFrame:
    """One row per load: server, route, requests, errors, req/s, p50, p99, RSS."""
    names = {
        "trivial": ("load generator ceiling (trivial asyncio endpoint)", "POST /"),
        "mlflow": (f"mlflow models serve, version {online.version}", "POST /invocations"),
        "ours": (f"this service, version {online.version}", "POST /score"),
        "full": ("this service, full path", "POST /predict"),
    }
    rss = {"mlflow": online.rss_mb.get("mlflow"), "ours": online.rss_mb.get("ours"), "full": online.rss_mb.get("full")}
    rows = []
    for key in ("trivial", "mlflow", "ours", "full"):
        if key not in online.results:
            continue
        r = online.results[key]
        rows.append(
            {
                "server": names[key][0],
                "route": names[key][1],
                "requests": f"{r.requests:,}" + (" (time bound)" if r.stopped_by == "time" else ""),
                "errors": r.errors,
                "req/s": f"{r.requests_per_second:,.0f}",
                "p50 ms": f"{r.p50_ms:.2f}",
                "p99 ms": f"{r.p99_ms:.2f}",
                "server cores": f"{r.server_cores:.2f}" if np.isfinite(r.server_cores) else "",
                "RSS MB": f"{rss[key]:.0f}" if rss.get(key) else "",
            }
        )
    return pd.DataFrame(rows)


def batch_table(batch_rows: pd.DataFrame) -> pd.DataFrame:
    """Scorers as rows, engines as columns (rows/s), plus the 1 -> 2 worker speed-up."""
    wide = batch_rows.pivot(index="scorer", columns="engine", values="rows_per_second")
    wide = wide[[c for c in ("pandas, 1 process", "Dask, 1 worker", "Dask, 2 workers") if c in wide]]
    out = wide.map(lambda v: f"{v:,.0f}")
    if "cores" in batch_rows:
        cores = batch_rows.pivot(index="scorer", columns="engine", values="cores")[wide.columns]
        out = out + cores.map(lambda v: f" ({v:.1f} cores)")
    if {"Dask, 1 worker", "Dask, 2 workers"} <= set(wide.columns):
        out["2 / 1 workers"] = (wide["Dask, 2 workers"] / wide["Dask, 1 worker"]).map(lambda v: f"{v:.2f}x")
    if "rows_per_run" in batch_rows:
        out["rows per run"] = batch_rows.groupby("scorer")["rows_per_run"].first().map(lambda v: f"{v:,}")
    return out.reset_index()


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def report(online: Online | None, batch_rows: pd.DataFrame | None, context: dict[str, Any]) -> str:
    """The whole report as Markdown: context, the online table with ratios and goals, the batch table."""
    out = ["# make bench", ""]
    out += [f"- {k}: {v}" for k, v in context.items()]
    if online is not None:
        r = online.results
        out += ["", f"## Online: single-row JSON over loopback, concurrency {CONCURRENCY}, one worker process each", ""]
        out += [markdown(online_table(online)), ""]
        if "ours" in r and "mlflow" in r:
            # answers that are errors do not count as served
            failed = r["ours"].errors or r["mlflow"].errors
            rps_ratio = float("nan") if failed else r["ours"].requests_per_second / r["mlflow"].requests_per_second
            p99_ratio = float("nan") if failed else r["mlflow"].p99_ms / r["ours"].p99_ms
            out += [
                f"- requests/s, this service / mlflow: **{rps_ratio:.1f}x** (goal >= {GOAL_RPS_RATIO:.0f}x: {_met(rps_ratio, GOAL_RPS_RATIO)})",
                f"- p99, mlflow / this service: **{p99_ratio:.1f}x** (goal: p99 <= 1/{GOAL_P99_RATIO:.0f} of mlflow's: {_met(p99_ratio, GOAL_P99_RATIO)})",
            ]
        out += [
            f"- same answers: max |p(service) - p(mlflow)| = {online.max_abs_difference:.2e} on {online.compared_rows} rows; "
            f"service scoring path: {'lean (numpy)' if online.lean else 'pipeline'}",
            f"- resident memory with the champion loaded, at ready: service {online.rss_mb.get('ours_ready', 0):.0f} MB, "
            f"mlflow {online.rss_mb.get('mlflow_ready', 0):.0f} MB (all processes of its group); RSS column: after its load",
            f"- ready after: service {online.ready_seconds.get('ours', 0):.1f} s, mlflow {online.ready_seconds.get('mlflow', 0):.1f} s; "
            "server cores: CPU seconds of the server's processes per second of its measured load",
        ]
        out += [f"- **{k}: {v.errors:,} errors**, the first: `{v.first_error[:200]}`" for k, v in r.items() if v.errors]
    if batch_rows is not None:
        best = float(batch_rows["rows_per_second"].max())
        wide = batch_rows.pivot(index="scorer", columns="engine", values="rows_per_second")
        out += ["", f"## Batch: rows/s scoring precomputed features ({context.get('batch rows', '')})", ""]
        out += [markdown(batch_table(batch_rows)), ""]
        if {"Dask, 1 worker", "Dask, 2 workers"} <= set(wide.columns):
            scaling = wide["Dask, 2 workers"] / wide["Dask, 1 worker"]
            reached = ", ".join(scaling[scaling >= GOAL_SCALING].index)
            out += [
                "- 1 -> 2 workers: " + ", ".join(f"{k} {v:.2f}x" for k, v in scaling.items())
                + f" (goal >= {GOAL_SCALING}x: " + (f"met for {reached})" if reached else "not met)")
            ]
        out += [
            f"- fastest: {best:,.0f} rows/s (goal >= 1,000,000: {_met(best, GOAL_BATCH_RPS)})",
            "- cores: CPU seconds of the scoring processes per second of the run; two workers that got two free "
            "cores show about 2.0, fewer means other work on the machine had the rest",
        ]
    return "\n".join(out) + "\n"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run(
    settings: Settings,
    out_dir: Path,
    online: bool = True,
    batch_scorers: Sequence[str] = ("pipeline", "lean", "compiled"),
    batch_rows_limit: int | None = None,
    quick: bool = False,
) -> str:
    """The whole benchmark; returns the report (also written to `out_dir`)."""
    from mlsys import batch, features
    from mlsys.serve.model import from_registry

    started = time.perf_counter()
    context: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, load average at start {load_average()} (other work on the machine slows every figure)",
        "registry": mask_password(settings.mlflow_tracking_uri),
        "warehouse": mask_password(settings.database_url),
    }
    version = ensure_champion_and_warehouse(settings)
    context["model"] = f"{settings.registered_model_name} version {version} (@{settings.champion_alias})"
    table = features.feature_table(settings)
    test = table[table["split"] == "test"]
    work = out_dir / "logs"  # server logs and load specs, kept for a look after a failure
    work.mkdir(parents=True, exist_ok=True)
    online_result = batch_rows = None
    with ExitStack() as stack:
        steps = OnlineBench(settings, version, Bodies.sample(test, settings.seed), work, stack, QUICK_REQUESTS if quick else REQUESTS) if online else None
        if steps:
            steps.ceiling()  # first, with nothing else starting
            steps.start_servers()
        if batch_scorers:
            # started while the servers load; idle workers cost no CPU during the load tests.
            # address "": always a LocalCluster here, so "1 worker" and "2 workers" mean just that
            client = stack.enter_context(batch.dask_client(settings, workers=2, address=""))
            service = from_registry(settings)
            frame = batch.period_rows("test", table)
            if batch_rows_limit:
                frame = frame.iloc[:batch_rows_limit]
        if steps:
            online_result = steps.measure()
        if batch_scorers:
            context["batch rows"] = (
                f"the test split ({len(frame):,} flights), repeated to `rows per run` for the faster scorers; "
                f"{BATCH_PARTITIONS} partitions; best of {BATCH_REPEATS} runs after a warm-up"
            )
            batch_rows = batch_bench(client, frame, service.model, service.threshold, batch_scorers)
    context["load average at end"] = load_average()
    context["bench took"] = f"{time.perf_counter() - started:.0f} s"
    text = report(online_result, batch_rows, context)
    (out_dir / "bench.md").write_text(text)
    raw = {
        "context": context,
        "online": {k: asdict(v) for k, v in online_result.results.items()} if online_result else None,
        "rss_mb": online_result.rss_mb if online_result else None,
        "batch": batch_rows.to_dict("records") if batch_rows is not None else None,
    }
    (out_dir / "bench.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    return text


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit, so `finally` blocks stop the servers as on Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """`python -m mlsys.bench [--no-online] [--batch-scorers ...]`; `load SPEC.json` and `trivial PORT` are its helpers."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        spec = LoadSpec(**json.loads(Path(argv[1]).read_text()))
        print(json.dumps(asdict(asyncio.run(run_load(spec)))))
        return
    if argv[:1] == ["trivial"]:
        asyncio.run(serve_trivial(int(argv[1])))
        return
    parser = argparse.ArgumentParser(prog="python -m mlsys.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--no-online", action="store_true", help="skip the servers (batch figures only)")
    parser.add_argument("--batch-scorers", default="pipeline,lean,compiled", help="comma-separated, or '' for none")
    parser.add_argument("--batch-rows", type=int, default=None, help="score only the first N test flights (quick check)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: build/bench)")
    parser.add_argument("--quick", action="store_true", help="few requests: checks that every piece works (figures mean little)")
    args = parser.parse_args(argv)
    from mlsys.logger import setup_logging

    settings = get_settings()
    setup_logging(settings)
    scorers = [s for s in args.batch_scorers.split(",") if s]
    try:
        with sigterm_as_exit():
            text = run(settings, args.out or settings.root / "build" / "bench", online=not args.no_online, batch_scorers=scorers, batch_rows_limit=args.batch_rows, quick=args.quick)
    except KeyboardInterrupt:
        # the ExitStack has already stopped every server, the load generator and the Dask cluster
        print("make bench: interrupted; every process it started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(text)


if __name__ == "__main__":
    main()
