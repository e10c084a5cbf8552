"""`halo demo --headless`, the README's main job, end to end on a small survey."""

from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_runs_every_stage_and_reports(halo, tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    halo("demo", "init", "-w", str(ws), "--bricks", "3", "--brick-px", "400", check=0, timeout=300)
    (ws / "halo.toml").write_text(
        "[grids.grid_sota]\nn_total_per_split = 120\n\n[presets.demo_cpu]\nepochs = 1\nbatch_size = 32\n"
    )
    out = halo("demo", "--headless", "-w", str(ws), check=0, timeout=900)
    assert "the mock survey is there already" in out.stderr
    jobs = halo.json("jobs", "list", "-w", str(ws))
    assert [j["stage"] for j in reversed(jobs)] == [
        "demo",
        "select",
        "manifest",
        "coadds",
        "inject",
        "train",
        "eval",
        "score",
    ]
    assert all(j["state"] == "succeeded" for j in jobs)
    assert "demo results" in out.stdout and "auroc" in out.stdout
    assert "shortcut audit: pixel-statistic AUROC" in out.stdout
    assert "independent galaxies" in out.stdout and "tpr@fpr1e-3 n/m" in out.stdout
    assert "known lenses in the footprint" in out.stdout and "mock-" in out.stdout
    assert (ws / "data" / "candidates" / "demo" / "candidates.parquet").exists()
    assert "next steps: the demo's workspace is" in out.stdout and f"export HALO_WORKSPACE={ws}" in out.stdout
