"""A model card for the registered champion (Mitchell et al., 2019), kept where the model lives.

The card says what the model is for and not for, what data it learned from, how well it does
overall and by slice, and where it is known to fail, with numbers. It is written into the
registered version itself: the markdown as the version's description (the MLflow UI renders it on
the version's page) and the key figures as version tags (`card.*`), so anyone who loads
`flight-delay@champion` can read them with `MlflowClient().get_model_version(...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from mlsys.evaluate import LABEL, decision_scores, expected_calibration_error
from mlsys.objectives import COURSE_COSTS, Costs

#: MLflow's SQL registry stores a version's description in a VARCHAR(5000) (PostgreSQL enforces it).
MAX_DESCRIPTION = 5000
TAG_PREFIX = "card."
#: Scheduled departures before this local hour count as early morning: at 2 h before them the
#: origin has had few or no departures, so the dynamic features are mostly missing.
EARLY_MORNING_BEFORE = 8

INTENDED_USE = (
    "Rank the day's departures from JFK, LGA and EWR by P(late) (arrival 15 min or more after schedule, "
    "cancelled and diverted count as late) 2 h before each scheduled departure, so an airline operations "
    "desk can rebook tight connections and position crews. A person decides; the model advises."
)
NOT_FOR = (
    "Not for passengers' compensation, staff appraisal or judging carriers (it predicts, it does not "
    "attribute blame); not for other airports or years without re-validation; not as an arrival-time "
    "estimate (it gives a probability, not minutes)."
)


def slice_metrics(frame: pd.DataFrame, p: np.ndarray, groups: pd.Series, threshold: float, costs: Costs = COURSE_COSTS, label: str = LABEL) -> pd.DataFrame:
    """Per value of `groups`: flights, late rate, mean P(late), ROC AUC, ECE, cost per flight, error rates."""
    y = frame[label].to_numpy(dtype="float64")
    p = np.asarray(p, dtype="float64")
    rows = {}
    for value, idx in sorted(pd.Series(np.asarray(groups)).groupby(np.asarray(groups)).indices.items()):
        yi, pi = y[idx], p[idx]
        scores = decision_scores(yi, pi, threshold, costs)
        rows[value] = {
            "flights": len(idx),
            "late_rate": float(yi.mean()),
            "mean_p": float(pi.mean()),
            "roc_auc": float(roc_auc_score(yi, pi)) if 0 < yi.sum() < len(yi) else float("nan"),
            "ece": expected_calibration_error(yi, pi),
            "cost_per_flight": scores["cost_per_flight"],
            "false_alarm_rate": scores["false_alarm_rate"],
            "miss_rate": scores["miss_rate"],
        }
    return pd.DataFrame(rows).T.rename_axis(groups.name).astype({"flights": int})


def time_slices(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The slices of the card's known failures: month, and early morning (scheduled before 8:00) vs the rest."""
    month = frame["sched_dep_local"].dt.month_name().rename("month")
    early = pd.Series(
        np.where(frame["sched_hour"] < EARLY_MORNING_BEFORE, f"before {EARLY_MORNING_BEFORE}:00", f"{EARLY_MORNING_BEFORE}:00 or later"),
        index=frame.index,
        name="scheduled departure",
    )
    return {"month": month, "scheduled departure": early}


def known_failures(slices: Mapping[str, pd.DataFrame], frame: pd.DataFrame, evidence_column: str = "origin_mean_delay_3h") -> list[str]:
    """The card's known failures, worded from the `time_slices` tables (December; early-morning flights)."""
    month, hours = slices["month"], slices["scheduled departure"]
    dec, nov = month.loc["December"], month.loc["November"]
    early, later = hours.loc[f"before {EARLY_MORNING_BEFORE}:00"], hours.loc[f"{EARLY_MORNING_BEFORE}:00 or later"]
    is_early = frame["sched_hour"] < EARLY_MORNING_BEFORE
    missing_early = float(frame.loc[is_early, evidence_column].isna().mean())
    missing_later = float(frame.loc[~is_early, evidence_column].isna().mean())
    return [
        f"December: mean P(late) {dec['mean_p']:.3f} while {dec['late_rate']:.3f} of flights were late "
        f"(ECE {dec['ece']:.3f}; November {nov['ece']:.3f}). Training saw January-August only; winter "
        f"storms and holiday traffic are new to it, so it under-warns (miss rate {dec['miss_rate']:.3f}).",
        f"Early morning (scheduled before {EARLY_MORNING_BEFORE}:00): ROC AUC {early['roc_auc']:.3f} against "
        f"{later['roc_auc']:.3f} later in the day. Two hours before, little has left the origin: "
        f"`{evidence_column}` is missing for {missing_early:.3f} of these flights ({missing_later:.3f} later).",
    ]


