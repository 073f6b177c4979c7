"""Class imbalance (Huyen, 2022, ch. 4): metrics that see it, resampling, class weights, and the
leak that oversampling before the split creates.

* `severe_label`: a rare label (arrival 2 h+ late, or cancelled/diverted) to make imbalance visible.
* `random_oversample` / `random_undersample`: data-level fixes, applied by `resample_training`
  to the training split only; validation and test keep the real class balance.
* `compare_strategies`: none vs class weights vs over- vs undersampling, scored on a split that
  training never saw (validation, where such a choice is made): ROC AUC, PR AUC, Brier and the
  mean predicted probability, which shows calibration.
* `leak_demo`: oversampling the whole table and *then* splitting puts copies of the same flight on
  both sides; a model that memorises rows is rewarded for it.
* `class_weight_table`, `reliability_table` / `plot_reliability` and `prior_shift`: what balanced
  class weights are, what rebalancing does to the predicted probabilities, and how Bayes' rule
  moves them back to the real class balance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from mlsys.features import NUMERIC
from mlsys.metrics import classification_scores
from mlsys.pipeline import make_model

SEVERE_MINUTES = 120


def severe_label(df: pd.DataFrame, minutes: int = SEVERE_MINUTES) -> pd.Series:
    """1 if the flight arrived `minutes`+ late or was cancelled or diverted (as the course label does), else 0."""
    severe = (df["arr_delay"] >= minutes).fillna(False) | df["cancelled"].astype(bool) | df["diverted"].astype(bool)
    return severe.astype("int64").rename("severe")


# --------------------------------------------------------------------------- resampling


def random_oversample(df: pd.DataFrame, label: str, seed: int = 42, ratio: float = 1.0) -> pd.DataFrame:
    """Add copies of random minority rows until minority/majority reaches `ratio` (rows keep their index)."""
    minority, majority = _split_classes(df, label)
    extra = max(int(round(ratio * len(majority))) - len(minority), 0)
    copies = minority.sample(extra, replace=True, random_state=seed)
    return pd.concat([df, copies]).sample(frac=1.0, random_state=seed)


def random_undersample(df: pd.DataFrame, label: str, seed: int = 42, ratio: float = 1.0) -> pd.DataFrame:
    """Keep every minority row and a random subset of the majority so minority/majority = `ratio`."""
    minority, majority = _split_classes(df, label)
    keep = min(int(round(len(minority) / ratio)), len(majority))
    return pd.concat([minority, majority.sample(keep, random_state=seed)]).sample(frac=1.0, random_state=seed)


def _split_classes(df: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = df[label].value_counts()
    minority_class = counts.idxmin()
    return df[df[label] == minority_class], df[df[label] != minority_class]


RESAMPLERS: dict[str, Callable[..., pd.DataFrame]] = {"oversample": random_oversample, "undersample": random_undersample}


def resample_training(splits: Mapping[str, pd.DataFrame], label: str, method: str, seed: int = 42) -> dict[str, pd.DataFrame]:
    """A copy of `splits` whose `train` frame is resampled; every other split is passed through untouched."""
    out = dict(splits)
    out["train"] = RESAMPLERS[method](splits["train"], label, seed)
    return out


# --------------------------------------------------------------------------- strategies


def compare_strategies(
    splits: Mapping[str, pd.DataFrame], label: str, seed: int = 42, evaluate_on: str = "valid", **params: object
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Train LightGBM four ways on `train` and score each on the split `evaluate_on` (untouched by resampling).

    Returns a table (one row per strategy) and that split's predictions by strategy. Choosing a
    strategy is a model choice, so it is made on validation; the test split waits for the final figure.
    """
    held_out = splits[evaluate_on]
    setups: dict[str, tuple[pd.DataFrame, dict[str, object]]] = {
        "none": (splits["train"], {}),
        "class weights": (splits["train"], {"class_weight": "balanced"}),
        "oversample train": (resample_training(splits, label, "oversample", seed)["train"], {}),
        "undersample train": (resample_training(splits, label, "undersample", seed)["train"], {}),
    }
    rows, predictions = [], {}
    for name, (train, extra) in setups.items():
        model = make_model("lightgbm", seed=seed, **{**params, **extra}).fit(train, train[label])
        p = model.predict_proba(held_out)[:, 1]
        scores = classification_scores(held_out[label], p)
        rows.append(
            {
                "strategy": name,
                "train_rows": len(train),
                "train_positive_share": float(train[label].mean()),
                "roc_auc": scores["roc_auc"],
                "pr_auc": scores["pr_auc"],
                "brier": scores["brier"],
                "mean_predicted": float(p.mean()),
                f"{evaluate_on}_positive_rate": scores["positive_rate"],
            }
        )
        predictions[name] = p
    return pd.DataFrame(rows).set_index("strategy").round(4), predictions


