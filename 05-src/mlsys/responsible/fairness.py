"""Fairness across slices: who bears the false alarms and who the misses, with confidence intervals.

A rate measured on 300 flights moves by several points from one sample to the next, so a table of
per-carrier rates without intervals invites reading noise as unfairness. Every rate here comes with
a Wilson score interval (`wilson_interval`), which keeps its stated coverage for small groups and
rates near 0 or 1, where the textbook normal interval does not (Brown, Cai and DasGupta, 2001).

"Fair" has more than one meaning for an operations desk, and they conflict:

* **equal error rates** (equalized odds): every carrier's on-time flights are acted on at the same
  rate (false alarms), and every carrier's late flights are missed at the same rate;
* **calibration within groups**: among a carrier's flights with P(late) = 0.3, 30 % are late, so
  one threshold means the same thing for every carrier.

When groups differ in how often they are late, a calibrated score decided at one threshold gives
the groups different error rates, and equalising the error rates needs a threshold per group,
which costs more overall (Kleinberg, Mullainathan and Raghavan, 2016; Chouldechova, 2017).
`equal_false_alarm_thresholds` prices that choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from mlsys.evaluate import LABEL
from mlsys.objectives import COURSE_COSTS, Costs, cost_of_flags

#: 95 % two-sided.
Z95 = float(norm.ppf(0.975))


def wilson_interval(k: np.ndarray | float, n: np.ndarray | float, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion `k / n` (arrays welcome); NaN where n = 0."""
    k = np.asarray(k, dtype="float64")
    n = np.asarray(n, dtype="float64")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("wilson_interval needs 0 <= k <= n for every proportion")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)


def interval_coverage(rate: float, n: int, trials: int = 20_000, z: float = Z95, seed: int = 42) -> dict[str, float]:
    """How often the Wilson and the normal (Wald) intervals contain the true `rate`, on simulated groups of `n`."""
    rng = np.random.default_rng(seed)
    k = rng.binomial(n, rate, size=trials).astype("float64")
    lo, hi = wilson_interval(k, np.full(trials, n), z)
    p = k / n
    half = z * np.sqrt(p * (1 - p) / n)
    return {
        "wilson": float(np.mean((lo <= rate) & (rate <= hi))),
        "wald": float(np.mean((p - half <= rate) & (rate <= p + half))),
    }


def error_rates_ci(
    frame: pd.DataFrame, p: np.ndarray, column: str, threshold: float, min_n: int = 0, label: str = LABEL, z: float = Z95
) -> pd.DataFrame:
    """Per value of `column`: flights, late rate, mean P(late), false-alarm and miss rates with Wilson intervals.

    `false_alarm_rate` is the share of on-time flights acted on (p >= threshold), `miss_rate` the
    share of late flights not acted on. Groups with fewer than `min_n` flights are left out.
    """
    y = frame[label].to_numpy(dtype="float64") == 1
    acted = np.asarray(p, dtype="float64") >= threshold
    rows = {}
    for value, idx in sorted(frame.groupby(column, observed=True).indices.items()):
        if len(idx) < min_n:
            continue
        yi, ai = y[idx], acted[idx]
        rows[value] = {
            "flights": len(idx),
            "late": int(yi.sum()),
            "late_rate": float(yi.mean()),
            "mean_p": float(np.mean(np.asarray(p)[idx])),
            "false_alarms": int((ai & ~yi).sum()),
            "on_time": int((~yi).sum()),
            "misses": int((~ai & yi).sum()),
        }
    table = pd.DataFrame(rows).T.rename_axis(column)
    table = table.astype({c: int for c in ("flights", "late", "false_alarms", "on_time", "misses")})
    table["false_alarm_rate"] = table["false_alarms"] / table["on_time"]
    table["far_lo"], table["far_hi"] = wilson_interval(table["false_alarms"], table["on_time"], z)
    table["miss_rate"] = table["misses"] / table["late"]
    table["miss_lo"], table["miss_hi"] = wilson_interval(table["misses"], table["late"], z)
    table["late_lo"], table["late_hi"] = wilson_interval(table["late"], table["flights"], z)
    return table


def overall_rates(frame: pd.DataFrame, p: np.ndarray, threshold: float, label: str = LABEL) -> dict[str, float]:
    """False-alarm and miss rate of all rows together (the reference line of the slice plots)."""
    whole = error_rates_ci(frame.assign(_all="all"), p, "_all", threshold, label=label)
    return {"false_alarm_rate": float(whole["false_alarm_rate"].iloc[0]), "miss_rate": float(whole["miss_rate"].iloc[0])}


def outside_overall(table: pd.DataFrame, overall: Mapping[str, float]) -> pd.DataFrame:
    """Groups whose interval excludes the overall rate: which rates differ beyond sampling noise."""
    far = (table["far_hi"] < overall["false_alarm_rate"]) | (table["far_lo"] > overall["false_alarm_rate"])
    miss = (table["miss_hi"] < overall["miss_rate"]) | (table["miss_lo"] > overall["miss_rate"])
    out = pd.DataFrame({"false alarms differ": far, "misses differ": miss})
    return out[out.any(axis=1)]


def calibration_within_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Mean P(late) against the late rate's interval per group: is the score calibrated within each group?"""
    out = table[["flights", "late_rate", "late_lo", "late_hi", "mean_p"]].copy()
    out["calibrated"] = (out["mean_p"] >= out["late_lo"]) & (out["mean_p"] <= out["late_hi"])
    return out


