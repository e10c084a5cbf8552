"""Operating points agree with scikit-learn's ROC curve and a brute-force threshold scan,
and refuse to print what cannot be measured."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from jobs.eval import clopper_pearson, completeness_at_fpr, fpr_at_completeness
from jobs.operating_points import operating_points


def _scan(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR at every threshold, by counting."""
    pos, neg = scores[labels], scores[~labels]
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    return (
        np.array([(neg >= t).mean() for t in thresholds]),
        np.array([(pos >= t).mean() for t in thresholds]),
    )


@pytest.fixture
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(3000, bool), np.zeros(20000, bool)]
    scores = np.r_[rng.normal(2.5, 1, 3000), rng.normal(0, 1, 20000)].round(3)  # ties included
    return labels, scores


def test_operating_points_agree_with_roc_curve_and_a_threshold_scan(sample) -> None:
    labels, scores = sample
    got = operating_points(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    scan_fpr, scan_tpr = _scan(labels, scores)
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert (got["n_pos"], got["n_neg"]) == (3000, 20000)
    for f in ("1e-2", "1e-3", "1e-4"):
        direct = tpr[fpr <= float(f)].max()
        assert got[f"tpr@fpr{f}"] == pytest.approx(direct)
        assert got[f"tpr@fpr{f}"] == pytest.approx(scan_tpr[scan_fpr <= float(f)].max())
    for t in ("0.80", "0.85", "0.90", "0.95", "0.99"):
        direct = fpr[tpr >= float(t)].min()
        assert got[f"fpr@tpr{t}"] == pytest.approx(direct)
        assert got[f"fpr@tpr{t}"] == pytest.approx(scan_fpr[scan_tpr >= float(t)].min())


def test_an_fpr_below_one_over_n_neg_is_not_measured() -> None:
    labels = np.r_[np.ones(200, bool), np.zeros(500, bool)]
    scores = np.r_[np.linspace(1, 2, 200), np.linspace(0, 0.9, 500)]  # perfectly separated
    got = operating_points(labels, scores)
    assert got["tpr@fpr1e-2"] == 1.0
    assert got["tpr@fpr1e-3"] is None and "below 1/n_neg = 2.0e-03" in got["unmeasured"]["tpr@fpr1e-3"]
    assert got["tpr@fpr1e-5"] is None
    assert got["fpr@tpr0.85"] is None and "FPR < 1/n_neg" in got["unmeasured"]["fpr@tpr0.85"]
    one_class = operating_points(np.ones(5, bool), np.arange(5.0))
    assert one_class["auroc"] is None and "needs positives and negatives" in one_class["unmeasured"]["auroc"]


def test_the_eval_tables_count_and_bound(sample) -> None:
    labels, scores = sample
    neg, pos = scores[~labels], scores[labels]
    cell = completeness_at_fpr(neg, pos, 1e-3)
    assert cell["n"] == 3000 and cell["lo"] <= cell["value"] <= cell["hi"]
    assert cell["value"] == pytest.approx(operating_points(labels, scores)["tpr@fpr1e-3"], abs=2 / 3000)
    assert completeness_at_fpr(neg, pos, 1e-5)["value"] is None
    cell = fpr_at_completeness(neg, pos, 0.85)
    assert cell["n"] == 20000 and cell["value"] == pytest.approx((neg >= cell["threshold"]).mean())
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.3085, abs=1e-4)  # the textbook exact bound
    lo, hi = clopper_pearson(5, 10)
    assert (lo, hi) == (pytest.approx(0.1871, abs=1e-4), pytest.approx(0.8129, abs=1e-4))
