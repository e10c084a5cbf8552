"""`make screenshots`: the README's pictures come from a real workspace through the console's
own keys (issue 15: no picture of the console anywhere)."""

import asyncio
import json
from pathlib import Path

import numpy as np

from core.workspace import Workspace
from halo_tui.screenshots import main, shoot


def test_the_three_screens_are_saved_from_a_workspace(tmp_path: Path, make_candidates, monkeypatch) -> None:
    for var in ("HALO_WORKSPACE", "HALO_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    store = Workspace(root).store
    job = store.create("train", "v4_sota", {"run": "demo"}, "local")
    run = root / "data" / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run": "demo", "epochs": 2}))
    lines = [
        {"epoch": e, "train_loss": 0.5 - 0.1 * e, "val_loss": 0.4, "auroc": 0.9 + 0.01 * e} for e in range(2)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rng = np.random.default_rng(1)
    stamps = [rng.normal(0, 1, (3, 64, 64)).astype(np.float32).tobytes() for _ in range(6)]
    make_candidates(root / "data" / "candidates" / "demo" / "candidates.parquet", 6, stamps=stamps)
    before = sorted(p.name for p in (root / ".halo").iterdir())

    saved = asyncio.run(shoot(root, tmp_path / "shots"))
    assert [p.name for p in saved] == ["jobs.svg", "monitor.svg", "candidates.svg"]
    jobs, monitor, candidates = (p.read_text() for p in saved)
    assert "<svg" in jobs and "train" in jobs and f"{job.id}" in jobs
    assert "run&#160;demo" in monitor or "run demo" in monitor  # the monitor of the run
    assert "graded" in candidates and "▀" in candidates  # the stamps, as half blocks
    assert sorted(p.name for p in (root / ".halo").iterdir()) == before  # read-only
    assert not list((tmp_path / "shots").glob(".*.tmp"))


def test_a_folder_that_is_no_workspace_is_named(tmp_path: Path, capsys) -> None:
    assert main(["-w", str(tmp_path), "--out", str(tmp_path / "shots")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("screenshots: error: ")
        and "is not a halo workspace yet" in err
        and err.count("\n") == 1
    )
    assert not (tmp_path / "shots").exists()
