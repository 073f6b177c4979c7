"""Offline evaluation beyond one test score (Huyen, 2022, ch. 6).

A single ROC AUC on the test split says how well a model ranks flights on average. Before a model
may serve the operations desk we also want to know whether its probabilities mean what they say
(calibration), where it is weak (slices), whether it is robust to small input noise (perturbation),
whether it ignores what must not matter (invariance) and moves the right way when a cause
changes (directional expectations), how often it is sure of itself (confidence), how its errors
fall on each carrier and airport (fairness across slices), and what changed when it fails
(`monthly_profile`).

Every function takes a fitted model with `predict_proba` and feature rows, so the same checks run
on any candidate, in a notebook, in `mlsys.promote` and in `tests/model/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.metrics import classification_scores
from mlsys.objectives import COURSE_COSTS, Costs, expected_cost
from mlsys.pipeline import INPUT_COLUMNS, make_model

LABEL = "late"
#: Default probability at or above which the desk acts on a flight: the Bayes threshold of the
#: course's costs (0.25 for calibrated probabilities). Lessons and the promotion protocol pass the
#: threshold chosen on validation instead (`objectives.best_threshold`).
OPERATING_THRESHOLD = COURSE_COSTS.bayes_threshold()
#: Calibration methods `calibrate` knows: no mapping, Platt scaling, isotonic regression.
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
#: Weather measurements as observed at the origin (not `wx_age_minutes`, which is bookkeeping).
WEATHER_FEATURES = [c for c in NUMERIC if c.startswith("wx_") and c != "wx_age_minutes"]
#: Identifiers carried by a feature row that must not change a prediction.
ID_COLUMNS = ["flight_id", "flight", "tailnum"]
#: Domain knowledge: more rain or snow never makes a flight less likely to be late ...
INCREASING = ("wx_precip", "wx_precip_3h")
#: ... and better visibility never makes it more likely.
DECREASING = ("wx_visib", "wx_visib_min_3h")
SLICE_COLUMNS = ("carrier", "origin", "month", "sched_hour")


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """What a model is shown of a feature row: the request columns plus the identifiers.

    Models are fitted on `INPUT_COLUMNS` only; the identifiers ride along at prediction time so the
    invariance test can change them (a pipeline selects its columns by name and ignores the rest).
    """
    extra = [c for c in ID_COLUMNS if c in frame and c not in INPUT_COLUMNS]
    return frame[[*INPUT_COLUMNS, *extra]]


def predict(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Probability of `late` for each row."""
    return np.asarray(model.predict_proba(model_input(frame))[:, 1], dtype="float64")


# --------------------------------------------------------------------------- candidates


def monotone_constraints(
    increasing: Sequence[str] = INCREASING,
    decreasing: Sequence[str] = DECREASING,
    numeric: Sequence[str] = NUMERIC,
    categorical: Sequence[str] = CATEGORICAL,
) -> list[int]:
    """LightGBM's `monotone_constraints`, one entry per column the tree preprocessor outputs.

    `pipeline.tree_preprocessor` emits the numeric columns first, then the categorical ones, so
    the list is built by name in that order (+1 increasing, -1 decreasing, 0 free).
    """
    names = [*numeric, *categorical]
    unknown = sorted((set(increasing) | set(decreasing)) - set(names))
    if unknown:
        raise ValueError(f"constrained columns are not model features: {unknown}")
    return [1 if name in increasing else -1 if name in decreasing else 0 for name in names]


def constrained_lightgbm(seed: int = 42, **params: object) -> Pipeline:
    """`make_model("lightgbm")` whose score can only rise with precipitation and fall with visibility."""
    return make_model("lightgbm", seed=seed, monotone_constraints=monotone_constraints(), **params)


def check_constraint_order(model: Pipeline) -> None:
    """Raise if the fitted preprocessor's output order is not the one the constraints assumed."""
    produced = list(model.named_steps["prep"].get_feature_names_out())
    if produced != [*NUMERIC, *CATEGORICAL]:
        raise AssertionError("tree preprocessor output order changed: monotone constraints would hit the wrong columns")


