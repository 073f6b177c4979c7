"""Dashboards as plots (matplotlib): what a monitoring screen shows, drawn from the log and `/metrics`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from mlsys.monitor.alerts import MONITORS, fired

NEW_YORK = "America/New_York"


def metrics_frame(text: str) -> pd.DataFrame:
    """A `/metrics` page as a table: metric family, sample name, labels (as text) and value."""
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # creation times: not a measurement
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            rows.append({"family": family.name, "type": family.type, "sample": sample.name, "labels": labels, "value": sample.value})
    return pd.DataFrame(rows)


def request_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Requests and errors per route and status, from `metrics_frame`."""
    counts = metrics[metrics["sample"].isin(["mlsys_requests_total", "mlsys_request_errors_total"])]
    table = counts.pivot_table(index="labels", columns="sample", values="value", aggfunc="sum", fill_value=0)
    return table.rename(columns={"mlsys_requests_total": "requests", "mlsys_request_errors_total": "errors"}).astype("int64")


def histogram(metrics: pd.DataFrame, name: str, route: str) -> pd.DataFrame:
    """A Prometheus histogram's cumulative buckets (`le`, count) for one route."""
    rows = metrics[(metrics["sample"] == f"{name}_bucket") & metrics["labels"].str.contains(f"route={route}(?:,|$)", regex=True)]
    le = rows["labels"].str.extract(r"le=([^,]+)")[0].astype("float64")
    return pd.DataFrame({"le": le.to_numpy(), "count": rows["value"].to_numpy()}).sort_values("le").reset_index(drop=True)


def plot_histogram(buckets: pd.DataFrame, ax: Any = None, title: str = "", xlabel: str = "") -> Any:
    """Bars of a Prometheus histogram (per-bucket counts from the cumulative ones)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    finite = buckets[np.isfinite(buckets["le"])]
    per_bucket = np.diff(np.concatenate([[0.0], finite["count"].to_numpy()]))
    ax.bar(range(len(finite)), per_bucket, color="tab:blue")
    ax.set_xticks(range(len(finite)), [f"{v:g}" for v in finite["le"]], rotation=90, fontsize=7)
    ax.set(title=title, xlabel=xlabel, ylabel="observations")
    return ax


def daily_operations(log: pd.DataFrame) -> pd.DataFrame:
    """Per simulated day: decisions, share acted on, mean P(late) and scoring time per flight (ms)."""
    day = log["decision_time"].dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.normalize()
    return log.groupby(day.to_numpy()).agg(
        decisions=("probability", "size"), acted=("decision", "mean"), mean_probability=("probability", "mean"), ms_per_flight=("latency_ms", "mean")
    )


def plot_operations(daily: pd.DataFrame, joined_daily: pd.Series | None = None) -> Any:
    """Three panels over the replay: decisions per day, mean P(late) (and the late share once known), share acted on."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
    axes[0].plot(daily.index, daily["decisions"], color="tab:gray")
    axes[0].set(ylabel="decisions")
    axes[1].plot(daily.index, daily["mean_probability"], label="mean P(late) (no labels needed)")
    if joined_daily is not None:
        axes[1].plot(joined_daily.index, joined_daily.to_numpy(), label="late share (once the labels arrive)", alpha=0.7)
    axes[1].set(ylabel="share")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[2].plot(daily.index, daily["acted"], color="tab:red")
    axes[2].set(ylabel="share acted on")
    axes[0].set_title("Replay Sep-Dec 2013: the prediction log, day by day")
    fig.tight_layout()
    return fig


def plot_psi(matrix: pd.DataFrame, top: int = 12, ax: Any = None) -> Any:
    """Heat map of PSI (features x windows) for the `top` features, with the 0.1 / 0.25 reading in the colour scale."""
    import matplotlib.pyplot as plt

    part = matrix.head(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(part) + 1.5))
    image = ax.imshow(np.log10(part.to_numpy(dtype="float64") + 1e-3), cmap="magma_r", aspect="auto", vmin=-3, vmax=1)
    ax.set_xticks(range(part.shape[1]), list(part.columns))
    ax.set_yticks(range(len(part)), list(part.index))
    for (i, j), v in np.ndenumerate(part.to_numpy(dtype="float64")):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.25 else "black")
    ax.figure.colorbar(image, ax=ax, label="log10 PSI")
    ax.set_title("PSI against September-October")
    return ax


def plot_monitors(table: pd.DataFrame, thresholds: pd.Series, reference_end: pd.Timestamp) -> Any:
    """One panel per monitor: its weekly value, its threshold, the reference weeks shaded, alerts in red."""
    import matplotlib.pyplot as plt

    flags = fired(table, thresholds)
    fig, axes = plt.subplots(len(MONITORS), 1, figsize=(10, 1.6 * len(MONITORS)), sharex=True)
    for ax, m in zip(axes, MONITORS, strict=True):
        ax.plot(table.index, table[m.name], marker="o", ms=3, color="tab:blue")
        hit = flags[m.name]
        ax.scatter(table.index[hit], table.loc[hit, m.name], color="tab:red", zorder=3, label="alert")
        ax.axhline(thresholds[m.name], color="tab:red", ls="--", lw=1)
        ax.axvspan(table.index.min(), reference_end, color="0.9", zorder=0)
        ax.set_ylabel(m.name + (" *" if m.needs_labels else ""), fontsize=8, rotation=0, ha="right")
    axes[0].set_title("Weekly monitors (grey: reference weeks; dashed: threshold; * needs labels)")
    fig.tight_layout()
    return fig
