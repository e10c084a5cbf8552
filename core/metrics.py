"""Metric names shared by the training stage, the evaluation and the console.

The seed's insight 4: AUROC misleads, so operating points are first-class metrics."""

from __future__ import annotations

TPR_AT_FPR: tuple[str, ...] = ("1e-2", "1e-3", "1e-4", "1e-5")
FPR_AT_TPR: tuple[str, ...] = ("0.80", "0.85", "0.90", "0.95", "0.99")

OPERATING_POINTS: tuple[str, ...] = (
    *(f"tpr@fpr{f}" for f in TPR_AT_FPR),
    *(f"fpr@tpr{t}" for t in FPR_AT_TPR),
)
METRIC_NAMES: tuple[str, ...] = ("train_loss", "val_loss", "auroc", *OPERATING_POINTS)
