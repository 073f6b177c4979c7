"""`GET /metrics`: Prometheus exposition of latency, requests, errors, predicted probabilities and the model."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlsys.serve.app import create_app
from mlsys.serve.lesson import flight_body, score_body
from mlsys.serve.metrics import ServiceMetrics, route_of


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`: (name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(table: dict, name: str, **labels: str) -> float:
    return table.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def rows(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return splits["test"].iloc[:3]


def test_metrics_are_served_in_the_prometheus_format(client: TestClient) -> None:
    names = {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}
    assert {"mlsys_request_duration_seconds", "mlsys_requests", "mlsys_request_errors", "mlsys_predicted_probability", "mlsys_model_info"} <= names


def test_a_scored_request_increments_the_counts_latency_and_probability_histogram(client: TestClient, rows: pd.DataFrame) -> None:
    before = samples(client)
    for _, row in rows.iterrows():
        assert client.post("/score", json=score_body(row)).status_code == 200
    after = samples(client)
    n = len(rows)
    assert value(after, "mlsys_requests_total", route="/score", status="200") - value(before, "mlsys_requests_total", route="/score", status="200") == n
    assert value(after, "mlsys_request_duration_seconds_count", route="/score") - value(before, "mlsys_request_duration_seconds_count", route="/score") == n
    assert value(after, "mlsys_request_duration_seconds_sum", route="/score") > value(before, "mlsys_request_duration_seconds_sum", route="/score")
    assert value(after, "mlsys_predicted_probability_count", route="/score") - value(before, "mlsys_predicted_probability_count", route="/score") == n
    # the +Inf bucket counts every observation; probabilities never exceed 1, so the 1.0 bucket does too
    assert value(after, "mlsys_predicted_probability_bucket", route="/score", le="1.0") == value(after, "mlsys_predicted_probability_count", route="/score")
    decided = sum(value(after, "mlsys_decisions_total", decision=d) - value(before, "mlsys_decisions_total", decision=d) for d in ("act", "no action"))
    assert decided == n


def test_predict_records_the_probability_it_answered(client: TestClient, rows: pd.DataFrame) -> None:
    before = samples(client)
    answer = client.post("/predict", json=flight_body(rows.iloc[0]))
    assert answer.status_code == 200
    after = samples(client)
    p = answer.json()["probability"]
    assert value(after, "mlsys_predicted_probability_count", route="/predict") - value(before, "mlsys_predicted_probability_count", route="/predict") == 1
    assert value(after, "mlsys_predicted_probability_sum", route="/predict") - value(before, "mlsys_predicted_probability_sum", route="/predict") == pytest.approx(p)
    assert value(after, "mlsys_requests_total", route="/predict", status="200") - value(before, "mlsys_requests_total", route="/predict", status="200") == 1


def test_errors_are_counted_by_route_and_status(client: TestClient, rows: pd.DataFrame) -> None:
    before = samples(client)
    bad = {**score_body(rows.iloc[0]), "distance": "far"}
    assert client.post("/score", json=bad).status_code == 422
    assert client.get("/no/such/page").status_code == 404
    after = samples(client)
    assert value(after, "mlsys_request_errors_total", route="/score", status="422") - value(before, "mlsys_request_errors_total", route="/score", status="422") == 1
    # a path no route matches is counted under one label, never under the raw path
    assert value(after, "mlsys_request_errors_total", route="unmatched", status="404") - value(before, "mlsys_request_errors_total", route="unmatched", status="404") == 1
    assert not any(dict(labels).get("route") == "/no/such/page" for _, labels in after)
    # a 422 gives no prediction
    assert value(after, "mlsys_predicted_probability_count", route="/score") == value(before, "mlsys_predicted_probability_count", route="/score")


def test_the_model_served_is_described(client: TestClient, service) -> None:
    info = samples(client)
    found = [dict(labels) for name, labels in info if name == "mlsys_model_info"]
    assert found == [{"name": service.card.name, "version": service.card.version, "source": service.card.source, "threshold": f"{service.threshold:.4g}"}]


def test_two_apps_in_one_process_keep_their_own_counts(service, warehouse_settings, rows: pd.DataFrame) -> None:
    with TestClient(create_app(service, warehouse_settings)) as one, TestClient(create_app(service, warehouse_settings)) as two:
        for _ in range(2):
            one.post("/score", json=score_body(rows.iloc[0]))
        assert value(samples(one), "mlsys_requests_total", route="/score", status="200") == 2
        assert value(samples(two), "mlsys_requests_total", route="/score", status="200") == 0


def test_decisions_follow_the_threshold() -> None:
    metrics = ServiceMetrics()
    metrics.observe_predictions("/score", [0.1, 0.3, 0.5, 0.29], threshold=0.3)
    text = metrics.exposition().decode()
    assert 'mlsys_decisions_total{decision="act"} 2.0' in text
    assert 'mlsys_decisions_total{decision="no action"} 2.0' in text


def test_route_label_is_the_template_or_unmatched() -> None:
    class Route:
        path = "/predict"

    assert route_of({"route": Route()}) == "/predict"
    assert route_of({}) == "unmatched"
