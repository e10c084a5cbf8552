"""Operating points from the ROC curve (scikit-learn), honest about what was measured.

The seed's insight 4: AUROC is dominated by easy cases; what matters is the completeness at
a fixed, very low false-positive rate. Every figure comes with the counts behind it, and an
FPR below 1/n_negatives cannot be measured: such a figure is None, with the reason."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.metrics import FPR_AT_TPR, TPR_AT_FPR


def roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest completeness reached while the FPR stays at or below `target`."""
    return float(tpr[fpr <= target].max())


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The lowest FPR at which the completeness reaches `target`."""
    return float(fpr[tpr >= target].min())


def operating_points(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUROC, tpr@fpr and fpr@tpr with n_pos and n_neg; None plus a reason where unmeasurable."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    out: dict[str, Any] = {"n_pos": n_pos, "n_neg": n_neg}
    reasons: dict[str, str] = {}
    names = ["auroc", *(f"tpr@fpr{f}" for f in TPR_AT_FPR), *(f"fpr@tpr{t}" for t in FPR_AT_TPR)]
    if n_pos == 0 or n_neg == 0:
        for name in names:
            out[name] = None
            reasons[name] = f"needs positives and negatives (n_pos={n_pos}, n_neg={n_neg})"
        out["unmeasured"] = reasons
        return out
    out["auroc"] = float(roc_auc_score(labels, scores))
    fpr, tpr = roc(labels, scores)
    floor = 1.0 / n_neg
    for f in TPR_AT_FPR:
        name = f"tpr@fpr{f}"
        if float(f) < floor:
            out[name] = None
            reasons[name] = f"FPR {f} is below 1/n_neg = {floor:.1e}: not measurable with {n_neg} negatives"
        else:
            out[name] = tpr_at_fpr(fpr, tpr, float(f))
    for t in FPR_AT_TPR:
        name = f"fpr@tpr{t}"
        value = fpr_at_tpr(fpr, tpr, float(t))
        if value < floor:
            out[name] = None
            reasons[name] = f"no negative scored above this threshold: FPR < 1/n_neg = {floor:.1e}"
        else:
            out[name] = value
    out["unmeasured"] = reasons
    return out
