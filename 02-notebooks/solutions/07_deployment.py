"""Solutions to the exercises of lesson 07 (deployment). Try the exercises yourself first.

One function per exercise of `02-notebooks/07_deployment.ipynb`. `client` is anything that speaks
HTTP to the service like `httpx.Client`: `httpx.Client(base_url=service.url)` for the lesson's
`lesson.ServiceProcess`, or `fastapi.testclient.TestClient(create_app())` in process. `engine` is
the warehouse the service logs to (`mlsys.warehouse.engine()`). Flights are rows of
`mlsys.features.feature_table()`. `tests/solutions/test_07_deployment.py` runs each of them and
checks its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from mlsys import batch
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve import lesson


def exercise_1(client: Any, flight: pd.Series, engine: Engine, hours_before: Sequence[int] = (24, 6, 2)) -> dict[str, pd.DataFrame]:
    """Three moments: P(late) for one flight as of 24 h, 6 h and 2 h before departure, and the inputs that change.

    `as_of` replays the past: the service hides everything not known at that moment. Far from the
    departure the origin's recent departures, the backlog and the weather of the flight's own hours
    are not known yet; the answer at 2 h is the default one (the decision time). The changed inputs
    are read from the prediction log, which keeps every answer's features.
    """
    answers, ids = [], []
    for hours in hours_before:
        as_of = pd.Timestamp(flight["sched_dep_local"]) - pd.Timedelta(hours=hours)
        response = client.post("/predict", json=lesson.flight_body(flight, as_of=as_of))
        response.raise_for_status()
        answer = response.json()
        ids.append(answer["request_id"])
        answers.append({"hours before departure": hours, "as_of (local)": as_of, "P(late)": answer["probability"], "decision": answer["decision"]})
    logged = lesson.wait_for_log(engine, ids).set_index("request_id").loc[ids]
    inputs = lesson.log_features(logged.reset_index())
    inputs.index = [f"{h} h before" for h in hours_before]
    varies = [c for c in INPUT_COLUMNS if inputs[c].astype("string").fillna("<NA>").nunique() > 1]
    return {"answers": pd.DataFrame(answers), "changed inputs": inputs[varies].T}


def exercise_2(engine: Engine) -> pd.DataFrame:
    """p50 and p99 of the service's latency (ms) per route, from `prediction_log`, a batch request counted once.

    A batch request logs one row per flight, each with the latency of the whole request; counting
    its rows would weigh a request of 50 flights fifty times.
    """
    log = lesson.read_prediction_log(engine)
    per_request = log.drop_duplicates("request_id")
    grouped = per_request.groupby("route")["latency_ms"]
    return pd.DataFrame({"requests": grouped.size(), "p50_ms": grouped.quantile(0.5), "p99_ms": grouped.quantile(0.99)})


def exercise_3(client: Any, model: Any, threshold: float, table: pd.DataFrame, day: str = "2013-11-05", n: int = 50) -> dict[str, Any]:
    """Batch against online: every flight of `day` scored from the offline table, the first `n` also by `/predict/batch`.

    Both use the same features (the service computes them with the offline code) and the same
    model, so the probabilities agree to rounding, and so do the decisions at the same threshold.
    """
    rows = batch.period_rows(day, table)  # flight_id and the model's inputs, in schedule order
    scored = batch.score_frame(rows, batch.make_scorer(model, "pipeline"), threshold)
    first = table.set_index("flight_id").loc[rows["flight_id"].head(n)].reset_index()
    response = client.post("/predict/batch", json={"flights": [lesson.flight_body(r) for _, r in first.iterrows()]})
    response.raise_for_status()
    online = pd.DataFrame(response.json()["predictions"])
    compared = pd.DataFrame(
        {
            "flight_id": first["flight_id"],
            "batch": scored["probability"].head(n).to_numpy(),
            "online": online["probability"].to_numpy(),
            "batch decision": scored["decision"].head(n).to_numpy(),
            "online decision": online["decision"].to_numpy(),
        }
    )
    return {
        "flights in the day": len(rows),
        "flagged by the batch job": int(scored["decision"].sum()),
        "compared": compared,
        "max |batch - online|": float(np.abs(compared["batch"] - compared["online"]).max()),
        "same decisions": bool((compared["batch decision"] == compared["online decision"]).all()),
    }


def exercise_4(client: Any, flight: pd.Series, carrier: str = "ZZ") -> dict[str, Any]:
    """An unknown carrier: the status, the flags and P(late) for `flight` under carrier `carrier`, and under its own.

    The service answers 200 with the flag `unknown_carrier`: the model files the carrier with the
    categories it never saw, and the carrier's recent delays have no history, so the probability
    usually moves.
    """
    real = client.post("/predict", json=lesson.flight_body(flight)).json()
    response = client.post("/predict", json={**lesson.flight_body(flight), "carrier": carrier})
    answer = response.json()
    return {
        "status": response.status_code,
        "flags": answer["flags"],
        "P(late), unknown carrier": answer["probability"],
        "P(late), own carrier": real["probability"],
    }
