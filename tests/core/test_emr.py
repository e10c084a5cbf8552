"""The EMR backend against moto's server on 127.0.0.1: steps submitted with the right
arguments, driven through their states by the test (moto never advances them), followed by
the engine and `halo jobs watch`, logs from the LogUri, retried throttling, refused
duplicates, and no credential in the store or the logs."""

import gzip
import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from core.backends import emr
from core.engine import Engine
from core.errors import BackendUnreachable, UsageError
from core.stages import SHIPPED
from core.states import JobState
from core.workspace import Workspace

SECRET = "wJalrXUtnFEMI-halo-test-secret"


@pytest.fixture
def emr_ws(workspace: Path, emr_cluster, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    cluster = emr_cluster(workspace)
    return workspace, cluster


def _step(cluster: str, step_id: str):
    from moto.emr.models import emr_backends

    backend = emr_backends["123456789012"]["us-east-1"]
    return next(s for s in backend.clusters[cluster].steps if s.id == step_id)


SPARK_STAGES = [stage.name for stage in SHIPPED if stage.spark]


def test_select_cutouts_and_inject_have_spark_entries() -> None:
    assert set(SPARK_STAGES) == {"select", "cutouts", "inject"}


@pytest.mark.parametrize("stage", SPARK_STAGES)
def test_each_spark_stage_runs_as_a_step_through_the_one_backend(
    emr_ws, halo, cancel_steps_sent, stage: str
) -> None:
    """Uploaded code, the step's arguments (the same for every stage: the stage finds its
    paths under the workspace prefix), polling, duplicate refusal, logs and cancel."""
    root, cluster = emr_ws
    engine = Engine(Workspace(root))
    job = engine.launch(stage, variant="v4_sota", params={}, backend="emr")
    assert job.state is JobState.QUEUED and job.handle["cluster"] == cluster
    api = boto3.client("emr", region_name="us-east-1")
    step = next(s for s in api.list_steps(ClusterId=cluster)["Steps"] if s["Id"] == job.handle["step"])
    assert step["Name"] == f"halo:{job.uid}:{job.id}:{stage}"
    assert step["Config"]["Jar"] == "command-runner.jar"
    args = step["Config"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert (
        args[args.index("--executor-memory") + 1] == "18g" and args[args.index("--num-executors") + 1] == "50"
    )
    assert "spark.sql.parquet.compression.codec=zstd" in args
    py_files, entry = args[args.index("--py-files") + 1], args[args.index("--py-files") + 2]
    assert py_files.startswith("s3://halo-data/ws/code/") and entry.endswith("/spark_pipeline.py")
    step_args = args[args.index("--py-files") + 3 :]
    assert step_args[:6] == ["--stage", stage, "--workspace", "s3://halo-data/ws", "--variant", "v4_sota"]
    config = json.loads(step_args[step_args.index("--config") + 1])
    assert set(config["variants"]) == {"v4_sota", "v3_color_relaxed"}  # the variant and its parent's
    assert json.loads(step_args[step_args.index("--params") + 1]) == job.params
    bucket, key = py_files.removeprefix("s3://").split("/", 1)
    bundle = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert f"jobs/stages/{stage}.py".encode() in bundle and b"core/layout.py" in bundle

    with pytest.raises(UsageError, match="already"):
        engine.launch(stage, variant="v4_sota", params={}, backend="emr")
    with pytest.raises(UsageError, match="already runs this job"):  # the live step carries the uid
        emr.submit(engine.workspace.config.backends.emr, "x", job.uid, ["true"])
    assert engine.refresh()[0].state is JobState.RUNNING  # moto's steps start RUNNING

    waiting = halo("jobs", "logs", str(job.id), check=0)
    assert "waiting for logs" in waiting.stderr
    key = f"emr/{cluster}/steps/{job.handle['step']}/stdout.gz"
    boto3.client("s3").put_object(Bucket="halo-logs", Key=key, Body=gzip.compress(f"{stage} ran\n".encode()))
    assert f"{stage} ran" in halo("jobs", "logs", str(job.id)).stdout

    sent = cancel_steps_sent  # moto has no cancel_steps: answered as AWS does
    cancelled = engine.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED and "cancel_steps" in cancelled.failure
    assert sent == [
        {"ClusterId": cluster, "StepIds": [job.handle["step"]], "StepCancellationOption": "SEND_INTERRUPT"}
    ]


@pytest.fixture
def cancel_steps_sent():
    """Record each CancelSteps request the default boto3 session sends and answer it with
    AWS's success body (moto's server does not implement the action)."""
    sent: list[dict] = []

    def answer(request, **_):
        sent.append(json.loads(request.body))
        body = b'{"CancelStepsInfoList": []}'
        return AWSResponse(request.url, 200, {}, _Raw(body))

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-send.emr.CancelSteps", answer)
    yield sent
    boto3.DEFAULT_SESSION = None  # the next client gets a fresh default session


def test_a_stage_without_a_spark_entry_is_refused_on_emr(emr_ws) -> None:
    root, _ = emr_ws
    with pytest.raises(UsageError, match="no Spark entry point; on EMR: select, inject, cutouts"):
        Engine(Workspace(root)).launch("manifest", variant="v4_sota", backend="emr")


def test_steps_are_followed_to_success_and_to_failure_with_details(emr_ws, halo, monkeypatch) -> None:
    root, cluster = emr_ws
    engine = Engine(Workspace(root))
    good = engine.launch("inject", variant="v4_sota", backend="emr")
    _step(cluster, good.handle["step"]).state = "PENDING"  # moto starts steps as RUNNING
    bad = engine.launch("inject", variant="v3_color_relaxed", backend="emr")
    _step(cluster, bad.handle["step"]).state = "PENDING"
    assert {j.id: j.state for j in engine.refresh()} == {good.id: JobState.QUEUED, bad.id: JobState.QUEUED}
    watcher = subprocess.Popen(
        [halo.executable, "jobs", "watch", str(good.id), str(bad.id), "--json", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HALO_WORKSPACE": str(root)},
    )
    first = [json.loads(watcher.stdout.readline()) for _ in range(2)]  # it has seen both, queued
    assert {c["state"] for c in first} == {"queued"}
    _step(cluster, good.handle["step"]).state = "RUNNING"
    _step(cluster, bad.handle["step"]).state = "RUNNING"
    first += [json.loads(watcher.stdout.readline()) for _ in range(2)]  # wait on what it saw: running
    assert {c["state"] for c in first[2:]} == {"running"}
    from moto.emr import models

    def status(step) -> dict:
        out = {
            "State": step.state,
            "StateChangeReason": {},
            "Timeline": {"CreationDateTime": step.creation_date_time},
        }
        if step.state == "FAILED":
            out["FailureDetails"] = {
                "Reason": "Unknown Error.",
                "Message": "Exception in thread main",
                "LogFile": "s3://halo-logs/emr/stderr.gz",
            }
        return out

    monkeypatch.setattr(models.Step, "status", property(status))
    _step(cluster, good.handle["step"]).state = "COMPLETED"
    _step(cluster, bad.handle["step"]).state = "FAILED"
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 1  # one of them failed
    changes = first + [json.loads(line) for line in out.splitlines()]
    assert [c["state"] for c in changes if c["job"] == good.id] == ["queued", "running", "succeeded"]
    failed = [c for c in changes if c["job"] == bad.id][-1]
    assert failed["state"] == "failed" and "Exception in thread main" in failed["failure"]
    assert "s3://halo-logs/emr/stderr.gz" in engine.store.get(bad.id).failure


def test_logs_show_once_they_reach_the_log_uri(emr_ws, halo) -> None:
    root, cluster = emr_ws
    engine = Engine(Workspace(root))
    job = engine.launch("inject", variant="v4_sota", backend="emr")
    waiting = halo("jobs", "logs", str(job.id), check=0)
    assert "waiting for logs" in waiting.stderr and f"s3://halo-logs/emr/{cluster}/steps/" in waiting.stderr
    key = f"emr/{cluster}/steps/{job.handle['step']}/stderr.gz"
    boto3.client("s3").put_object(
        Bucket="halo-logs", Key=key, Body=gzip.compress(b"INFO Client: Application report\n")
    )
    shown = halo("jobs", "logs", str(job.id), check=0)
    assert "==> stderr <==" in shown.stdout and "Application report" in shown.stdout
    db = (root / ".halo" / "halo.db").read_bytes() + b"".join(
        p.read_bytes() for p in (root / ".halo").rglob("*.log")
    )
    assert SECRET.encode() not in db


def test_throttling_is_retried(emr_ws) -> None:
    root, cluster = emr_ws
    api = emr.client("us-east-1")
    throttled = []

    def throttle(request, **_):
        if len(throttled) < 2:
            throttled.append(1)
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(body))
        return None

    api.meta.events.register("before-send.emr.ListSteps", throttle)
    assert emr.poll("us-east-1", [], api=api) == {}
    engine = Engine(Workspace(root))
    job = engine.launch("inject", variant="v4_sota", backend="emr")
    assert emr.poll("us-east-1", [job.handle], api=api)[job.handle["step"]]["State"] == "RUNNING"
    assert len(throttled) == 2


def test_a_users_aws_max_attempts_bounds_the_retries(emr_ws, monkeypatch) -> None:
    """$AWS_MAX_ATTEMPTS, as a user sets it for any AWS tool, stands over halo's 10 attempts."""
    root, cluster = emr_ws
    job = Engine(Workspace(root)).launch("inject", variant="v4_sota", backend="emr")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    api = emr.client("us-east-1")
    throttled = []

    def throttle(request, **_):
        throttled.append(1)
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(body))

    api.meta.events.register("before-send.emr.ListSteps", throttle)
    with pytest.raises(BackendUnreachable, match="Rate exceeded"):
        emr.poll("us-east-1", [job.handle], api=api)
    assert len(throttled) == 1


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def test_cancel_asks_for_cancel_steps() -> None:
    api = boto3.client("emr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(api) as stub:
        stub.add_response(
            "cancel_steps",
            {"CancelStepsInfoList": []},
            {"ClusterId": "j-ABC", "StepIds": ["s-1"], "StepCancellationOption": "SEND_INTERRUPT"},
        )
        emr.cancel("us-east-1", {"cluster": "j-ABC", "step": "s-1"}, api=api)
        stub.assert_no_pending_responses()


def test_step_states_map_to_job_states() -> None:
    assert emr.outcome({"State": "PENDING"}) == (JobState.QUEUED, None)
    assert emr.outcome({"State": "CANCEL_PENDING"}) == (JobState.RUNNING, None)
    assert emr.outcome({"State": "COMPLETED"}) == (JobState.SUCCEEDED, None)
    assert emr.outcome({"State": "CANCELLED"}) == (JobState.CANCELLED, None)
    assert emr.outcome({"State": "INTERRUPTED"})[0] is JobState.FAILED
    state, reason = emr.outcome(
        {"State": "FAILED", "FailureDetails": {"Reason": "OOM", "Message": "exit 137"}}
    )
    assert state is JobState.FAILED and reason == "EMR step failed: OOM | exit 137"


def test_the_spark_entry_runs_from_the_uploaded_bundle_alone(tmp_path) -> None:
    """spark-submit's main file and the --py-files zip are all a cluster gets: the entry
    imports the Spark step from the zip (no file of a checkout is read for it)."""
    import os
    import subprocess
    import sys
    import sysconfig

    from core.backends.emr import code_bundle

    bundle, entry = code_bundle()
    (tmp_path / "halo.zip").write_bytes(bundle)
    (tmp_path / "spark_pipeline.py").write_bytes(entry)
    # -S: no site hooks, so not this checkout's editable install; the libraries, then the zip
    path = os.pathsep.join([str(tmp_path / "halo.zip"), sysconfig.get_paths()["purelib"]])
    done = subprocess.run(
        [sys.executable, "-S", str(tmp_path / "spark_pipeline.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
    )
    assert done.returncode == 0 and "--stage" in done.stdout, done.stderr[-2000:]
    assert "halo.zip" in subprocess.run(
        [sys.executable, "-S", "-c", "import jobs.runtime.spark as s; print(s.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path},
    ).stdout  # fmt: skip