def plot_roc_pr(y: pd.Series | np.ndarray, scores: Mapping[str, np.ndarray], axes: Sequence[object] | None = None) -> object:
    """ROC and precision–recall curves side by side, each with its no-skill line; returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    else:
        fig = axes[0].figure
    y = np.asarray(y)
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        auc = classification_scores(y, p)
        axes[0].plot(fpr, tpr, label=f"{name} (ROC AUC {auc['roc_auc']:.3f})")
        axes[1].plot(recall, precision, label=f"{name} (PR AUC {auc['pr_auc']:.3f})")
    axes[0].plot([0, 1], [0, 1], "k--", label="no skill (0.5)")
    axes[1].axhline(y.mean(), color="k", linestyle="--", label=f"no skill (prevalence {y.mean():.3f})")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    axes[1].set(xlabel="recall", ylabel="precision", title="Precision–recall curve", ylim=(0, 1))
    for ax in axes:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def operating_points(y: pd.Series | np.ndarray, p: np.ndarray, recalls: Sequence[float] = (0.5, 0.8)) -> pd.DataFrame:
    """For each target recall: the threshold reaching it, and the false-positive rate and precision there.

    The same threshold is one point on the ROC curve (FPR, recall) and one on the PR curve
    (recall, precision): on a rare label a small FPR can still mean many false alarms per hit.
    """
    y = np.asarray(y).astype(bool)
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(y[order])
    fp = np.cumsum(~y[order])
    rows = []
    for target in recalls:
        i = int(np.searchsorted(tp, np.ceil(target * y.sum())))  # first cut reaching the recall
        rows.append(
            {
                "recall": target,
                "threshold": float(p[order][i]),
                "false_positive_rate": float(fp[i] / (~y).sum()),
                "precision": float(tp[i] / (i + 1)),
                "flagged_share": float((i + 1) / len(y)),
                "false_alarms_per_hit": float(fp[i] / tp[i]),
            }
        )
    return pd.DataFrame(rows).set_index("recall").round(4)


# --------------------------------------------------------------------------- the leak


def cross_split_duplicates(train: pd.DataFrame, test: pd.DataFrame, key: str = "flight_id") -> float:
    """Share of `test` rows whose `key` also appears in `train` (0 for an honest split)."""
    return float(test[key].isin(set(train[key])).mean())


def deep_tree(seed: int = 42, columns: Sequence[str] = NUMERIC) -> Pipeline:
    """An unpruned decision tree on the numeric features: flexible enough to memorise single rows.

    Each split looks at a random √p of the features, which makes it several times faster to fit
    and changes nothing about its ability to memorise.
    """
    from sklearn.compose import ColumnTransformer

    return Pipeline(
        [
            ("select", ColumnTransformer([("num", "passthrough", list(columns))])),
            ("model", DecisionTreeClassifier(max_features="sqrt", random_state=seed)),
        ]
    )


def random_split(df: pd.DataFrame, test_size: float = 0.25, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shuffle rows and cut: the split that makes copies of a row land on both sides."""
    shuffled = df.sample(frac=1.0, random_state=seed)
    cut = int(round(len(df) * (1 - test_size)))
    return shuffled.iloc[:cut], shuffled.iloc[cut:]