def fit(model: Any, frame: pd.DataFrame, label: str = LABEL) -> Any:
    """Fit `model` on a split's feature rows, with exactly the columns a request carries."""
    return model.fit(frame[INPUT_COLUMNS], frame[label].to_numpy())


def calibrate(model: Any, frame: pd.DataFrame, method: str = "isotonic", label: str = LABEL) -> Any:
    """Map a fitted model's scores to calibrated probabilities, learned on `frame` (validation rows).

    `FrozenEstimator` keeps the model as it is (scikit-learn >= 1.6 replaced `cv="prefit"` with it),
    so only the one-dimensional mapping is fitted. Both methods are monotone increasing: ranking,
    hence ROC AUC, and monotone constraints survive (isotonic may merge ties). `method="none"`
    returns `model` itself, so "no mapping" competes with the others in the same loop.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}: choose from {CALIBRATION_METHODS}")
    if method == "none":
        return model
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method)
    return calibrated.fit(frame[INPUT_COLUMNS], frame[label].to_numpy())


def split_last_month(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation rows before their last month (to fit a calibration map on) and of the last month (to judge it).

    A map judged on the rows it was fitted on looks better than it is (isotonic reaches ECE 0 there);
    fitting on the earlier month and judging on the later one also asks the question that matters
    in production: does a map learned on the past carry over to the next month?
    """
    last = frame["month"].max()
    earlier, later = frame[frame["month"] < last], frame[frame["month"] == last]
    if earlier.empty:
        raise ValueError(f"validation rows cover one month ({last:g}) only: no month is left to judge a calibration map on")
    return earlier.reset_index(drop=True), later.reset_index(drop=True)


def compare_calibration(
    model: Any, fit_rows: pd.DataFrame, judge_rows: pd.DataFrame, methods: Sequence[str] = CALIBRATION_METHODS, label: str = LABEL
) -> pd.DataFrame:
    """Each method's map fitted on `fit_rows`, scored on `judge_rows` (one row per method; `choose` by `ece`)."""
    y = judge_rows[label].to_numpy(dtype="float64")
    rows = {method: calibration_scores(y, predict(calibrate(model, fit_rows, method, label), judge_rows)) for method in methods}
    return pd.DataFrame(rows).T.rename_axis("method")


# --------------------------------------------------------------------------- calibration


