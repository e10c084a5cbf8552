"""eval's real-lens recall (issue 23, part 3): per tier, at thresholds set on real galaxies
never trained on, counted by unit; the report's first table sets it beside injections."""

import numpy as np
import pytest

from jobs.learn.eval_report import headline
from jobs.learn.evaluation import real_lens_recall


def test_recall_per_tier_at_real_galaxy_thresholds_agrees_with_a_direct_count() -> None:
    rng = np.random.default_rng(2)
    neg = rng.normal(0, 1, 3000)
    neg_units = np.array([f"g{i}" for i in range(3000)], dtype=object)
    tiers = np.array(["confirmed"] * 20 + ["probable"] * 30 + ["candidate"] * 10, dtype=object)
    logit = rng.normal(2.0, 1.5, tiers.size)
    lenses = {
        "logit": logit,
        "galaxy": np.array([f"L{i}" for i in range(tiers.size)], dtype=object),
        "tier": tiers,
    }
    out = real_lens_recall(lenses, neg, neg_units, prevalence=1e-3)
    assert [t["name"] for t in out["thresholds"]] == ["FPR 1e-02", "FPR 1e-03"]  # 3,000 negatives: not 1e-4
    for t, level in zip(out["thresholds"], (1e-2, 1e-3), strict=True):
        assert np.mean(neg > t["threshold"]) <= level  # set on the real galaxies
        for tier in ("confirmed", "probable", "candidate"):
            cell = out["tiers"][tier][t["name"]]
            expected = np.mean(logit[tiers == tier] > t["threshold"])
            assert cell["value"] == pytest.approx(expected) and cell["n"] == (tiers == tier).sum()
            assert cell["lo"] <= cell["value"] <= cell["hi"]
        assert out["tiers"]["all"][t["name"]]["value"] == pytest.approx(np.mean(logit > t["threshold"]))
        recall, fpr = np.mean(logit > t["threshold"]), np.mean(neg > t["threshold"])
        assert out["purity"][t["name"]]["purity"] == pytest.approx(
            1e-3 * recall / (1e-3 * recall + 0.999 * fpr)
        )
    assert out["n"] == 60 and out["n_negatives"] == 3000


def test_two_lens_entries_of_one_galaxy_count_once() -> None:
    neg = np.linspace(-3, 0, 200)
    units = np.array([f"g{i}" for i in range(200)], dtype=object)
    lenses = {
        "logit": np.array([5.0, 5.0, -5.0]),
        "galaxy": np.array(["L1", "L1", "L2"], dtype=object),
        "tier": np.array(["confirmed"] * 3, dtype=object),
    }
    out = real_lens_recall(lenses, neg, units, 1e-4)
    assert out["n"] == 2 and out["tiers"]["confirmed"]["FPR 1e-02"]["n_independent"] == 2


def test_the_reports_first_table_sets_real_lenses_beside_injections() -> None:
    rng = np.random.default_rng(0)
    neg = rng.normal(0, 1, 500)
    lenses = {
        "logit": rng.normal(2, 1, 30),
        "galaxy": np.arange(30).astype(str).astype(object),
        "tier": np.array(["probable"] * 30, dtype=object),
    }
    real = real_lens_recall(lenses, neg, np.arange(500).astype(str).astype(object), 1e-4)
    cell = {"value": 0.5, "k": 5, "n": 10, "n_independent": 4, "lo": 0.2, "hi": 0.8}
    result = {
        "split": "test",
        "real_lenses": real,
        "operating_points": {"n_pos_independent": 4},
        "tables": {
            "overall": {"completeness_at_fpr": {"1e-02": cell, "1e-03": {"value": None, "reason": "x"}}}
        },
    }
    text = "\n".join(headline(result))
    assert text.startswith("## Real lenses and injections, side by side")
    assert "| real-lens recall, probable (real-galaxy thresholds) | 30 |" in text
    assert "| injection completeness (controls' thresholds) | 4 | 50.0%" in text
    assert "## The realism gate\n\nn/m: not run" in text  # no probe: it says so
    assert "FPR 1e-03" in text and "n/m" in text  # 500 real galaxies cannot measure 1e-3