def leak_demo(
    df: pd.DataFrame,
    label: str,
    seed: int = 42,
    test_size: float = 0.25,
    model_factory: Callable[[int], Pipeline] = deep_tree,
    key: str = "flight_id",
) -> pd.DataFrame:
    """Oversample-then-split (leaky) vs split-then-oversample-train (honest), same data and model.

    Reports per protocol: the share of test rows that are copies of a training row, and the
    test ROC AUC (PR AUC is left out: it depends on the positive share, which oversampling changes
    in the leaky test set).
    """
    leaky_train, leaky_test = random_split(random_oversample(df, label, seed), test_size, seed)
    train, honest_test = random_split(df, test_size, seed)
    honest_train = random_oversample(train, label, seed)
    rows = []
    for protocol, tr, te in (("oversample, then split (leaky)", leaky_train, leaky_test), ("split, then oversample train", honest_train, honest_test)):
        p = model_factory(seed).fit(tr, tr[label]).predict_proba(te)[:, 1]
        scores = classification_scores(te[label], p)
        rows.append(
            {
                "protocol": protocol,
                "test_rows": len(te),
                "test_positive_share": float(te[label].mean()),
                "test_rows_also_in_train": cross_split_duplicates(tr, te, key),
                "test_positives_also_in_train": cross_split_duplicates(tr, te[te[label] == 1], key),
                "roc_auc": scores["roc_auc"],
            }
        )
    return pd.DataFrame(rows).set_index("protocol").round(4)


# --------------------------------------------------------------------------- what rebalancing does to probabilities


def class_weight_table(y: pd.Series | np.ndarray) -> pd.DataFrame:
    """What `class_weight="balanced"` gives each class: n / (classes × n_class) per row.

    Computed with scikit-learn's `compute_class_weight` (LightGBM uses the same formula), so each
    class ends up with the same *total* weight, n / classes: the rare class is not made heavier
    than the common one, only as heavy.
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y)
    classes = np.unique(y)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    rows = pd.Series(y).value_counts().reindex(classes)
    out = pd.DataFrame({"rows": rows.to_numpy(), "weight per row": weights}, index=pd.Index(classes, name="class"))
    out["total weight"] = out["rows"] * out["weight per row"]
    return out.round({"weight per row": 4, "total weight": 1})


def prior_shift(p: np.ndarray, trained_share: float, true_share: float) -> np.ndarray:
    """Move probabilities learned at positive share `trained_share` to a world where it is `true_share`.

    Bayes' rule: the odds scale by (true odds) / (trained odds). Rebalancing trains at a share of
    0.5 (by weights or copies); this undoes it without fitting anything on held-out data.
    """
    p = np.clip(np.asarray(p, dtype="float64"), 1e-12, 1 - 1e-12)
    factor = (true_share / (1 - true_share)) / (trained_share / (1 - trained_share))
    odds = p / (1 - p) * factor
    return odds / (1 + odds)


def reliability_table(y: pd.Series | np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability against the observed positive rate, in `bins` bins of equal size."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype="float64"), "p": np.asarray(p, dtype="float64")})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), bins, labels=False)
    out = frame.groupby("bin").agg(rows=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
    return out


def plot_reliability(y: pd.Series | np.ndarray, scores: Mapping[str, np.ndarray], bins: int = 10, ax: object | None = None) -> object:
    """Reliability diagram: one line per model, observed rate against mean predicted probability (log axes)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 5))
    else:
        fig = ax.figure
    for name, p in scores.items():
        table = reliability_table(y, p, bins)
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
    ax.plot([1e-3, 1], [1e-3, 1], "k--", label="perfectly calibrated")
    ax.set(xscale="log", yscale="log", xlabel="mean predicted probability (bin)", ylabel="observed share severe (bin)")
    ax.set_title(f"Reliability: {bins} bins of equal size")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