def reliability_table(y: np.ndarray | pd.Series, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: mean predicted probability vs observed late rate per quantile bin."""
    observed, predicted = calibration_curve(np.asarray(y), p, n_bins=n_bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": predicted, "observed_rate": observed})


def expected_calibration_error(y: np.ndarray | pd.Series, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE: |observed rate - mean prediction| per equal-width bin, weighted by the bin's share of rows."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        total += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(total)


def calibration_scores(y: np.ndarray | pd.Series, p: np.ndarray) -> dict[str, float]:
    """Brier score, ECE, log loss and ROC AUC of probabilities `p`."""
    scores = classification_scores(y, p)
    return {
        "roc_auc": scores["roc_auc"],
        "brier": scores["brier"],
        "ece": expected_calibration_error(y, p),
        "log_loss": scores["log_loss"],
        "mean_p": float(np.mean(p)),
        "positive_rate": scores["positive_rate"],
    }


def calibration_by_group(frame: pd.DataFrame, p: np.ndarray, column: str, label: str = LABEL) -> pd.DataFrame:
    """Late rate, mean prediction and ECE per value of `column` (e.g. month): where calibration breaks."""
    y = frame[label].to_numpy(dtype="float64")
    rows = {}
    for value, mask in sorted(frame.groupby(column, observed=True).indices.items()):
        rows[value] = {
            "flights": int(len(mask)),
            "late_rate": float(y[mask].mean()),
            "mean_p": float(p[mask].mean()),
            "ece": expected_calibration_error(y[mask], p[mask]),
        }
    return pd.DataFrame(rows).T.rename_axis(column).astype({"flights": int})


def decision_scores(y: np.ndarray | pd.Series, p: np.ndarray, threshold: float, costs: Costs = COURSE_COSTS) -> dict[str, float]:
    """What acting on every flight with `p >= threshold` means for the desk: cost per flight and error rates.

    `false_alarm_rate` is the share of on-time flights acted on, `miss_rate` the share of late
    flights not acted on, `precision` the share of acted-on flights that were late.
    """
    y = np.asarray(y, dtype="float64") == 1
    p = np.asarray(p, dtype="float64")
    flagged = p >= threshold
    return {
        "threshold": float(threshold),
        "cost_per_flight": expected_cost(y.astype(int), p, threshold, costs),
        "flagged": float(flagged.mean()),
        "false_alarm_rate": float(flagged[~y].mean()) if (~y).any() else float("nan"),
        "miss_rate": float((~flagged[y]).mean()) if y.any() else float("nan"),
        "precision": float(y[flagged].mean()) if flagged.any() else float("nan"),
    }


def error_rates_by_group(
    frame: pd.DataFrame, p: np.ndarray, column: str, threshold: float, min_n: int = 0, label: str = LABEL
) -> pd.DataFrame:
    """Flights, late rate and `decision_scores` at `threshold` per value of `column` with at least `min_n` flights.

    Fairness across slices: who bears the false alarms and who the misses (Huyen, 2022, ch. 6).
    """
    y = frame[label].to_numpy(dtype="float64")
    p = np.asarray(p, dtype="float64")
    rows = {}
    for value, mask in sorted(frame.groupby(column, observed=True).indices.items()):
        if len(mask) >= min_n:
            scores = decision_scores(y[mask], p[mask], threshold)
            rows[value] = {"flights": int(len(mask)), "late_rate": float(y[mask].mean()), **{k: v for k, v in scores.items() if k != "threshold"}}
    return pd.DataFrame(rows).T.rename_axis(column).astype({"flights": int})


def plot_error_rates(tables: Mapping[str, pd.DataFrame], ax: Any = None) -> Any:
    """False-alarm rate against miss rate, one point per slice, one marker per slicing column."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 5))[1]
    for (name, table), marker in zip(tables.items(), "os^D", strict=False):
        ax.scatter(table["false_alarm_rate"], table["miss_rate"], s=table["flights"] / table["flights"].max() * 200 + 10, marker=marker, alpha=0.6, label=name)
        for value, row in table.iterrows():
            ax.annotate(str(value), (row["false_alarm_rate"], row["miss_rate"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set(xlabel="false-alarm rate (share of on-time flights acted on)", ylabel="miss rate (share of late flights not acted on)")
    ax.legend(title="slice (size: flights)")
    return ax


#: Origin departures' mean delay (min, last 3 h) below which an airport looks quiet at decision time.
QUIET_ORIGIN_MINUTES = 10.0


def monthly_profile(table: pd.DataFrame, label: str = LABEL) -> pd.DataFrame:
    """Per month: split, flights, late rate, and what came with the delays (weather, congestion, disruptions).

    `late_rate_quiet_origin` is the late rate among flights whose origin looked quiet at decision
    time (mean departure delay of the last 3 h below `QUIET_ORIGIN_MINUTES`, or no departures): the
    share of delays the origin's own recent delays could not announce.
    """
    disrupted = table["cancelled"].astype(bool) | table["diverted"].astype(bool)
    quiet = table["origin_mean_delay_3h"].fillna(0.0) < QUIET_ORIGIN_MINUTES
    frame = table.assign(
        _disrupted=disrupted,
        _wet=table["wx_precip_3h"].fillna(0.0) > 0,
        _fog=table["wx_visib"] < 3,
        _late=table[label].astype("float64"),
        _late_quiet=table[label].astype("float64").where(quiet),
    )
    profile = frame.groupby("month").agg(
        split=("split", "first"),
        flights=("_late", "size"),
        late_rate=("_late", "mean"),
        cancelled_or_diverted=("_disrupted", "mean"),
        temp_f=("wx_temp", "mean"),
        precip_3h_share=("_wet", "mean"),
        visibility_below_3mi=("_fog", "mean"),
        origin_delay_3h_min=("origin_mean_delay_3h", "mean"),
        late_rate_quiet_origin=("_late_quiet", "mean"),
    )
    profile.index = profile.index.astype(int)
    return profile


def plot_monthly_late_rates(profile: pd.DataFrame, ax: Any = None) -> Any:
    """Late rate per month as bars coloured by split (train, valid, test), the training maximum dashed."""
    import matplotlib.pyplot as plt

    colours = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:green"}
    ax = ax or plt.subplots(figsize=(8, 3.5))[1]
    bars = ax.bar(profile.index.astype(str), profile["late_rate"], color=[colours.get(s, "grey") for s in profile["split"]])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in profile["late_rate"]], fontsize=7)
    ax.axhline(profile.loc[profile["split"] == "train", "late_rate"].max(), color="tab:blue", ls="--", lw=1)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, [f"{s} months" for s in colours], loc="upper left", fontsize=8)
    ax.set(xlabel="month (2013)", ylabel="late rate", ylim=(0, max(0.45, profile["late_rate"].max() * 1.15)))
    return ax


def zero_rule_brier(y: np.ndarray | pd.Series, base_rate: float) -> float:
    """Brier score of always predicting `base_rate` (the training split's late rate)."""
    y = np.asarray(y, dtype="float64")
    return float(np.mean((y - base_rate) ** 2))


def plot_reliability(curves: Mapping[str, pd.DataFrame], ax: Any = None) -> Any:
    """Reliability diagram: one line per model, the diagonal is perfect calibration."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 5))[1]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    for name, table in curves.items():
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
    ax.set(xlabel="mean predicted probability (bin)", ylabel="observed late rate (bin)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return ax


# --------------------------------------------------------------------------- slices


def slice_scores(
    frame: pd.DataFrame,
    p: np.ndarray,
    columns: Sequence[str] = SLICE_COLUMNS,
    min_n: int = 500,
    min_roc_auc: float = 0.60,
    label: str = LABEL,
) -> pd.DataFrame:
    """Scores per value of each slicing column; `flagged` marks slices with n >= `min_n` and AUC below `min_roc_auc`.

    Small slices are listed but not flagged: their AUC is too noisy to judge.
    """
    y = frame[label].to_numpy(dtype="float64")
    rows = []
    for column in columns:
        # groupby positions: missing keys are left out, and no elementwise comparison with pd.NA
        for value, mask in frame.groupby(column, sort=False, observed=True).indices.items():
            y_s, p_s = y[mask], p[mask]
            both = 0 < y_s.sum() < len(y_s)
            rows.append(
                {
                    "column": column,
                    "value": str(int(value)) if isinstance(value, float | np.floating) else str(value),
                    "n": int(len(mask)),
                    "positive_rate": float(y_s.mean()),
                    "roc_auc": float(roc_auc_score(y_s, p_s)) if both else float("nan"),
                    "pr_auc": float(average_precision_score(y_s, p_s)) if both else float("nan"),
                    "brier": float(brier_score_loss(y_s, p_s)),
                }
            )
    table = pd.DataFrame(rows)
    table["flagged"] = (table["n"] >= min_n) & ~(table["roc_auc"] >= min_roc_auc)
    return table.sort_values(["column", "roc_auc"], kind="stable").reset_index(drop=True)


def plot_slices(table: pd.DataFrame, min_n: int = 500, min_roc_auc: float = 0.60) -> Any:
    """ROC AUC per slice, one panel per slicing column; small slices pale, flagged ones red."""
    import matplotlib.pyplot as plt

    columns = list(dict.fromkeys(table["column"]))
    heights = [0.6 + 0.22 * (table["column"] == c).sum() for c in columns]
    low = min(0.5, np.floor(table["roc_auc"].min() * 10) / 10)  # a weak small slice must stay visible
    fig, axes = plt.subplots(len(columns), 1, figsize=(7, sum(heights) + 1), gridspec_kw={"height_ratios": heights})
    for ax, column in zip(np.atleast_1d(axes), columns, strict=True):
        part = table[table["column"] == column]
        if column in ("month", "sched_hour"):
            part = part.sort_values("value", key=lambda s: s.astype(int))
        colors = [
            "tab:red" if flagged else ("tab:blue" if n >= min_n else "lightsteelblue")
            for flagged, n in zip(part["flagged"], part["n"], strict=True)
        ]
        ax.barh(part["value"], part["roc_auc"], color=colors)
        ax.axvline(min_roc_auc, color="tab:red", ls="--", lw=1)
        ax.set(xlim=(low, 0.9), ylabel=column)
        ax.tick_params(axis="y", labelsize=7)
    np.atleast_1d(axes)[-1].set_xlabel(f"ROC AUC (dashed: {min_roc_auc}; pale: n < {min_n})")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- perturbation


def perturb(
    frame: pd.DataFrame, columns: Sequence[str] = WEATHER_FEATURES, scale: float = 0.1, seed: int = 42
) -> pd.DataFrame:
    """Add N(0, (scale · column std)²) noise to `columns`, as a slightly different sensor would.

    Quantities that cannot be negative (precipitation, visibility, wind) are clipped at zero.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for column in columns:
        values = out[column].to_numpy(dtype="float64")
        noisy = values + rng.normal(0.0, scale * np.nanstd(values), size=len(values))
        if np.nanmin(values) >= 0:
            noisy = np.clip(noisy, 0.0, None)
        out[column] = noisy
    return out


def perturbation_test(
    model: Any,
    frame: pd.DataFrame,
    columns: Sequence[str] = WEATHER_FEATURES,
    scale: float = 0.1,
    threshold: float = OPERATING_THRESHOLD,
    seed: int = 42,
    label: str = LABEL,
    before: np.ndarray | None = None,
) -> dict[str, float]:
    """How much predictions move under small weather noise: mean and max |Δp|, class flips, AUC before/after.

    `before` (the model's predictions on `frame`) may be passed to save one prediction pass.
    """
    before = predict(model, frame) if before is None else before
    after = predict(model, perturb(frame, columns, scale, seed))
    delta = np.abs(after - before)
    y = frame[label].to_numpy()
    return {
        "mean_abs_delta": float(delta.mean()),
        "p99_abs_delta": float(np.quantile(delta, 0.99)),
        "max_abs_delta": float(delta.max()),
        "flipped_share": float(np.mean((before >= threshold) != (after >= threshold))),
        "roc_auc_before": float(roc_auc_score(y, before)),
        "roc_auc_after": float(roc_auc_score(y, after)),
    }


# --------------------------------------------------------------------------- invariance


def shuffle_columns(frame: pd.DataFrame, columns: Sequence[str] = ID_COLUMNS, seed: int = 42) -> pd.DataFrame:
    """Permute each column's values across rows: every row gets real, but other, identifiers."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = out[column].to_numpy()[rng.permutation(len(out))]
    return out


def invariance_test(
    model: Any, frame: pd.DataFrame, columns: Sequence[str] = ID_COLUMNS, seed: int = 42, before: np.ndarray | None = None
) -> dict[str, float]:
    """Change identifiers that must not matter; report how far predictions move (max and mean |Δp|)."""
    before = predict(model, frame) if before is None else before
    after = predict(model, shuffle_columns(frame, columns, seed))
    delta = np.abs(after - before)
    return {
        "max_abs_delta": float(delta.max()),
        "mean_abs_delta": float(delta.mean()),
        "changed_share": float(np.mean(delta > 1e-12)),
    }


# --------------------------------------------------------------------------- directional expectations


def shift(frame: pd.DataFrame, changes: Mapping[str, float]) -> pd.DataFrame:
    """Add `changes[column]` to each column, clipped at zero (precipitation, visibility are non-negative)."""
    out = frame.copy()
    for column, amount in changes.items():
        out[column] = np.clip(out[column].to_numpy(dtype="float64") + amount, 0.0, None)
    return out


#: Scenario name -> (column changes, expected sign of Δp): +1 = the probability must not go down.
#: 0.1 inch in the last hour (0.3 over three hours) is steady rain; 3 miles less visibility is haze to fog.
DIRECTIONAL_SCENARIOS: dict[str, tuple[dict[str, float], int]] = {
    "precipitation_up": ({"wx_precip": 0.1, "wx_precip_3h": 0.3}, +1),
    "visibility_down": ({"wx_visib": -3.0, "wx_visib_min_3h": -3.0}, +1),
}


def directional_test(
    model: Any,
    frame: pd.DataFrame,
    changes: Mapping[str, float],
    expected_sign: int = 1,
    tol: float = 1e-12,
    before: np.ndarray | None = None,
) -> dict[str, float]:
    """Apply `changes` to real rows, all else equal; count rows where p moves against `expected_sign`."""
    moved = directional_deltas(model, frame, changes, before)
    delta = moved * expected_sign
    violated = delta < -tol
    return {
        "n": int(len(frame)),
        "violations": int(violated.sum()),
        "violation_share": float(violated.mean()),
        "worst_violation": float(max(0.0, -delta.min())),
        "mean_delta": float(np.mean(moved)),
    }


def directional_deltas(model: Any, frame: pd.DataFrame, changes: Mapping[str, float], before: np.ndarray | None = None) -> np.ndarray:
    """Per row: p after applying `changes` minus p before."""
    before = predict(model, frame) if before is None else before
    return predict(model, shift(frame, changes)) - before


def sweep(model: Any, rows: pd.DataFrame, column: str, values: Sequence[float]) -> pd.DataFrame:
    """p for each of `rows` with `column` set to each of `values`, all else equal (index: values)."""
    grid = pd.concat([rows.assign(**{column: float(v)}) for v in values], ignore_index=True)
    p = predict(model, grid).reshape(len(values), len(rows))
    return pd.DataFrame(p, index=pd.Index(values, name=column), columns=[str(i) for i in rows.index])


def directional_tests(
    model: Any,
    frame: pd.DataFrame,
    scenarios: Mapping[str, tuple[dict[str, float], int]] = DIRECTIONAL_SCENARIOS,
    before: np.ndarray | None = None,
) -> pd.DataFrame:
    """`directional_test` for each scenario, one row each."""
    before = predict(model, frame) if before is None else before
    rows = {name: directional_test(model, frame, changes, sign, before=before) for name, (changes, sign) in scenarios.items()}
    return pd.DataFrame(rows).T.astype({"n": int, "violations": int})


# --------------------------------------------------------------------------- confidence


def confidence_table(
    y: np.ndarray | pd.Series, p: np.ndarray, threshold: float = OPERATING_THRESHOLD, low: float = 0.1, high: float = 0.9
) -> pd.DataFrame:
    """Precision and recall at `threshold` among confident predictions (p < low or p > high) vs the rest."""
    y = np.asarray(y, dtype="float64")
    flagged = p >= threshold
    confident = (p < low) | (p > high)
    rows = []
    for name, mask in (("confident", confident), ("uncertain", ~confident), ("all", np.ones_like(confident))):
        tp = float((flagged & (y == 1) & mask).sum())
        rows.append(
            {
                "group": name,
                "n": int(mask.sum()),
                "share": float(mask.mean()),
                "late_rate": float(y[mask].mean()) if mask.any() else float("nan"),
                "flagged": int((flagged & mask).sum()),
                "precision": tp / (flagged & mask).sum() if (flagged & mask).any() else float("nan"),
                "recall": tp / ((y == 1) & mask).sum() if ((y == 1) & mask).any() else float("nan"),
                "accuracy": float((flagged[mask] == (y[mask] == 1)).mean()) if mask.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("group")


def plot_probabilities(predictions: Mapping[str, np.ndarray], low: float = 0.1, high: float = 0.9, ax: Any = None) -> Any:
    """Histogram of predicted probabilities per model, with the confidence bands marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    bins = np.linspace(0, 1, 41)
    for name, p in predictions.items():
        ax.hist(p, bins=bins, histtype="step", lw=1.5, label=name, density=True)
    for edge in (low, high):
        ax.axvline(edge, color="grey", ls="--", lw=1)
    ax.set(xlabel="predicted probability of late", ylabel="density")
    ax.legend()
    return ax


def rounded(table: pd.DataFrame | Mapping[str, Any], digits: int = 4) -> pd.DataFrame:
    """A table (or dict of scores) with floats rounded for reproducible display."""
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame([table])
    return frame.round(digits)

