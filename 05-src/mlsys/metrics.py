"""Metrics shared by every lesson: one definition of each score."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def classification_scores(y_true: np.ndarray | pd.Series, p: np.ndarray | pd.Series) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), Brier score and log loss of probabilities `p`."""
    y = np.asarray(y_true, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), 1e-15, 1 - 1e-15)
    single_class = np.unique(y).size < 2
    return {
        "roc_auc": float("nan") if single_class else float(roc_auc_score(y, p)),
        "pr_auc": float("nan") if single_class else float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "positive_rate": float(y.mean()),
    }
