"""`halo runs compare` across source models (issue 24): which source each run learned from, and
both realism probes' AUCs with their intervals, beside completeness and real-lens recall."""

import json
from pathlib import Path

from core import runs


def _run(root: Path, name: str, morphology: str, finder: tuple, pixels: tuple, found: int) -> None:
    path = root / "data" / "runs" / name
    (path / "eval").mkdir(parents=True)
    source = {"mode": "population", "morphology": morphology}
    (path / "run.json").write_text(json.dumps({"run": name, "grid": f"{morphology}_dr10", "source": source}))
    (path / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "auroc": 0.9}) + "\n")
    gate = {
        probe: {"auc": auc, "lo": lo, "hi": hi, "p_value": 0.01, "permutations": 200, "folds": 5}
        for probe, (auc, lo, hi) in (("finder", finder), ("pixels", pixels))
    }
    cells = {"FPR 1e-02": {"value": found / 44, "k": found, "n": 44}}
    evaluation = {
        "operating_points": {"auroc": 0.95, "tpr@fpr1e-2": 0.6},
        "real_lenses": {"n": 44, "tiers": {"all": cells}},
        "realism": gate,
    }
    (path / "eval" / "eval-test.json").write_text(json.dumps(evaluation))


def test_compare_names_each_runs_source_and_gives_realism_with_intervals(tmp_path: Path) -> None:
    _run(tmp_path, "sersic", "sersic", (0.80, 0.70, 0.90), (0.75, 0.66, 0.84), 30)
    _run(tmp_path, "structured", "structured", (0.55, 0.45, 0.65), (0.52, 0.42, 0.61), 33)
    table = runs.compare([runs.load(tmp_path, n) for n in ("sersic", "structured")], {})
    rows = {row["metric"]: row for row in table["rows"]}
    assert rows["source model"]["values"] == ["sersic, population", "structured, population"]
    cells = runs.row_cells(table, rows["realism_auc"])
    assert cells[0][0] == "0.8000 [0.700, 0.900]" and cells[1][0] == "0.5500 [0.450, 0.650]"
    assert rows["realism_auc"]["best"] == "structured"  # lower: injections look more real
    assert runs.row_cells(table, rows["realism_auc_pixels"])[1][0] == "0.5200 [0.420, 0.610]"
    assert rows["real_recall@fpr1e-2"]["best"] == "structured"
    assert "| source model | sersic, population | structured, population |" in runs.markdown(table)
    assert rows["auroc"]["best"] is None  # 0.95 both: a tie marks no run better
    assert "**0.9500**" not in runs.markdown(table)


def test_a_run_from_before_source_models_were_recorded_shows_a_dash(tmp_path: Path) -> None:
    path = tmp_path / "data" / "runs" / "old"
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"run": "old"}))
    (path / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "auroc": 0.9}) + "\n")
    table = runs.compare([runs.load(tmp_path, "old")], {})
    rows = {row["metric"]: row for row in table["rows"]}
    assert rows["source model"]["values"] == ["-"] and rows["realism_auc"]["values"] == [None]


def test_a_catalogue_run_is_named_for_its_real_galaxies() -> None:
    assert runs.source_model({"mode": "catalogue", "morphology": "sersic"}) == "real galaxies, catalogue"
    assert runs.source_model({"mode": "relative"}) == "sersic, relative"


def test_the_lookalikes_false_positive_rate_is_pooled_over_populations_with_its_interval() -> None:
    from scipy.stats import beta

    evaluation = {
        "lookalikes": {
            "spiral": {"n": 10, "FPR 1e-02": {"k": 3, "n": 10}},
            "ring": {"n": 5, "FPR 1e-02": {"k": 1, "n": 5}},
        }
    }
    out = runs.real_recall(evaluation)
    assert out["lookalike_fpr@fpr1e-2"] == 4 / 15
    lo, hi = out["lookalike_fpr@fpr1e-2_interval"]
    assert abs(lo - beta.ppf(0.025, 4, 12)) < 1e-9 and abs(hi - beta.ppf(0.975, 5, 11)) < 1e-9
    assert runs.real_recall({})["lookalike_fpr@fpr1e-2"] is None
    assert runs.lower_is_better("lookalike_fpr@fpr1e-2")
