"""Which way each metric improves (bug 3 of issue 14: the monitor bolded the worst loss)."""

from core.runs import better


def test_losses_and_fprs_improve_downwards_everything_else_upwards() -> None:
    for metric in ("train_loss", "val_loss", "loss", "fpr@tpr0.85", "fpr@tpr0.99"):
        assert better(metric, 0.1, 0.2) and not better(metric, 0.2, 0.1), metric
    for metric in ("auroc", "pauc", "tpr@fpr1e-3", "tpr@fpr0"):
        assert better(metric, 0.9, 0.8) and not better(metric, 0.8, 0.9), metric
