"""Prometheus metrics of the service: `GET /metrics` in the text exposition format.

What an on-call engineer watches before any label arrives (Huyen, 2022, ch. 8):

* `mlsys_request_duration_seconds` (histogram, by route): latency as the client sees it minus the
  network: from the request entering the app to its last byte leaving;
* `mlsys_requests_total` (counter, by route and status) and `mlsys_request_errors_total` (the
  same, status >= 400 only): throughput and error rate;
* `mlsys_predicted_probability` (histogram, by route): the distribution of P(late), whose drift
  is the first sign of trouble when outcomes are hours away;
* `mlsys_decisions_total` (counter, by decision): how many flights the desk is asked to act on;
* `mlsys_model_info` (info: name, version, source, threshold): what is being served.

The route label is the route's template (`/predict`), never the raw path, so a scanner probing
random URLs cannot create unbounded label values (unmatched paths count as `unmatched`). Each
app gets its own `CollectorRegistry`, so several apps in one process (tests) never share counts.
With several worker processes each keeps its own counts, and a scrape sees one worker: run
Prometheus' multiprocess mode or one worker per container to aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Seconds; the service answers in milliseconds, a cold feature build takes up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
UNMATCHED = "unmatched"
METRICS_PATH = "/metrics"


class ServiceMetrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram("mlsys_request_duration_seconds", "Time in the service per request", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.requests = Counter("mlsys_requests", "Requests answered", ["route", "status"], registry=r)
        self.errors = Counter("mlsys_request_errors", "Requests answered with status >= 400", ["route", "status"], registry=r)
        self.probability = Histogram("mlsys_predicted_probability", "Predicted P(late)", ["route"], buckets=PROBABILITY_BUCKETS, registry=r)
        self.decisions = Counter("mlsys_decisions", "Decisions taken (act = P(late) at or above the threshold)", ["decision"], registry=r)
        self.model = Info("mlsys_model", "The model being served", registry=r)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """One answered request."""
        self.latency.labels(route=route).observe(seconds)
        self.requests.labels(route=route, status=str(status)).inc()
        if status >= 400:
            self.errors.labels(route=route, status=str(status)).inc()

    def observe_predictions(self, route: str, probabilities: Iterable[float], threshold: float) -> None:
        """The probabilities (and decisions at `threshold`) of one request's answers."""
        hist = self.probability.labels(route=route)
        acted = 0
        total = 0
        for p in probabilities:
            hist.observe(float(p))
            acted += p >= threshold
            total += 1
        if acted:
            self.decisions.labels(decision="act").inc(acted)
        if total - acted:
            self.decisions.labels(decision="no action").inc(total - acted)

    def set_model(self, card: Any) -> None:
        """Describe the served model (`ModelCard`)."""
        self.model.info(
            {"name": str(card.name), "version": str(card.version or ""), "source": str(card.source), "threshold": f"{card.threshold:.4g}"}
        )

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request and counting it by route template and status.

    Pure ASGI rather than `@app.middleware("http")`: that wrapper runs each request through an extra
    task and memory stream, which costs more than the whole `/score` handler.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.observe_request(route_of(scope), status, time.perf_counter() - start)


def route_of(scope: Scope) -> str:
    """The matched route's template (FastAPI puts the route in the scope), or `UNMATCHED`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED


def instrument(app: FastAPI) -> ServiceMetrics:
    """Give `app` its metrics: the middleware, `app.state.metrics` and `GET /metrics`."""
    metrics = ServiceMetrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus text exposition of the service's metrics."""
        runtime = getattr(request.app.state, "runtime", None)
        service = getattr(runtime, "service", None)
        if service is not None:
            metrics.set_model(service.card)
        return Response(content=metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def observe(request: Request, route: str, probabilities: Iterable[float], threshold: float) -> None:
    """Record a request's predictions on its app's metrics (does nothing on an app without them)."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_predictions(route, probabilities, threshold)
