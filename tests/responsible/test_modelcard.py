"""The model card is built from its numbers and round-trips through a local MLflow registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys.responsible import modelcard


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    """A registry of its own on tmp_path, with one version of a model (no artifact needed for the card)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    c.create_registered_model("card-test")
    c.create_model_version("card-test", source=(tmp_path / "model").as_uri())
    return c


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 4000
    local = pd.Series(pd.to_datetime("2013-11-01") + pd.to_timedelta(rng.integers(0, 61 * 24, n), unit="h"))
    hour = local.dt.hour
    p = rng.uniform(0.05, 0.6, n)
    # December is later than the model thinks; early-morning outcomes are noise
    y = rng.uniform(size=n) < np.where(local.dt.month == 12, np.minimum(p + 0.15, 1), p)
    y = np.where(hour < 8, rng.uniform(size=n) < 0.2, y)
    frame = pd.DataFrame({"sched_dep_local": local, "sched_hour": hour.astype(float), "late": y.astype(int),
                          "origin": rng.choice(["EWR", "JFK", "LGA"], n), "origin_mean_delay_3h": np.where(hour < 8, np.nan, 5.0)})
    return frame, p


def _card() -> modelcard.Card:
    frame, p = _frame()
    slices = {name: modelcard.slice_metrics(frame, p, groups, 0.3) for name, groups in modelcard.time_slices(frame).items()}
    return modelcard.Card(
        name="card-test", version="1", threshold=0.3, data="synthetic flights",
        overall={"roc_auc": 0.7, "cost_per_flight": 50.0}, slices=slices, failures=modelcard.known_failures(slices, frame),
        notes={"Consistency": "0.14 of flights flip"},
    )


def test_known_failures_carry_the_slice_numbers() -> None:
    card = _card()
    dec = card.slices["month"].loc["December"]
    assert dec["late_rate"] > dec["mean_p"] + 0.05  # the synthetic shift is there
    text = " ".join(card.failures)
    assert f"{dec['late_rate']:.3f}" in text and f"{dec['mean_p']:.3f}" in text
    early = card.slices["scheduled departure"].loc["before 8:00"]
    assert f"{early['roc_auc']:.3f}" in card.failures[1]
    assert "missing for 1.000 of these flights (0.000 later)" in card.failures[1]


def test_card_round_trips_through_the_registry(client: MlflowClient) -> None:
    card = _card()
    text = modelcard.card_markdown(card)
    tags = modelcard.card_tags(card)
    modelcard.write_card(card.name, card.version, text, tags, client=client)
    description, stored = modelcard.read_card(card.name, card.version, client=client)
    assert description == text
    assert stored == tags
    assert stored["card.test_roc_auc"] == "0.7000"
    assert {"card.known_failure_1", "card.known_failure_2", "card.intended_use"} <= set(stored)
    for heading in ("**Intended use.**", "**Not for.**", "**Data.**", "## Known failures", "### By month"):
        assert heading in description


def test_a_card_too_long_for_mlflow_is_refused(client: MlflowClient) -> None:
    with pytest.raises(ValueError, match="5,000"):
        modelcard.write_card("card-test", "1", "x" * 5001, {}, client=client)


def test_markdown_table_formats_by_column_type() -> None:
    table = pd.DataFrame({"flights": [1234, 5], "rate": [0.12345, np.nan], "ok": [True, False]}, index=pd.Index(["a", "b"], name="g"))
    assert modelcard.markdown_table(table).splitlines() == [
        "| g | flights | rate | ok |",
        "|---|---:|---:|---:|",
        "| a | 1,234 | 0.123 | True |",
        "| b | 5 | – | False |",
    ]
