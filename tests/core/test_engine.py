"""The engine with real detached processes: launch, reconcile, cancel, guards."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from core.backends import local
from core.engine import Engine
from core.errors import UsageError
from core.states import JobState
from core.store import DuplicateJob


def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_runs_detached_to_success_with_its_outputs(engine: Engine) -> None:
    job = engine.launch("sleepy", params={"seconds": "0.2"})
    assert job.state is JobState.RUNNING
    assert job.handle["pid"] > 0 and job.handle["start"] is not None
    assert os.getsid(job.handle["pid"]) == job.handle["pid"]  # its own session: outlives the console
    job = engine.wait(job.id)
    assert (job.state, job.exit_code, job.failure) == (JobState.SUCCEEDED, 0, None)
    assert job.outputs == ["result.txt"] and job.summary == {"slept": 0.2}
    log = Path(job.log_path).read_text()
    assert "sleepy: start" in log and "sleepy: done" in log and "end: exit code 0" in log


def test_a_failing_job_records_its_exit_code(engine: Engine) -> None:
    job = engine.wait(engine.launch("sleepy", params={"code": "7"}).id)
    assert (job.state, job.exit_code, job.failure) == (JobState.FAILED, 7, "exited with code 7")


def test_cancel_right_after_launch_leaves_no_process(engine: Engine) -> None:
    job = engine.cancel(engine.launch("sleepy", params={"seconds": "60"}).id)
    assert job.state is JobState.CANCELLED
    assert not local.alive(job.handle)


def test_cancel_stops_a_long_job(engine: Engine) -> None:
    job = engine.launch("sleepy", params={"seconds": "60"})
    _until(lambda: "sleepy: start" in Path(job.log_path).read_text())
    started = time.monotonic()
    job = engine.cancel(job.id)
    assert job.state is JobState.CANCELLED and job.failure == "cancelled by the user"
    assert job.exit_code == -signal.SIGTERM
    assert time.monotonic() - started < 5
    assert not local.alive(job.handle)
    with pytest.raises(UsageError, match="already ended"):
        engine.cancel(job.id)


def test_a_cancel_stays_a_cancel_while_another_console_watches(engine: Engine, monkeypatch) -> None:
    """Bug 6 of issue 14: another `halo` on the workspace saw the process end under SIGTERM
    and recorded "failed / killed by SIGTERM" before the cancel did."""
    from core.workspace import Workspace

    job = engine.launch("sleepy", params={"seconds": "60"})
    _until(lambda: "sleepy: start" in Path(job.log_path).read_text())
    watcher = Engine(Workspace(engine.workspace.root))  # the other console
    signal_group = local.cancel

    def cancel_then_let_the_watcher_look(handle, grace):  # the race, made to happen every time
        signal_group(handle, grace)
        _until(lambda: not local.alive(handle))
        watcher.refresh()

    monkeypatch.setattr(local, "cancel", cancel_then_let_the_watcher_look)
    job = engine.cancel(job.id)
    assert job.state is JobState.CANCELLED and job.failure == "cancelled by the user"
    assert job.exit_code == -signal.SIGTERM
    assert watcher.get(job.id).state is JobState.CANCELLED


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace_period(engine: Engine) -> None:
    job = engine.launch("sleepy", params={"seconds": "60", "stubborn": "true"})
    _until(lambda: "sleepy: start" in Path(job.log_path).read_text())  # its handler is set
    started = time.monotonic()
    job = engine.cancel(job.id)
    waited = time.monotonic() - started
    assert job.state is JobState.CANCELLED
    assert 0.9 <= waited < 5  # the workspace's grace period is 1 s
    assert not local.alive(job.handle)


def test_a_job_outlives_its_launcher_killed_with_sigkill(workspace: Path, halo) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env["HALO_WORKSPACE"] = str(workspace)
    launcher = subprocess.Popen(
        [halo.executable, "stage", "sleepy", "--seconds", "5", "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def db_jobs() -> list:
        return halo.json("jobs", "list")

    _until(lambda: db_jobs() and db_jobs()[0]["state"] == "running")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    job = db_jobs()[0]
    assert job["state"] == "running"  # the launcher died; the job did not
    exit_file = Path(job["handle"]["exit_file"])
    _until(exit_file.exists)
    job = halo.json("jobs", "show", str(job["id"]))  # the next start reconciles it
    assert (job["state"], job["exit_code"]) == ("succeeded", 0)


def test_the_pid_reuse_guard(engine: Engine, tmp_path: Path) -> None:
    """A live PID whose start time differs is someone else's process: the job is lost."""
    me = os.getpid()
    reused = engine.store.create("sleepy", None, {"seconds": 1.0}, "local")
    engine.store.transition(
        reused.id,
        JobState.RUNNING,
        handle={"pid": me, "start": local.process_start(me) - 1, "exit_file": str(tmp_path / "none.exit")},
    )
    genuine = engine.store.create("sleepy", None, {"seconds": 2.0}, "local")
    engine.store.transition(
        genuine.id,
        JobState.RUNNING,
        handle={"pid": me, "start": local.process_start(me), "exit_file": str(tmp_path / "none.exit")},
    )
    engine.refresh()
    lost = engine.store.get(reused.id)
    assert lost.state is JobState.FAILED and lost.failure.startswith("lost")
    assert engine.store.get(genuine.id).state is JobState.RUNNING
    engine.store.transition(genuine.id, JobState.FAILED)  # not ours to cancel


