"""Consistency: does the advice for one flight stay put as its departure approaches?

The desk may look at a flight 3 h, 2 h and 1 h before departure. Each time the features are those
known then (the origin's last hour of departures, the latest weather report, the aircraft's
previous leg), so P(late) moves, and when it crosses the decision threshold the advice flips
between "act" and "leave it". A flip is information (the later view knows more), but each flip
also costs trust and work: a crew called in at 3 h and stood down at 1 h, or a connection rebooked
twice. This module recomputes every flight's point-in-time features at each lead with the code
that builds the training table (`features.build_features(..., lead=...)`, the same call the
service's `OnlineFeatures` makes for a request with `as_of`) and counts the flips.

The model was trained on features as of 2 h; at 3 h and 1 h it sees windows of the same length
at another moment (an early-morning flight at 3 h has even fewer departures behind it), so the
cost at each lead is shown beside the flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlsys import evaluate, features
from mlsys.objectives import COURSE_COSTS, Costs, cost_of_flags

#: The moments the desk looks at a flight, earliest first.
LEADS_HOURS = (3, 2, 1)
#: Flights scheduled this long before a decision time hold every departure a feature looks at (the
#: aircraft's previous leg within 24 h is the longest window; `serve.features.BEFORE` is the same).
CONTEXT = pd.Timedelta(days=2)


def lead_name(hours: int) -> str:
    return f"{hours}h"


def world_for(flights: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, context: pd.Timedelta = CONTEXT) -> pd.DataFrame:
    """Flights scheduled in [start - context, end): enough of the year to compute features for flights in [start, end)."""
    at = flights["sched_dep_utc"]
    return flights.loc[(at >= start - context) & (at < end)]


def features_at_leads(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    flight_ids: Sequence[int],
    leads_hours: Sequence[int] = LEADS_HOURS,
) -> dict[str, pd.DataFrame]:
    """Point-in-time feature rows of `flight_ids` at each lead, indexed by flight_id (`{"3h": rows, ...}`).

    `flights` is `data.load_flights()` (or a `world_for` cut of it that covers the flights asked for).
    """
    wanted = pd.Index(flight_ids)
    out = {}
    for hours in leads_hours:
        built = features.build_features(flights, weather, planes, lead=pd.Timedelta(hours=hours)).set_index("flight_id")
        missing = wanted.difference(built.index)
        if len(missing):
            raise KeyError(f"{len(missing)} flight_ids are not in the flights given, e.g. {list(missing[:3])}")
        out[lead_name(hours)] = built.loc[wanted]
    return out


def advice_at_leads(model: Any, rows_by_lead: Mapping[str, pd.DataFrame], threshold: float) -> pd.DataFrame:
    """P(late) and the advice (act = p >= threshold) of each flight at each lead: columns `p_3h`, `act_3h`, ..."""
    out = {}
    for name, rows in rows_by_lead.items():
        p = evaluate.predict(model, rows)
        out[f"p_{name}"] = p
        out[f"act_{name}"] = p >= threshold
    first = next(iter(rows_by_lead.values()))
    return pd.DataFrame(out, index=first.index)


def leads_of(advice: pd.DataFrame) -> list[str]:
    """The lead names of an `advice_at_leads` table, in its column order."""
    return [c.removeprefix("act_") for c in advice.columns if c.startswith("act_")]


def flips(acts: np.ndarray) -> np.ndarray:
    """Per row, how many times the advice changes between consecutive looks (columns in time order)."""
    acts = np.asarray(acts, dtype=bool)
    return (acts[:, 1:] != acts[:, :-1]).sum(axis=1)


def flip_rate(acts: np.ndarray) -> float:
    """Share of flights whose advice is not the same at every look."""
    return float(np.mean(flips(acts) > 0))


def flip_summary(advice: pd.DataFrame) -> pd.DataFrame:
    """Flights (and their share) whose advice flips at least once, at each step, back and forth, and between first and last look."""
    leads = leads_of(advice)
    acts = advice[[f"act_{n}" for n in leads]].to_numpy()
    n_flips = flips(acts)
    events = {"advice flips at least once": n_flips > 0}
    for i in range(len(leads) - 1):
        events[f"flips between {leads[i]} and {leads[i + 1]}"] = acts[:, i] != acts[:, i + 1]
    events["flips and flips back"] = n_flips >= 2
    events[f"act at {leads[0]}, not at {leads[-1]}"] = acts[:, 0] & ~acts[:, -1]
    events[f"act at {leads[-1]}, not at {leads[0]}"] = ~acts[:, 0] & acts[:, -1]
    table = pd.DataFrame({"flights": [int(m.sum()) for m in events.values()], "share": [float(m.mean()) for m in events.values()]}, index=list(events))
    return table.rename_axis(f"of {len(advice):,} flights")


def mean_probability_change(advice: pd.DataFrame) -> float:
    """Mean |P(late) at the first look - P(late) at the last look|."""
    leads = leads_of(advice)
    return float(np.mean(np.abs(advice[f"p_{leads[0]}"] - advice[f"p_{leads[-1]}"])))


def cost_by_lead(advice: pd.DataFrame, y: np.ndarray, costs: Costs = COURSE_COSTS) -> pd.DataFrame:
    """Cost per flight, share acted on and ROC AUC of the advice at each lead: what the later look buys."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype="float64")
    rows = {}
    for name in leads_of(advice):
        acts = advice[f"act_{name}"].to_numpy()
        rows[name] = {
            "cost per flight": cost_of_flags(y, acts, costs),
            "share acted on": float(acts.mean()),
            "roc_auc": float(roc_auc_score(y, advice[f"p_{name}"])),
        }
    return pd.DataFrame(rows).T.rename_axis("lead")


