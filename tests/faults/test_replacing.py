"""Fault suite, replacing outputs: a job that replaces an output never destroys it before the
replacement has succeeded. (Issue 11, items 1 and 3.)"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.layout import runs_dir
from core.runs import read_metrics
from jobs import train


def _argv(ws: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "jobs.train", "--workspace", str(ws), "--variant", "v4_sota",
        "--preset", "test_cpu", "--run", "r1", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_train_force_keeps_the_old_run_until_the_new_one_has_finished(
    stamps_ws: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates"))
    train.run(ws, "v4_sota", preset_name="test_cpu", run_name="r1", epochs=1)
    run = runs_dir(ws) / "r1"
    kept = {
        name: (run / name).read_bytes() for name in ("metrics.jsonl", "checkpoint.pt", "best.pt", "run.json")
    }
    proc = subprocess.Popen(
        _argv(ws, "--force", "--epochs", "3"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list(runs_dir(ws).glob(".r1.tmp-*/metrics.jsonl")):  # the replacement is training
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a cancel's worst case
    proc.wait()
    assert {name: (run / name).read_bytes() for name in kept} == kept  # the old run, whole
    done = subprocess.run(_argv(ws, "--force", "--epochs", "2"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines, _ = read_metrics(run / "metrics.jsonl")
    assert [line["epoch"] for line in lines] == [0, 1]  # now replaced
    assert not [p.name for p in runs_dir(ws).iterdir() if p.name.startswith(".r1.")]  # nothing left over