@dataclass(frozen=True)
class Card:
    """Everything the model card says, with its evidence as tables."""

    name: str
    version: str
    threshold: float
    data: str
    overall: Mapping[str, float]
    slices: Mapping[str, pd.DataFrame]
    failures: list[str]
    notes: Mapping[str, str] = field(default_factory=dict)
    intended_use: str = INTENDED_USE
    not_for: str = NOT_FOR


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A pandas table as a GitHub-flavoured markdown table: integer columns with thousands separators, floats rounded."""

    def column(values: pd.Series) -> list[str]:
        if pd.api.types.is_bool_dtype(values):
            return [str(bool(v)) for v in values]
        if pd.api.types.is_integer_dtype(values):
            return [f"{int(v):,}" for v in values]
        if pd.api.types.is_float_dtype(values):
            return ["–" if np.isnan(v) else f"{v:.{digits}f}" for v in values]
        return [str(v) for v in values]

    cells = [column(table[c]) for c in table.columns]
    head = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for i, idx in enumerate(table.index):
        lines.append("| " + " | ".join([str(idx), *(col[i] for col in cells)]) + " |")
    return "\n".join(lines)


#: Columns of the slice tables shown in the card (all of `slice_metrics` would not fit MLflow's 5,000 characters).
CARD_COLUMNS = ["flights", "late_rate", "mean_p", "roc_auc", "ece", "cost_per_flight"]


def card_markdown(card: Card) -> str:
    """The card as markdown: intended use, data, metrics overall and by slice, known failures, notes."""
    overall = pd.DataFrame({"test": dict(card.overall)}).T.rename_axis("split")
    parts = [
        f"# Model card: {card.name} version {card.version}",
        f"**Intended use.** {card.intended_use}",
        f"**Not for.** {card.not_for}",
        f"**Data.** {card.data}",
        f"**Decision.** Act when P(late) >= {card.threshold:g} (tag `decision_threshold`, chosen on validation for "
        f"lesson 01's costs: a false alarm {COURSE_COSTS.false_alarm:g}, a miss {COURSE_COSTS.miss:g}).",
        "## Metrics (test: November-December 2013, looked at once)",
        markdown_table(overall),
    ]
    for name, table in card.slices.items():
        parts += [f"### By {name}", markdown_table(table[[c for c in CARD_COLUMNS if c in table]])]
    parts += ["## Known failures", "\n".join(f"- {f}" for f in card.failures)]
    if card.notes:
        parts += ["## Notes", "\n".join(f"- **{k}.** {v}" for k, v in card.notes.items())]
    return "\n\n".join(parts) + "\n"


def card_tags(card: Card) -> dict[str, str]:
    """The card's key figures as registry tags (`card.*`): searchable without reading the description."""
    tags = {f"{TAG_PREFIX}intended_use": card.intended_use, f"{TAG_PREFIX}data": card.data}
    tags |= {f"{TAG_PREFIX}test_{k}": f"{v:.4f}" for k, v in card.overall.items()}
    tags |= {f"{TAG_PREFIX}known_failure_{i + 1}": text for i, text in enumerate(card.failures)}
    return tags


def write_card(name: str, version: str, markdown: str, tags: Mapping[str, str], client: MlflowClient | None = None) -> None:
    """Put the card on a registered version: markdown as its description, figures as its tags."""
    if len(markdown) > MAX_DESCRIPTION:
        raise ValueError(f"model card is {len(markdown):,} characters; MLflow keeps at most {MAX_DESCRIPTION:,} in a description")
    client = client or MlflowClient()
    client.update_model_version(name, version, description=markdown)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def read_card(name: str, version: str, client: MlflowClient | None = None) -> tuple[str, dict[str, str]]:
    """A registered version's card as stored: its description and its `card.*` tags."""
    client = client or MlflowClient()
    found = client.get_model_version(name, version)
    return found.description or "", {k: v for k, v in (found.tags or {}).items() if k.startswith(TAG_PREFIX)}
