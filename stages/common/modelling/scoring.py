"""The headline test metrics, computed the same way wherever a model is scored on a set of reviews."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm


def headline(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Reviews, accuracy, balanced accuracy and ROC AUC (None with one class only) of ``proba``. Pure."""
    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba >= threshold
    r = lambda v: round(float(v), 6)  # noqa: E731
    both = len(np.unique(y_true)) == 2
    return {
        "n_test": len(y_true),
        "accuracy": r(skm.accuracy_score(y_true, pred)),
        "balanced_accuracy": r(skm.balanced_accuracy_score(y_true, pred)) if both else None,
        "roc_auc": r(skm.roc_auc_score(y_true, proba)) if both else None,
    }