def flips_by(advice: pd.DataFrame, groups: pd.Series, min_n: int = 0) -> pd.DataFrame:
    """Flights and flip rate per value of `groups` (aligned with `advice`), e.g. the scheduled hour."""
    acts = advice[[f"act_{n}" for n in leads_of(advice)]].to_numpy()
    flipped = pd.Series(flips(acts) > 0, index=advice.index)
    table = flipped.groupby(np.asarray(groups)).agg(flights="size", flip_rate="mean")
    return table[table["flights"] >= min_n].rename_axis(groups.name)


def sticky_advice(p: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """Advice with hysteresis: the first look decides at `threshold`; a later look changes it only
    when p crosses `threshold` by more than `margin` (columns of `p` in time order)."""
    p = np.asarray(p, dtype="float64")
    acts = np.zeros(p.shape, dtype=bool)
    acts[:, 0] = p[:, 0] >= threshold
    for j in range(1, p.shape[1]):
        prev = acts[:, j - 1]
        acts[:, j] = np.where(prev, p[:, j] >= threshold - margin, p[:, j] >= threshold + margin)
    return acts


def plot_trajectories(advice: pd.DataFrame, threshold: float, n: int = 200, seed: int = 42, ax: Any = None) -> Any:
    """P(late) of a sample of flights at each lead, flights whose advice flips in colour, and the threshold."""
    import matplotlib.pyplot as plt

    leads = leads_of(advice)
    sample = advice.sample(min(n, len(advice)), random_state=seed)
    p = sample[[f"p_{n}" for n in leads]].to_numpy()
    flipped = flips(sample[[f"act_{n}" for n in leads]].to_numpy()) > 0
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    x = np.arange(len(leads))
    for row, f in zip(p, flipped, strict=True):
        ax.plot(x, row, color="tab:red" if f else "lightgrey", alpha=0.8 if f else 0.5, lw=1, zorder=2 if f else 1)
    ax.axhline(threshold, color="black", ls="--", lw=1)
    ax.set_xticks(x, [f"{n} before" for n in leads])
    ax.set(ylabel="P(late)", title=f"{len(sample)} flights: red = advice flips (dashed: threshold {threshold:g})")
    return ax
