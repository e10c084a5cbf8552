"""Fault suite, every stage (issue 26, item 0): a run that fails part-way leaves the workspace
as it was, byte for byte. Each shipped stage is run again with --force on a workspace where
it (and every stage before it) has already written its outputs, with a disk that fills after
a few kilobytes a file (RLIMIT_FSIZE: the stage's first large write fails, as on a full disk):
it exits 1 with one line naming the file, and every file of the workspace holds what it held
before; nothing half-written is left beside the outputs. (A kill part-way is tested stage by
stage: train --force in test_replacing.py, inject in tests/jobs/test_inject.py, a Spark step
in test_replacing.py.)"""

from __future__ import annotations

import hashlib
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core import grades
from core.stages import SHIPPED
from core.workspace import Workspace
from jobs.stages import cutouts, score, train
from jobs.stages import eval as eval_stage

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_every_stage_fails_whole")]

FULL_AFTER = 4096  # bytes a file may reach before the disk is "full"
# stages that open the workspace's store (SQLite's shared-memory file takes 32 KB): their
# outputs are refused past this instead (each is larger); at FULL_AFTER the store is refused
STORE_ROOM = 256 * 1024

# each shipped stage's options for a rerun of what the workspace holds
RERUN: dict[str, list[str]] = {
    "demo": ["--bricks", "3", "--seed", "7", "--brick-px", "400"],
    "select": ["--variant", "v4_sota"],
    "manifest": ["--variant", "v4_sota", "--grid", "grid_sota"],
    "coadds": ["--variant", "v4_sota", "--grid", "grid_sota"],
    "inject": ["--variant", "v4_sota", "--grid", "grid_sota", "--rows-per-part", "40", "--workers", "1"],
    "train": ["--variant", "v4_sota", "--preset", "test_cpu", "--run", "tiny", "--epochs", "1"],
    "eval": ["--variant", "v4_sota", "--run", "tiny"],
    "cutouts": ["--variant", "v4_sota", "--rows-per-part", "40", "--workers", "1"],
    "score": ["--variant", "v4_sota", "--run", "tiny", "--keep-stamps", "40"],
    "retrain": ["--from-run", "tiny", "--run", "tiny-r2", "--epochs", "1"],
    "triage": ["--run", "tiny"],
}


def test_every_shipped_stage_is_covered() -> None:
    assert set(RERUN) == {stage.name for stage in SHIPPED}


@pytest.fixture(scope="module")
def pipeline_ws(stamps_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stage's outputs: the stamps workspace, a one-epoch run `tiny` evaluated and
    scored, its candidates graded from the mock's truth, a triage CSV of those grades."""
    root = tmp_path_factory.mktemp("every-stage") / "ws"
    shutil.copytree(stamps_ws, root, ignore=shutil.ignore_patterns(".halo", "runs", "candidates", "rounds"))
    train.run(root, "v4_sota", preset="test_cpu", run="tiny", epochs=1)
    eval_stage.run(root, "v4_sota", run="tiny")
    cutouts.run(root, "v4_sota")
    score.run(root, "v4_sota", run="tiny", keep_stamps=40)
    store = Workspace(root).store
    for row in pq.read_table(root / "data/candidates/tiny/candidates.parquet").to_pylist():
        for who in ("ann", "bob"):
            value = "A" if row["known_lens"] else "X"
            grades.grade(store, "tiny", row["brickname"], int(row["objid"]), who, value)
    store.close()  # retrain's rerun makes a round `tiny-r2` of these grades: none is there yet
    module = next(stage.module for stage in SHIPPED if stage.name == "triage")
    argv = [sys.executable, "-m", module, "--workspace", str(root), "--run", "tiny"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root


def _files(root: Path) -> dict[str, str]:
    """Every file of the workspace but its store and logs (.halo): its digest, by path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".halo" not in path.relative_to(root).parts
    }


def _disk_full_after(size: int):  # noqa: ANN202 - a preexec_fn
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def _rerun(stage: str, root: Path, full_after: int) -> subprocess.CompletedProcess[str]:
    declared = next(s for s in SHIPPED if s.name == stage)
    force = ["--force"] if any(p.name == "force" for p in declared.params) else []  # triage: always writes
    return subprocess.run(
        [sys.executable, "-m", declared.module, "--workspace", str(root), *RERUN[stage], *force],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_disk_full_after(full_after),  # a resource limit, set in the child before exec
    )


def _unchanged(before: dict[str, str], root: Path) -> None:
    after = _files(root)
    assert sorted(after.keys() - before.keys()) == [], "left behind"
    assert sorted(before.keys() - after.keys()) == [], "lost"
    assert [p for p in before if before[p] != after[p]] == [], "changed"


# triage's CSV is smaller than the store's room: its failure is the store's, tested below
@pytest.mark.parametrize("stage", [name for name in RERUN if name != "triage"])
def test_a_stage_that_fails_part_way_leaves_the_workspace_as_it_was(stage: str, pipeline_ws: Path) -> None:
    before = _files(pipeline_ws)
    done = _rerun(stage, pipeline_ws, STORE_ROOM if stage in ("score", "retrain") else FULL_AFTER)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    last = done.stderr.strip().splitlines()[-1]  # one line: the file, and that the disk refused it
    assert ": error: " in last and str(pipeline_ws) in last and "too large" in last.lower(), last
    _unchanged(before, pipeline_ws)


@pytest.mark.parametrize("stage", ["score", "retrain", "triage"])
def test_a_store_the_disk_refuses_is_said_so_and_nothing_changes(stage: str, pipeline_ws: Path) -> None:
    """A full disk refuses the store's shared memory: the store is not called damaged (a user
    told to move it aside would lose their grades' home), exit 2, nothing written."""
    before = _files(pipeline_ws)
    done = _rerun(stage, pipeline_ws, FULL_AFTER)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "halo.db: the disk refused it" in last and "free some space" in last, last
    assert "move it aside" not in last
    _unchanged(before, pipeline_ws)
