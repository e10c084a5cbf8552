"""Snapshots of the main screens at 80x24, made deterministic: a workspace shown as
`~/halo-snapshot-workspace` (a unique folder, with HOME set to its parent, so two test runs at
once never share it), fixed job times, a fixed metrics file and fixed stamps. Update with
`pytest --snapshot-update`."""

import json
from pathlib import Path

import numpy as np
import pytest

from core.engine import Engine
from core.states import JobState
from core.workspace import Workspace
from halo_tui.app import HaloApp

T0 = 1795651200.0  # 2026-11-26 00:00:00 UTC


@pytest.fixture
def fixed_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Engine:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("HOME", str(tmp_path.resolve()))
    root = tmp_path.resolve() / "halo-snapshot-workspace"
    root.mkdir()
    engine = Engine(Workspace(root))
    for i, (stage, variant, state, code) in enumerate(
        [
            ("select", "v4_sota", JobState.SUCCEEDED, 0),
            ("manifest", "v4_sota", JobState.SUCCEEDED, 0),
            ("inject", "v4_sota", JobState.FAILED, 1),
            ("train", "v4_sota", JobState.CANCELLED, -15),
        ]
    ):
        job = engine.store.create(stage, variant, {"grid": "grid_sota"}, "local")
        engine.store.transition(job.id, JobState.RUNNING, started=T0 + 60 * i)
        engine.store.transition(
            job.id,
            state,
            ended=T0 + 60 * i + 42.5,
            exit_code=code,
            failure=None if code == 0 else f"exited with code {code}",
        )
    run = root / "data" / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"epochs": 6, "preset": "demo_cpu"}))
    lines = [
        {
            "epoch": e,
            "train_loss": 0.5 / (e + 1),
            "val_loss": 0.4 / (e + 1),
            "auroc": 0.9 + 0.015 * e,
            "tpr@fpr1e-2": 0.5 + 0.1 * e,
            "tpr@fpr1e-3": 0.3 + 0.1 * e,
            "tpr@fpr1e-4": None,
            "tpr@fpr0": 0.2 + 0.1 * e,
            "fpr@tpr0.85": 0.05 / (e + 1) if e < 2 else None,  # epoch 2: no negative passes
            "fpr_upper_bounds": {"fpr@tpr0.85": 3.0e-3} if e == 2 else {},
            "fpr@tpr0.95": 0.2 / (e + 1),
            "pauc": 0.8 + 0.05 * e,
            "n_neg": 1000,
            "n_neg_independent": 1000,
            "seconds": 20.0,
        }
        for e in range(3)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return engine


def _candidates(root: Path, make_candidates) -> Path:
    """Eight stamps, an arc in every other one."""
    rng = np.random.default_rng(7)
    n = 8
    yy, xx = np.mgrid[0:64, 0:64]
    stamps = []
    for i in range(n):
        galaxy = np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 20.0)
        arc = np.exp(-((np.hypot(xx - 32, yy - 32) - 10) ** 2) / 3.0) * (i % 2)
        stamp = np.stack([0.2 * galaxy + 0.3 * arc, 0.5 * galaxy + 0.2 * arc, 0.9 * galaxy + 0.1 * arc])
        stamps.append((stamp + rng.normal(0, 0.01, stamp.shape)).astype(np.float32).tobytes())
    path = root / "data" / "candidates" / "demo" / "candidates.parquet"
    return make_candidates(
        path,
        n,
        stamps=stamps,
        ra=np.linspace(150, 150.1, n),
        dec=np.full(n, 2.25),
        psfsize_r=np.full(n, 1.21),
        score=np.linspace(0.99, 0.5, n),
    )


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)
    await pilot.app.workers.wait_for_complete()


def test_jobs_screen(snap_compare, fixed_workspace: Engine) -> None:
    assert snap_compare(HaloApp(fixed_workspace), terminal_size=(80, 24), run_before=_settle)


def test_help_screen(snap_compare, fixed_workspace: Engine) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")

    assert snap_compare(HaloApp(fixed_workspace), terminal_size=(80, 24), run_before=run_before)


def test_monitor_screen(snap_compare, fixed_workspace: Engine) -> None:
    async def run_before(pilot) -> None:
        from halo_tui.screens.monitor import MonitorScreen

        await _settle(pilot)
        pilot.app.push_screen(MonitorScreen(fixed_workspace.workspace.root / "data" / "runs" / "demo"))
        await pilot.pause(0.5)
        await _settle(pilot)

    assert snap_compare(HaloApp(fixed_workspace), terminal_size=(80, 24), run_before=run_before)


def test_candidates_screen(snap_compare, fixed_workspace: Engine, make_candidates) -> None:
    path = _candidates(fixed_workspace.workspace.root, make_candidates)

    async def run_before(pilot) -> None:
        from halo_tui.screens.candidates import CandidatesScreen

        await _settle(pilot)
        pilot.app.push_screen(CandidatesScreen(path, "demo"))
        await pilot.pause(0.5)
        await _settle(pilot)
        await pilot.press("b")
        await _settle(pilot)

    assert snap_compare(HaloApp(fixed_workspace), terminal_size=(80, 24), run_before=run_before)