def test_a_vanished_process_without_exit_record_is_lost(engine: Engine, tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    job = engine.store.create("sleepy", None, {}, "local")
    engine.store.transition(
        job.id, JobState.RUNNING, handle={"pid": proc.pid, "start": 1, "exit_file": str(tmp_path / "x.exit")}
    )
    (job,) = [j for j in engine.refresh() if j.id == job.id]
    assert job.state is JobState.FAILED and "without recording an exit code" in job.failure


def test_a_second_launch_of_a_running_job_is_refused(engine: Engine) -> None:
    first = engine.launch("sleepy", params={"seconds": "30"})
    with pytest.raises(DuplicateJob, match=f"job {first.id}"):
        engine.launch("sleepy", params={"seconds": "30"})
    forced = engine.launch("sleepy", params={"seconds": "30"}, force=True)
    assert forced.id != first.id
    assert len(engine.store.live()) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage_name": "sleepy", "variant": "v4; rm -rf /"}, "is not a valid name"),
        ({"stage_name": "sleepy", "variant": "../../etc"}, "is not a valid name"),
        ({"stage_name": "sleepy", "variant": "v9"}, "unknown variant 'v9'"),
        ({"stage_name": "sleepy", "params": {"out": "../../outside.txt"}}, "is not an acceptable path"),
        ({"stage_name": "sleepy", "params": {"out": "a;rm -rf ~"}}, "is not an acceptable path"),
        ({"stage_name": "sleepy", "params": {"out": "--help"}}, "is not an acceptable path"),
        ({"stage_name": "sleepy", "params": {"seconds": "soon"}}, "is not a number"),
        ({"stage_name": "sleepy", "params": {"colour": "red"}}, "has no option --colour"),
        ({"stage_name": "sleepy", "backend": "slurm"}, "unknown backend 'slurm'"),
        ({"stage_name": "rm -rf /"}, "is not a valid name"),
        ({"stage_name": "nosuch"}, "unknown stage 'nosuch'"),
        ({"stage_name": "ghost"}, "not built yet"),
        ({"stage_name": "manifest", "variant": "v4_sota", "params": {"grid": "grid_huge"}}, "unknown grid"),
        ({"stage_name": "manifest"}, "needs --variant"),
        # from a new user's walk: each started a score job that failed three seconds later
        (
            {"stage_name": "score", "variant": "v4_sota", "params": {"cutouts": "cuts", "catalog": "x.csv"}},
            "options --catalog and --cutouts: give one or the other",
        ),
        (
            {"stage_name": "score", "variant": "v4_sota", "params": {"cutouts": "nowhere"}},
            "--cutouts: nowhere is not a folder",
        ),
        # from the next walk: each started a job that failed once its file was read
        (
            {"stage_name": "score", "variant": "v4_sota", "params": {"catalog": "/nonexistent.csv"}},
            "--catalog: /nonexistent.csv is not a file",
        ),
        (
            {"stage_name": "score", "variant": "v4_sota", "params": {"lookalikes": "catalogs"}},
            "--lookalikes: catalogs is not a file",
        ),
    ],
)
def test_bad_launches_are_refused_before_anything_runs(engine: Engine, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        engine.launch(**kwargs)
    assert engine.store.list() == []
    assert not engine.workspace.logs_dir.exists()


def test_shipped_stages_do_not_pretend() -> None:
    from core.stages import SHIPPED

    names = {s.name for s in SHIPPED}
    assert names == {
        "demo",
        "select",
        "manifest",
        "coadds",
        "inject",
        "train",
        "eval",
        "cutouts",
        "score",
        "retrain",
        "triage",
    }
    for stage in SHIPPED:
        assert stage.module.startswith("jobs.")
        # available exactly when the module exists on disk
        exists = (Path(__file__).parents[2] / Path(*stage.module.split("."))).with_suffix(".py").exists()
        assert stage.available() == exists


def test_job_environment_carries_no_credentials(engine: Engine, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    job = engine.wait(engine.launch("sleepy").id)
    rows = json.dumps([j.to_dict() for j in engine.store.list()])
    assert "s3cr3t-value" not in rows
    assert "s3cr3t-value" not in Path(job.log_path).read_text()
    assert "s3cr3t-value" not in engine.store.path.read_bytes().decode("latin-1")


def test_a_stage_on_an_untrained_run_is_refused_before_launch(engine: Engine) -> None:
    """Issue 15: `halo stage eval --run nosuchrun` started, then failed 0.3 s later."""
    from core.errors import UsageError
    from core.layout import runs_dir

    with pytest.raises(UsageError, match="run 'nosuchrun' has not been trained.*no trained run here yet"):
        engine.launch("eval", variant="v4_sota", params={"run": "nosuchrun"})
    with pytest.raises(UsageError, match="'v4_sota-grid_sota-convnext_v4sota' has not been trained"):
        engine.launch("score", variant="v4_sota")  # the variant's default run
    (runs_dir(engine.workspace.root) / "r1").mkdir(parents=True)
    (runs_dir(engine.workspace.root) / "r1" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(UsageError, match="trained runs here: r1"):
        engine.launch("eval", variant="v4_sota", params={"run": "r2"})
    assert engine.store.list() == []  # nothing was recorded


def test_a_launch_whose_input_is_not_written_yet_is_refused_before_it_starts(engine: Engine) -> None:
    """Issue 15: a launch with a missing input returned 0 and failed 0.3 s later. Each stage's
    input, where an earlier stage writes it, is looked for first; the error names the stage."""
    from core.errors import UsageError
    from core.layout import manifest_dir, parent_dir, stamps_dir

    root, config = engine.workspace.root, engine.workspace.config
    parent = parent_dir(root, config.variants["v4_sota"].parent_sample) / "parent.parquet"
    with pytest.raises(
        UsageError, match=f"manifest reads {parent}, which is not there yet; .* halo stage select"
    ):
        engine.launch("manifest", variant="v4_sota")
    manifest = manifest_dir(root, "v4_sota", "grid_small") / "manifest.parquet"
    for stage in ("inject", "coadds"):
        with pytest.raises(
            UsageError, match=f"reads {manifest}.*halo stage manifest --variant v4_sota --grid"
        ):
            engine.launch(stage, variant="v4_sota", params={"grid": "grid_small"})
    with pytest.raises(UsageError, match="train reads .*stamps.*halo stage inject"):
        engine.launch("train", variant="v4_sota")
    with pytest.raises(UsageError, match="cutouts reads .*parent.parquet"):
        engine.launch("cutouts", variant="v4_sota")
    assert engine.store.list() == []  # nothing was recorded
    parent.parent.mkdir(parents=True)
    parent.write_bytes(b"")
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b"")
    stamps_dir(root, "v4_sota", "grid_sota").mkdir(parents=True)
    for stage, params in (("manifest", {}), ("inject", {"grid": "grid_small"}), ("train", {})):
        engine.validate(stage, "v4_sota", params, None)  # now each may start
    (root / "elsewhere.csv").write_text("ra,dec\n1,2\n")
    engine.validate("cutouts", "v4_sota", {"catalog": "elsewhere.csv"}, None)  # its own positions