def fairness_summary(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per slicing column: groups, the lowest and highest false-alarm and miss rates, and their ratios."""
    rows = {}
    for name, t in tables.items():
        rows[name] = {
            "groups": len(t),
            "late rate: lowest": t["late_rate"].min(),
            "late rate: highest": t["late_rate"].max(),
            "false alarms: lowest": t["false_alarm_rate"].min(),
            "false alarms: highest": t["false_alarm_rate"].max(),
            "misses: lowest": t["miss_rate"].min(),
            "misses: highest": t["miss_rate"].max(),
            "groups calibrated": int(calibration_within_groups(t)["calibrated"].sum()),
        }
    return pd.DataFrame(rows).T.rename_axis("slice").astype({"groups": int, "groups calibrated": int})


def group_thresholds(
    frame: pd.DataFrame,
    p: np.ndarray,
    column: str,
    target: float,
    default: float,
    rate: str = "false_alarm_rate",
    min_n: int = 500,
    label: str = LABEL,
) -> dict[Any, float]:
    """Per group, the threshold whose `rate` ("false_alarm_rate" or "miss_rate") on these rows is closest to `target`.

    Choose them on validation rows. Groups with fewer than `min_n` flights there keep `default`
    (the single threshold): a threshold fitted on a handful of flights is noise.
    """
    if rate not in ("false_alarm_rate", "miss_rate"):
        raise ValueError(f"rate must be 'false_alarm_rate' or 'miss_rate', not {rate!r}")
    y = frame[label].to_numpy(dtype="float64") == 1
    p = np.asarray(p, dtype="float64")
    grid = np.round(np.linspace(0.01, 0.99, 99), 2)
    out: dict[Any, float] = {}
    for value, idx in frame.groupby(column, observed=True).indices.items():
        yi, pi = y[idx], p[idx]
        ref = pi[~yi] if rate == "false_alarm_rate" else pi[yi]
        if len(idx) < min_n or len(ref) == 0:
            out[value] = default
            continue
        rates = (ref[None, :] >= grid[:, None]).mean(axis=1)
        rates = rates if rate == "false_alarm_rate" else 1 - rates
        out[value] = float(grid[np.argmin(np.abs(rates - target))])
    return out


def apply_group_thresholds(frame: pd.DataFrame, p: np.ndarray, column: str, thresholds: Mapping[Any, float], default: float) -> np.ndarray:
    """Flags from a threshold per group (`default` for groups without one)."""
    per_row = frame[column].map(lambda v: thresholds.get(v, default)).to_numpy(dtype="float64")
    return np.asarray(p, dtype="float64") >= per_row


def threshold_policies(
    frame: pd.DataFrame,
    p: np.ndarray,
    column: str,
    threshold: float,
    thresholds: Mapping[Any, float],
    min_n: int = 500,
    costs: Costs = COURSE_COSTS,
    label: str = LABEL,
) -> pd.DataFrame:
    """One threshold for all vs a threshold per group: cost per flight, and the spread of error rates across groups of `min_n` or more."""
    y = frame[label].to_numpy(dtype="float64")
    rows = {}
    for name, flags in {
        "one threshold": np.asarray(p) >= threshold,
        "a threshold per group": apply_group_thresholds(frame, p, column, thresholds, threshold),
    }.items():
        # error rates per group of the given flags: decide on 0/1 "probabilities" at 0.5
        t = error_rates_ci(frame, flags.astype("float64"), column, 0.5, min_n=min_n, label=label)
        rows[name] = {
            "cost per flight": cost_of_flags(y, flags, costs),
            "false alarms: lowest": t["false_alarm_rate"].min(),
            "false alarms: highest": t["false_alarm_rate"].max(),
            "misses: lowest": t["miss_rate"].min(),
            "misses: highest": t["miss_rate"].max(),
        }
    return pd.DataFrame(rows).T.rename_axis("policy")


def plot_error_rates_ci(tables: Mapping[str, pd.DataFrame], overall: Mapping[str, float]) -> Any:
    """False-alarm and miss rate per group with 95 % Wilson intervals, one row of panels per slicing column."""
    import matplotlib.pyplot as plt

    heights = [0.8 + 0.28 * len(t) for t in tables.values()]
    fig, axes = plt.subplots(len(tables), 2, figsize=(10, sum(heights) + 0.8), gridspec_kw={"height_ratios": heights}, squeeze=False)
    for (name, t), row in zip(tables.items(), axes, strict=True):
        labels = [str(v) for v in t.index]
        y = np.arange(len(t))
        for ax, rate, lo, hi, title in (
            (row[0], "false_alarm_rate", "far_lo", "far_hi", "false-alarm rate (on-time flights acted on)"),
            (row[1], "miss_rate", "miss_lo", "miss_hi", "miss rate (late flights not acted on)"),
        ):
            err = np.vstack([t[rate] - t[lo], t[hi] - t[rate]])
            ax.errorbar(t[rate], y, xerr=err, fmt="o", ms=4, capsize=3)
            ax.axvline(overall[rate], color="grey", ls="--", lw=1)
            ax.set_yticks(y, labels, fontsize=8)
            ax.set_ylabel(name)
            ax.set_xlim(0, 1)
            if name == list(tables)[-1]:
                ax.set_xlabel(title)
    fig.suptitle("error rates per group, 95 % Wilson intervals (dashed: all flights)")
    fig.tight_layout()
    return fig
