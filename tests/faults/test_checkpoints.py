"""Fault suite, checkpoints: best.pt is replaced atomically (a kill during the copy leaves the
old one whole), a damaged one is one clear error, and a planted pickle never runs.
(Issue 11, items 3 and 6.)"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from core.layout import runs_dir
from jobs.learn import training
from jobs.runtime.stage import StageError
from jobs.stages import eval as eval_stage
from jobs.stages import train

# its module-scoped fixture is built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_checkpoints")


@pytest.fixture(scope="module")
def trained_once(stamps_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run `r` trained one epoch, made once for the module."""
    ws = tmp_path_factory.mktemp("checkpoints") / "ws"
    shutil.copytree(stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates"))
    train.run(ws, "v4_sota", preset="test_cpu", run="r", epochs=1)
    return ws


@pytest.fixture
def one_epoch(trained_once: Path, tmp_path: Path) -> Path:
    """A copy of it for each test (the tests damage its checkpoints)."""
    ws = tmp_path / "ws"
    shutil.copytree(trained_once, ws, symlinks=True)
    return ws


def test_a_kill_while_best_pt_is_copied_leaves_the_old_one_whole(one_epoch: Path, monkeypatch) -> None:
    best = runs_dir(one_epoch) / "r" / "best.pt"
    before = best.read_bytes()
    real = os.replace

    def killed_before_the_rename(src, dst, *args, **kwargs):
        if Path(dst).name == "best.pt":
            raise KeyboardInterrupt  # the job is cancelled once the new copy is written
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(training, "_is_best", lambda line, history: True)
    monkeypatch.setattr(os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        train.run(one_epoch, "v4_sota", preset="test_cpu", run="r", epochs=2, resume=True)
    monkeypatch.setattr(os, "replace", real)
    assert best.read_bytes() == before
    assert not list(best.parent.glob("*.tmp"))  # the half-made copy is gone too
    assert eval_stage.run(one_epoch, "v4_sota", run="r")["auroc"] is not None  # it loads


def test_a_runs_files_are_written_through_no_planted_link(one_epoch: Path, tmp_path: Path) -> None:
    """The checkpoints, metrics and run.json went through a fixed `<name>.tmp`: a link planted
    there was written through. Now each is a fresh name beside the file, and the files keep
    the umask's mode (colleagues on the login node read a run)."""
    run_dir = runs_dir(one_epoch) / "r"
    outside = tmp_path / "outside"
    outside.write_text("keep")
    for name in ("checkpoint.tmp", "best.tmp", "metrics.tmp", "run.tmp"):
        (run_dir / name).symlink_to(outside)
    train.run(one_epoch, "v4_sota", preset="test_cpu", run="r", epochs=2, resume=True)
    assert outside.read_text() == "keep"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("checkpoint.pt", "best.pt", "metrics.jsonl", "run.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_damaged_checkpoint_is_one_clear_error(one_epoch: Path) -> None:
    best = runs_dir(one_epoch) / "r" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])  # what a non-atomic copy used to leave
    with pytest.raises(StageError, match="best.pt: not a loadable checkpoint"):
        eval_stage.run(one_epoch, "v4_sota", run="r")


def test_a_planted_checkpoint_is_refused_without_running_it(one_epoch: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = runs_dir(one_epoch) / "evil"
    evil.mkdir()
    (evil / "best.pt").write_bytes(pickle.dumps({"model": Evil(), "arch": "small_cnn", "meta_cols": []}))
    with pytest.raises(StageError, match="evil/best.pt: holds objects other than weights") as err:
        eval_stage.run(one_epoch, "v4_sota", run="evil")
    assert not marker.exists() and "weights_only=False" not in str(err.value)  # never that advice


def test_a_truncated_checkpoint_on_resume_is_named(one_epoch: Path) -> None:
    """Issue 26, item 7: `train --resume` over a truncated checkpoint.pt was a traceback whose
    RuntimeError named no file."""
    last = runs_dir(one_epoch) / "r" / "checkpoint.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(StageError, match="checkpoint.pt: not a loadable checkpoint, damaged or truncated"):
        train.run(one_epoch, "v4_sota", preset="test_cpu", run="r", epochs=2, resume=True)


def test_weights_changed_in_place_keeping_size_and_time_are_no_longer_up_to_date(one_epoch: Path) -> None:
    """Issue 26, item 1: other weights of the same size, the time put back (`touch -r`), and
    eval said "up to date", serving the old AUROC; inputs are now known by their content."""
    import io

    import torch

    first = eval_stage.run(one_epoch, "v4_sota", run="r")
    best = runs_dir(one_epoch) / "r" / "best.pt"
    stat = best.stat()
    state = torch.load(best, weights_only=True)
    for tensor in state["model"].values():  # a constant model, in the state dict's own structure
        tensor.zero_()
    other = io.BytesIO()  # saved as train saves it (to memory, then written): the same size
    torch.save(state, other)
    best.write_bytes(other.getvalue())
    assert best.stat().st_size == stat.st_size
    os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = eval_stage.run(one_epoch, "v4_sota", run="r")
    assert not again.get("skipped") and first["auroc"] > 0.5 and again["auroc"] == 0.5
    os.utime(best)  # a touch alone changes nothing
    assert eval_stage.run(one_epoch, "v4_sota", run="r").get("skipped")
