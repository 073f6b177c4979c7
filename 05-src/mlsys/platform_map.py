"""Lesson 10's platform map: a Flock-style reference architecture (Agrawal et al., 2019) drawn as
boxes, each labelled with the modules of this repository that fill it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch


@dataclass(frozen=True)
class Box:
    """One component of the architecture: where it is drawn and which modules implement it."""

    name: str
    modules: tuple[str, ...]
    x: float
    y: float
    w: float = 2.6
    h: float = 1.5
    colour: str = "#dbe9f6"


#: Left to right, the path from data to decisions; the bottom row spans the whole platform.
BOXES = (
    Box("Data sources & ingestion", ("mlsys.data", "03-data/raw + SHA256SUMS"), 0.0, 4.0),
    Box("Data management\n(warehouse)", ("mlsys.warehouse", "SQLite / PostgreSQL"), 0.0, 2.0),
    Box("Feature store", ("mlsys.features (offline)", "mlsys.featurestore (Redis)"), 3.0, 3.0),
    Box("Training & tuning", ("mlsys.train", "mlsys.tune", "mlsys.pipeline"), 6.0, 4.0),
    Box("Evaluation & promotion", ("mlsys.evaluate", "mlsys.promote"), 6.0, 2.0),
    Box("Model management\n(tracking, registry)", ("mlsys.tracking", "MLflow (flight-delay@champion)"), 9.0, 3.0),
    Box("Serving & batch", ("mlsys.serve (FastAPI)", "mlsys.batch (Dask)"), 12.0, 4.0),
    Box("Monitoring & feedback", ("mlsys.serve.prediction_log", "mlsys.monitor"), 12.0, 2.0),
    Box("Orchestration", ("MLproject", "mlsys.workflow"), 0.0, 0.0, 6.6, 1.2, "#fde9c9"),
    Box("Provenance & governance", ("mlsys.lineage", "mlsys.config + .env"), 7.0, 0.0, 7.6, 1.2, "#fde9c9"),
)
#: Data and models flow along these arrows (from, to).
FLOWS = (
    ("Data sources & ingestion", "Data management\n(warehouse)"),
    ("Data sources & ingestion", "Feature store"),
    ("Data management\n(warehouse)", "Feature store"),
    ("Feature store", "Training & tuning"),
    ("Training & tuning", "Evaluation & promotion"),
    ("Evaluation & promotion", "Model management\n(tracking, registry)"),
    ("Model management\n(tracking, registry)", "Serving & batch"),
    ("Feature store", "Serving & batch"),
    ("Serving & batch", "Monitoring & feedback"),
)


def table() -> pd.DataFrame:
    """Each component and the modules that fill it."""
    return pd.DataFrame([{"component": b.name.replace("\n", " "), "modules": ", ".join(b.modules)} for b in BOXES]).set_index("component")


def figure() -> Figure:
    """The map: one box per component, module names inside, arrows for the flow of data and models."""
    fig = Figure(figsize=(13, 6.2))
    ax = fig.add_subplot()
    by_name = {b.name: b for b in BOXES}
    for b in BOXES:
        ax.add_patch(FancyBboxPatch((b.x, b.y), b.w, b.h, boxstyle="round,pad=0.05", facecolor=b.colour, edgecolor="#34495e"))
        ax.text(b.x + b.w / 2, b.y + b.h - 0.12, b.name, ha="center", va="top", fontsize=9, fontweight="bold")
        ax.text(b.x + b.w / 2, b.y + 0.12, "\n".join(b.modules), ha="center", va="bottom", fontsize=7.5, family="monospace", color="#1f3a5f")
    for source, target in FLOWS:
        a, c = by_name[source], by_name[target]
        start = (a.x + a.w, a.y + a.h / 2) if c.x > a.x else (a.x + a.w / 2, a.y)
        end = (c.x, c.y + c.h / 2) if c.x > a.x else (c.x + c.w / 2, c.y + c.h)
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "#7f8c8d"})
    ax.set_xlim(-0.3, 14.9)
    ax.set_ylim(-0.3, 5.8)
    ax.axis("off")
    ax.set_title("A Flock-style reference architecture (Agrawal et al., 2019), mapped onto this repository")
    return fig
