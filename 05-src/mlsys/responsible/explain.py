"""Why the model says what it says: per-flight contributions from LightGBM itself (`pred_contrib=True`).

LightGBM computes exact SHAP values for its trees (TreeSHAP, Lundberg et al., 2020) when asked
`predict(X, pred_contrib=True)`: one contribution per input column plus a bias (the model's
average raw score), in log-odds. For every flight they add up to the model's raw score, so
P(late) = sigmoid(bias + sum of contributions): `additivity_gap` checks it. No extra package
is needed.

The champion is a scikit-learn pipeline (`prep` then `model`); the contributions are computed on
what `prep` hands the booster and named with `prep.get_feature_names_out()`, so they map back to
the features the desk knows (`origin_mean_delay_1h`, `carrier`, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlsys.pipeline import INPUT_COLUMNS

BIAS = "bias"


def unwrap(model: Any) -> Pipeline:
    """The `prep` + LightGBM pipeline inside a model (the pipeline itself, or one wrapped by a calibration map)."""
    if isinstance(model, Pipeline) and {"prep", "model"} <= set(model.named_steps):
        if not hasattr(model.named_steps["model"], "booster_"):
            raise TypeError("explain needs a fitted LightGBM model as the pipeline's 'model' step")
        return model
    inner = getattr(getattr(model, "calibrated_classifiers_", [None])[0], "estimator", None)
    inner = getattr(inner, "estimator", inner)  # FrozenEstimator
    if inner is not None:
        return unwrap(inner)
    raise TypeError(f"explain needs a Pipeline(prep, LightGBM) or a calibrated one, not {type(model).__name__}")


def contributions(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per flight: the contribution (log-odds) of each model feature, and the `bias` column."""
    pipe = unwrap(model)
    prep = pipe.named_steps["prep"]
    X = prep.transform(rows[INPUT_COLUMNS])
    values = pipe.named_steps["model"].predict(X, pred_contrib=True)
    names = [*prep.get_feature_names_out(), BIAS]
    return pd.DataFrame(np.asarray(values), columns=names, index=rows.index)


def raw_margin(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """The booster's raw score (log-odds) of each row, before the sigmoid."""
    pipe = unwrap(model)
    X = pipe.named_steps["prep"].transform(rows[INPUT_COLUMNS])
    return np.asarray(pipe.named_steps["model"].predict(X, raw_score=True), dtype="float64")


def additivity_gap(contrib: pd.DataFrame, margin: np.ndarray) -> float:
    """Largest |sum of contributions - raw score| over the rows (0 up to float rounding when they add up)."""
    return float(np.max(np.abs(contrib.sum(axis=1).to_numpy() - np.asarray(margin))))


def global_importance(contrib: pd.DataFrame, top: int | None = None) -> pd.Series:
    """Mean |contribution| per feature (log-odds), largest first: how much each feature moves predictions."""
    importance = contrib.drop(columns=BIAS).abs().mean().sort_values(ascending=False).rename("mean |contribution|")
    return importance.head(top) if top else importance


def explain_flight(contrib: pd.DataFrame, rows: pd.DataFrame, index: Any, top: int = 8) -> pd.DataFrame:
    """One flight's largest contributions with the feature values behind them; the rest summed in one line."""
    row = contrib.loc[index].drop(BIAS)
    order = row.abs().sort_values(ascending=False).index
    shown, rest = list(order[:top]), list(order[top:])
    table = pd.DataFrame(
        {"value": [_value(rows.loc[index, f]) for f in shown], "contribution": row[shown].to_numpy()}, index=pd.Index(shown, name="feature")
    )
    if rest:
        table.loc[f"{len(rest)} other features"] = ["", float(row[rest].sum())]
    return table


def _value(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype="float64")))


def plot_waterfall(explained: pd.DataFrame, bias: float, title: str = "") -> Any:
    """Waterfall of one flight's contributions: from the bias (average log-odds) to the flight's raw score."""
    import matplotlib.pyplot as plt

    steps = explained["contribution"].to_numpy(dtype="float64")
    labels = [f"{f} = {v}" if v != "" else f for f, v in zip(explained.index, explained["value"], strict=True)]
    starts = bias + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(steps) + 1.6))
    y = np.arange(len(steps))[::-1]
    ax.barh(y, steps, left=starts, color=["tab:red" if s > 0 else "tab:blue" for s in steps])
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(bias, color="grey", ls="--", lw=1)
    end = bias + steps.sum()
    ax.axvline(end, color="black", lw=1)
    ends = np.concatenate([starts, starts + steps, [bias, end]])
    ax.set_xlim(ends.min() - 0.3, ends.max() + 0.3)  # room for the bias line at the edge
    ax.set_xlabel(f"log-odds of late (dashed: bias {bias:.2f}, P = {sigmoid(bias):.2f}; solid: this flight {end:.2f}, P = {sigmoid(end):.2f})")
    ax.set_title(title or "contributions to one flight's score (red: towards late)")
    fig.tight_layout()
    return fig


def plot_importance(importance: pd.Series, top: int = 15) -> Any:
    """Mean |contribution| of the `top` features, largest at the top."""
    import matplotlib.pyplot as plt

    part = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(part) + 1.2))
    ax.barh(part.index, part.to_numpy())
    ax.set_xlabel("mean |contribution| (log-odds)")
    ax.set_title("global view: how much each feature moves the score")
    fig.tight_layout()
    return fig


def importance_by_group(contrib: pd.DataFrame, mask: np.ndarray, names: tuple[str, str] = ("group", "rest"), top: int = 10) -> pd.DataFrame:
    """Mean |contribution| in rows where `mask` holds vs the others, for the features most important overall."""
    mask = np.asarray(mask, dtype=bool)
    features = global_importance(contrib).head(top).index
    table = pd.DataFrame(
        {names[0]: contrib.loc[mask, features].abs().mean(), names[1]: contrib.loc[~mask, features].abs().mean()}
    )
    return table.rename_axis("feature")
