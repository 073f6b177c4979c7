"""The benchmark's harness: load generator, process groups, request bodies, report. No timed assertions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlsys import bench
from mlsys.config import get_settings


async def _serve(handler: Any, work: Any) -> Any:
    """Run `work(port)` against an asyncio server with `handler` on a free loopback port."""
    server = await asyncio.start_server(handler, bench.HOST, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await work(port)


def test_load_generator_counts_every_request_against_the_trivial_endpoint() -> None:
    # the server runs in this process: its group's CPU time is read around the measured phase
    spec = lambda port: bench.LoadSpec(port, "/", ['{"a": 1}', '{"b": 2}'], concurrency=4, requests=300, warmup=20, server_pgid=os.getpgid(0))  # noqa: E731
    result = asyncio.run(_serve(bench._trivial_connection, lambda port: bench.run_load(spec(port))))
    assert (result.requests, result.errors, result.stopped_by) == (300, 0, "count")
    assert result.server_cores >= 0
    assert result.requests_per_second > 0 and 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_load_generator_reads_chunked_answers_reconnects_and_counts_errors() -> None:
    """A server that answers 422 in chunks and closes every connection: all requests counted as errors."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 422 Unprocessable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        writer.write(b"6\r\n{\"det\"\r\n8\r\n: \"bad\"}\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    spec = lambda port: bench.LoadSpec(port, "/score", ["{}"], concurrency=2, requests=20, warmup=0)  # noqa: E731
    result = asyncio.run(_serve(handler, lambda port: bench.run_load(spec(port))))
    assert (result.requests, result.errors) == (20, 20)
    assert result.first_error == 'HTTP 422: {"det": "bad"}'


def test_load_generator_stops_at_its_time_bound() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await bench._trivial_connection(reader, writer)

    spec = lambda port: bench.LoadSpec(port, "/", ["{}"], concurrency=1, requests=1_000_000, warmup=0, max_seconds=0.3)  # noqa: E731
    result = asyncio.run(_serve(slow, lambda port: bench.run_load(spec(port))))
    assert result.stopped_by == "time" and 0 < result.requests < 1_000_000


def test_summarize_quantiles() -> None:
    result = bench.summarize(np.arange(1, 101) / 1000, errors=0, seconds=2.0, wanted=100)
    assert result.requests_per_second == 50
    assert result.p50_ms == pytest.approx(50.5) and result.p99_ms == pytest.approx(99.01)
    assert bench.summarize([], 3, 1.0, 10).requests == 0


def test_servers_run_in_their_own_process_group_and_stop_with_their_children(tmp_path: Path) -> None:
    port = bench.free_port()
    env = bench.venv_env(get_settings())
    # a shell that leaves a child behind: stopping the leader alone would orphan it
    server = bench.start_server("sleepers", ["bash", "-c", "sleep 300 & sleep 300"], env, port, tmp_path)
    time.sleep(0.3)
    assert os.getpgid(server.process.pid) == server.process.pid != os.getpgid(0)
    assert server.rss_mb() > 0 and server.cpu_seconds() >= 0
    server.stop()
    assert server.process.poll() is not None
    assert bench.group_rss_bytes(server.pgid) == 0
    assert _living(server.pgid) == [], "a process of the group outlived stop()"


def _living(pgid: int) -> list[int]:
    """Pids of processes in group `pgid` that are not zombies (killed children wait to be reaped by init)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_wait_ready_reports_a_server_that_died(tmp_path: Path) -> None:
    server = bench.start_server("dies", [sys.executable, "-c", "print('no model here'); raise SystemExit(3)"], dict(os.environ), bench.free_port(), tmp_path)
    with pytest.raises(RuntimeError, match="exited with code 3(.|\n)*no model here"):
        bench.wait_ready(server, "/ready", timeout=60)


def test_drive_runs_the_generator_in_its_own_process(tmp_path: Path) -> None:
    port = bench.free_port()
    with ExitStack() as stack:
        trivial = bench.start_server("trivial", [sys.executable, "-m", "mlsys.bench", "trivial", str(port)], dict(os.environ), port, tmp_path)
        stack.callback(trivial.stop)
        bench.wait_listening(port)
        result = bench.drive(bench.LoadSpec(port, "/", ["{}"], requests=200, warmup=10), tmp_path, stack)
    assert (result.requests, result.errors) == (200, 0)
    assert trivial.process.poll() is not None


def test_sigterm_becomes_exit_so_cleanup_runs() -> None:
    with pytest.raises(SystemExit) as info, bench.sigterm_as_exit():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.code == 128 + signal.SIGTERM


def test_json_records_turn_missing_values_into_null() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan], "n": pd.array([3, None], dtype="Int64"), "s": pd.array(["a", None], dtype="string")})
    records = bench.json_records(frame)
    assert records == [{"x": 1.5, "n": 3, "s": "a"}, {"x": None, "n": None, "s": None}]
    assert json.loads(json.dumps(records, allow_nan=False)) == records


@pytest.fixture(scope="module")
def test_rows() -> pd.DataFrame:
    from mlsys import features

    return features.feature_table().query("split == 'test'").sample(50, random_state=0)


def test_request_bodies_are_accepted_by_the_service(test_rows: pd.DataFrame) -> None:
    """The bench's bodies pass the service's request validation (a 422 would make every request an error)."""
    from mlsys import evaluate
    from mlsys.pipeline import INPUT_COLUMNS
    from mlsys.serve.app import create_app
    from mlsys.serve.model import ModelCard, ModelService

    model = evaluate.fit(evaluate.constrained_lightgbm(seed=0, n_jobs=1, n_estimators=5), test_rows.assign(late=np.arange(50) % 2))
    app = create_app(ModelService(model, ModelCard(name="tiny", version="1")), get_settings())
    # the test warehouse has no flights: /predict cannot answer 200, but its body must validate
    with TestClient(app, raise_server_exceptions=False) as client:
        for record in bench.json_records(test_rows[INPUT_COLUMNS])[:10]:
            answer = client.post("/score", content=json.dumps(record), headers={"Content-Type": "application/json"})
            assert answer.status_code == 200, answer.text
            assert 0 <= answer.json()["probability"] <= 1
        for body in bench.flight_bodies(test_rows)[:10]:
            answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code != 422, answer.text


def test_flight_bodies_carry_the_raw_flight(test_rows: pd.DataFrame) -> None:
    body = json.loads(bench.flight_bodies(test_rows.head(1))[0])
    row = test_rows.iloc[0]
    assert body["scheduled_departure"] == row["sched_dep_local"].isoformat()
    assert (body["carrier"], body["flight"], body["origin"], body["dest"]) == (row["carrier"], row["flight"], row["origin"], row["dest"])


def _result(rps: float, p99: float, n: int = 5_000) -> bench.LoadResult:
    return bench.LoadResult(n, 0, n / rps, rps, p99 / 2, p99, p99 / 2, p99 * 2, "count", server_cores=0.95)


def test_report_states_ratios_and_goals(tmp_path: Path) -> None:
    online = bench.Online(version="3", max_abs_difference=0.0, compared_rows=20, lean=True)
    online.results = {"trivial": _result(7000, 3), "mlflow": _result(25, 560), "ours": _result(1000, 20), "full": _result(40, 300, 1000)}
    online.rss_mb = {"ours": 350, "mlflow": 600, "full": 360, "ours_ready": 340, "mlflow_ready": 590}
    batch_rows = pd.DataFrame(
        [
            {"scorer": "compiled", "engine": "pandas, 1 process", "rows_per_second": 400_000, "cores": 1.0, "rows_per_run": 9},
            {"scorer": "compiled", "engine": "Dask, 1 worker", "rows_per_second": 350_000, "cores": 1.0, "rows_per_run": 9},
            {"scorer": "compiled", "engine": "Dask, 2 workers", "rows_per_second": 650_000, "cores": 1.94, "rows_per_run": 9},
        ]
    )
    text = bench.report(online, batch_rows, {"machine": "test"})
    assert "**40.0x** (goal >= 20x: met)" in text
    assert "**28.0x** (goal: p99 <= 1/20 of mlflow's: met)" in text
    assert "compiled 1.86x (goal >= 1.8x: met for compiled)" in text
    assert "fastest: 650,000 rows/s (goal >= 1,000,000: not met)" in text
    assert "| compiled | 400,000 (1.0 cores) | 350,000 (1.0 cores) | 650,000 (1.9 cores) | 1.86x | 9 |" in text
    assert "| this service, version 3 | POST /score | 5,000 | 0 | 1,000 | 10.00 | 20.00 | 0.95 | 350 |" in text
