"""Solutions to the exercises of lesson 03 (training data). Try the exercises yourself first.

One function per exercise of `02-notebooks/03_training_data.ipynb`, on the splits of
`mlsys.features.load_splits` (for exercise 4 with the `severe` label added as in the lesson).
`tests/solutions/test_03_training_data.py` runs each of them and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mlsys import imbalance, labeling, sampling
from mlsys.metrics import classification_scores
from mlsys.pipeline import make_model


def exercise_1(train: pd.DataFrame) -> pd.Series:
    """Stratify by origin: the design effect for the late rate, next to the lesson's two stratifiers.

    The three airports differ little in late rate, so stratifying by origin removes almost none of
    the variance (a design effect close to 1, like the carrier); the congestion decile sorts flights
    by how late their origin is running, which is what the late rate depends on.
    """
    strata = {
        "origin": train["origin"],
        "carrier": train["carrier"],
        "congestion decile": sampling.quantile_strata(train["origin_mean_delay_3h"], q=10),
    }
    return pd.Series({name: sampling.design_effect(train["late"], s) for name, s in strata.items()}, name="design effect")


def exercise_2(flights: pd.DataFrame, airports: pd.DataFrame, hours: float = 6.0) -> dict[str, object]:
    """Feedback by destination: the share of landed flights labelled within `hours` of the decision, and the slowest destination.

    Honolulu: the longest flight from New York, so its label comes last.
    """
    delay = labeling.label_delay_hours(flights, airports)
    landed = delay.dropna()
    by_dest = landed.groupby(flights.loc[landed.index, "dest"]).median()
    return {"share_within": float((landed <= hours).mean()), "slowest_dest": str(by_dest.idxmax()), "slowest_median_hours": float(by_dest.max())}


def lf_holiday(df: pd.DataFrame) -> np.ndarray:
    """Flights within a day of a US federal holiday -> late (holiday traffic); abstain otherwise."""
    return np.where((df["days_to_holiday"] <= 1).to_numpy(), labeling.LATE, labeling.ABSTAIN).astype("int8")


def exercise_3(train: pd.DataFrame) -> pd.Series:
    """A labelling function of your own: coverage and accuracy of `lf_holiday` on the training split.

    It votes on about one flight in twenty, and is right about one time in five: less often than
    the share of all flights that are late (about 29 %). Flights around holidays are late *less*
    often than others, so the heuristic is wrong and the LF would only add noise: check an LF
    against the base rate before adding it.
    """
    L = labeling.apply_lfs(train, {"holiday": lf_holiday})
    return labeling.lf_analysis(L, train["late"]).loc["holiday", ["coverage", "accuracy"]]


def exercise_4(splits: Mapping[str, pd.DataFrame], ratio: float = 0.25, seed: int = 42, **params: object) -> dict[str, object]:
    """Gentler undersampling for the severe label: the new training balance, and validation scores against no rebalancing."""
    train = imbalance.random_undersample(splits["train"], "severe", seed=seed, ratio=ratio)
    valid = splits["valid"]
    scores = {}
    for name, frame in (("none", splits["train"]), (f"undersample {ratio:g}", train)):
        model = make_model("lightgbm", seed=seed, **params).fit(frame, frame["severe"])
        s = classification_scores(valid["severe"], model.predict_proba(valid)[:, 1])
        scores[name] = {"roc_auc": s["roc_auc"], "pr_auc": s["pr_auc"]}
    return {
        "train_rows": len(train),
        "positive_share": float(train["severe"].mean()),
        "train_ids": train["flight_id"],
        "scores": pd.DataFrame.from_dict(scores, orient="index"),
    }


def exercise_5(
    pool: pd.DataFrame, valid: pd.DataFrame, seeds: Sequence[int] = (1, 2, 3), start: int = 200, step: int = 200, rounds: int = 5, **params: object
) -> pd.DataFrame:
    """Active learning, again: mean and standard deviation of validation ROC AUC over `seeds`, per strategy and budget.

    Compare the gap between the strategies' means at the largest budget with their standard
    deviations: on this data the gap is no larger than the spread between seeds.
    """
    runs = pd.concat(
        [labeling.active_learning_curves(pool, valid, start=start, step=step, rounds=rounds, seed=seed, **params).assign(seed=seed) for seed in seeds]
    )
    return runs.groupby(["labels", "strategy"])["roc_auc"].agg(["mean", "std"]).unstack("strategy")
