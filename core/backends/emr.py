"""The EMR backend: a stage runs as a `command-runner.jar` spark-submit step on a running
cluster; its state comes from `list_steps` (one call per cluster per look, adaptive retries);
its logs from `<LogUri>/<cluster>/steps/<step>/{stderr,stdout,controller}.gz`, which EMR
writes minutes late. The job's uid is in the step name, so a launch first refuses when a live
step already carries it. No credential is ever written: boto3's standard chain supplies them.
Imported on every `halo` start (the engine looks at EMR jobs too): keep its imports lazy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.backends.base import Backend
from core.errors import BackendUnreachable, HaloError, IllegalTransition, UsageError
from core.safe_io import atomic_write, private_dir
from core.states import JobState

if TYPE_CHECKING:
    from core.stages import Stage
    from core.store import Job

STEP_STATES = {
    "PENDING": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "CANCEL_PENDING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "CANCELLED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "INTERRUPTED": JobState.FAILED,
}
LIVE = ["PENDING", "RUNNING", "CANCEL_PENDING"]
LOG_FILES = ("controller", "stderr", "stdout")


def client(region: str, patient: bool = True) -> Any:
    """An EMR client: `patient` for work on a step (adaptive retries, as EMR throttles);
    otherwise a quick one for a glance at states (one attempt, 1 s to connect and 1 s to
    answer), so that a look never waits on an unreachable or hung AWS for more than ~2 s a
    call."""
    import boto3
    from botocore.config import Config

    if patient:  # a user's own AWS_MAX_ATTEMPTS / AWS_RETRY_MODE stand, as for any AWS tool
        mode = os.environ.get("AWS_RETRY_MODE") or "adaptive"
        config = Config(retries={"mode": mode, **_attempts()})
    else:
        once = {"mode": "standard", "total_max_attempts": 1}  # max_attempts=1 still tried twice
        config = Config(retries=once, connect_timeout=1, read_timeout=1)
    return boto3.client("emr", region_name=region, config=config)


def _attempts() -> dict[str, int]:
    """Attempts for work on a step: $AWS_MAX_ATTEMPTS where a user set it (all attempts, the
    first included, as the AWS CLI reads it), else 10 retries."""
    try:
        return {"total_max_attempts": max(1, int(os.environ["AWS_MAX_ATTEMPTS"]))}
    except (KeyError, ValueError):
        return {"max_attempts": 10}


def _call(what: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as err:  # botocore's errors: the backend could not be reached or refused
        raise BackendUnreachable(f"EMR {what} failed: {err}") from None


def step_name(uid: str, job_id: int, stage: str) -> str:
    return f"halo:{uid}:{job_id}:{stage}"


# spark-submit's main file: the Spark entry point, imported from the bundle (core names the
# module; it never reads a file of jobs/ for it)
SPARK_ENTRY = b"from jobs.runtime.spark import main\n\nraise SystemExit(main())\n"


def code_bundle() -> tuple[bytes, bytes]:
    """A zip of the `core` and `jobs` packages for --py-files, and the Spark entry point."""
    import io
    import zipfile

    root = Path(__file__).resolve().parents[2]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("core", "jobs"):
            for path in sorted((root / package).rglob("*.py")):
                info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(2026, 1, 1, 0, 0, 0))
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue(), SPARK_ENTRY


def upload_code(s3_prefix: str) -> tuple[str, str]:
    """Put the code bundle under `<s3_prefix>/code/<digest>/` (once per version)."""
    import hashlib

    import boto3

    from core.storage import split_s3

    bundle, entry = code_bundle()
    digest = hashlib.sha256(bundle + entry).hexdigest()[:16]
    bucket, key = split_s3(f"{s3_prefix.rstrip('/')}/code/{digest}")
    s3 = boto3.client("s3")
    for name, body in (("halo.zip", bundle), ("spark_pipeline.py", entry)):
        _call("code upload", s3.put_object, Bucket=bucket, Key=f"{key}/{name}", Body=body)
    base = f"s3://{bucket}/{key}"
    return f"{base}/halo.zip", f"{base}/spark_pipeline.py"


def spark_submit(emr: Any, py_files: str, entry: str, stage_args: list[str]) -> list[str]:
    """The step's command line: spark-submit in the configured deploy mode and sizes."""
    spark = emr.spark
    argv = [
        "spark-submit",
        "--deploy-mode",
        spark.deploy_mode,
        "--driver-memory",
        spark.driver_memory,
        "--executor-memory",
        spark.executor_memory,
        "--executor-cores",
        str(spark.executor_cores),
        "--num-executors",
        str(spark.num_executors),
        "--conf",
        f"spark.sql.parquet.compression.codec={spark.parquet_codec}",
    ]
    for key, value in sorted(spark.conf.items()):
        argv += ["--conf", f"{key}={value}"]
    return [*argv, "--py-files", py_files, entry, *stage_args]


def step_args(emr: Any, config: Any, stage: str, variant: str, params: dict[str, Any]) -> list[str]:
    """spark_pipeline.py's arguments for any stage with a Spark entry: the workspace is the S3
    prefix (the same layout as locally, core/layout.py), the config the variant's own. What
    the stage reads and writes there is the stage's business (its `spark_run`)."""
    from core.config import spark_config
    from core.layout import grid_of

    grid = grid_of(config, variant, params.get("grid"))
    return [
        "--stage",
        stage,
        "--workspace",
        emr.s3_prefix,
        "--variant",
        variant,
        "--config",
        json.dumps(spark_config(config, variant, grid), sort_keys=True),
        "--params",
        json.dumps(params, sort_keys=True),
        "--codec",
        emr.spark.parquet_codec,
    ]


def submit(emr_config: Any, name: str, uid: str, argv: list[str], api: Any = None) -> dict[str, Any]:
    """Add the step, unless a live step already carries this job's uid."""
    if not emr_config.cluster_id:
        raise UsageError("backends.emr.cluster_id is not set (halo.toml or HALO_EMR_CLUSTER_ID)")
    api = api or client(emr_config.region)
    live = _call("list_steps", api.list_steps, ClusterId=emr_config.cluster_id, StepStates=LIVE)["Steps"]
    for step in live:
        if f":{uid}:" in step["Name"]:
            raise UsageError(
                f"step {step['Id']} ({step['Name']}) already runs this job on {emr_config.cluster_id}"
            )
    step = {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": argv},
    }
    added = _call("add_job_flow_steps", api.add_job_flow_steps, JobFlowId=emr_config.cluster_id, Steps=[step])
    return {
        "cluster": emr_config.cluster_id,
        "step": added["StepIds"][0],
        "name": name,
        "log_uri": emr_config.log_uri,
    }


def poll(
    region: str, handles: list[dict[str, Any]], api: Any = None, patient: bool = True
) -> dict[str, dict[str, Any]]:
    """Step id -> its Status, with one list_steps call per cluster (paged only if needed)."""
    api = api or client(region, patient)
    wanted: dict[str, set[str]] = {}
    for handle in handles:
        wanted.setdefault(handle["cluster"], set()).add(handle["step"])
    found: dict[str, dict[str, Any]] = {}
    for cluster, steps in wanted.items():
        kwargs: dict[str, Any] = {"ClusterId": cluster}
        while True:
            page = _call("list_steps", api.list_steps, **kwargs)
            for step in page["Steps"]:
                if step["Id"] in steps:
                    found[step["Id"]] = step["Status"]
            if steps <= found.keys() or "Marker" not in page:
                break
            kwargs["Marker"] = page["Marker"]
    return found


def outcome(status: dict[str, Any]) -> tuple[JobState, str | None]:
    """The job state for a step status, and the failure reason (FailureDetails kept)."""
    state = STEP_STATES[status["State"]]
    if status["State"] == "INTERRUPTED":
        return state, "interrupted: the step stopped before it finished"
    details = status.get("FailureDetails") or {}
    if state is JobState.FAILED:
        parts = [details.get("Reason"), details.get("Message"), details.get("LogFile")]
        return state, "EMR step failed: " + (" | ".join(p for p in parts if p) or "no details given")
    return state, None


def cancel(region: str, handle: dict[str, Any], api: Any = None) -> None:
    api = api or client(region)
    _call(
        "cancel_steps",
        api.cancel_steps,
        ClusterId=handle["cluster"],
        StepIds=[handle["step"]],
        StepCancellationOption="SEND_INTERRUPT",
    )


def fetch_logs(handle: dict[str, Any]) -> str | None:
    """The step's controller, stderr and stdout logs from S3, or None while none has arrived."""
    import gzip

    import boto3

    from core.storage import split_s3

    bucket, prefix = split_s3(f"{handle['log_uri'].rstrip('/')}/{handle['cluster']}/steps/{handle['step']}")
    s3 = boto3.client("s3")
    parts = []
    for name in LOG_FILES:
        try:
            body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}.gz")["Body"].read()
        except Exception:  # not there yet: EMR uploads step logs minutes late
            continue
        try:
            text = gzip.decompress(body).decode("utf-8", "replace")
        except OSError:
            text = body.decode("utf-8", "replace")
        parts.append(f"==> {name} <==\n{text}")
    return "\n".join(parts) if parts else None


class EmrBackend(Backend):
    """Stages with a Spark entry (`Stage.spark`) as spark-submit steps on the configured cluster."""

    name = "emr"
    remote = True
    late_logs = "EMR writes step logs to S3 a few minutes after the step starts"

    @property
    def config(self) -> Any:
        return self.workspace.config.backends.emr

    @property
    def poll_seconds(self) -> float:
        return self.config.poll_seconds

    def check(self, stage: Stage) -> None:
        if not stage.spark:
            from core.stages import SHIPPED

            spark = ", ".join(s.name for s in SHIPPED if s.spark)
            raise UsageError(f"stage {stage.name!r} has no Spark entry point; on EMR: {spark}")

    def launch(self, job: Job, stage: Stage, variant: str | None, params: dict[str, Any]) -> Job:
        """Upload the code, add the step; the job stays queued until the step runs."""
        cfg = self.config
        try:
            py_files, entry = upload_code(cfg.s3_prefix)
            args = step_args(cfg, self.workspace.config, stage.name, str(variant), params)
            argv = spark_submit(cfg, py_files, entry, args)
            handle = submit(cfg, step_name(job.uid, job.id, job.stage), job.uid, argv)
        except HaloError as err:
            self.store.transition(job.id, JobState.FAILED, failure=f"could not submit: {err}")
            raise
        return self.store.update(job.id, handle=handle, argv=argv, log_path=str(self.log_path(job.id)))

    def poll(self, jobs: list[Job], patient: bool = True) -> list[Job]:
        steps = [job for job in jobs if job.handle]
        handles = [job.handle for job in steps if job.handle]
        statuses = poll(self.config.region, handles, patient=patient) if steps else {}
        out = []
        for job in jobs:
            try:
                out.append(self._reconcile(job, statuses) if job.handle else job)
            except IllegalTransition:  # another process recorded its end first (a cancel)
                out.append(self.store.get(job.id))
        return out

    def _reconcile(self, job: Job, statuses: dict[str, Any]) -> Job:
        assert job.handle is not None  # poll reconciles only the submitted
        status = statuses.get(job.handle["step"])
        if status is None:
            return job
        state, failure = outcome(status)
        if state is JobState.QUEUED or state is job.state:
            return job
        if job.state is JobState.QUEUED:
            job = self.store.transition(job.id, JobState.RUNNING)
        if state.terminal:
            job = self.store.transition(job.id, state, failure=failure)
        return job

    def cancel(self, job: Job) -> Job:
        if job.handle is not None:
            cancel(self.config.region, job.handle)
        return self.store.transition(
            job.id, JobState.CANCELLED, failure="cancelled by the user (cancel_steps)"
        )

    def fetch_logs(self, job: Job) -> bool:
        """Bring the step's logs from S3 into the job's local log; False while none exist."""
        if not job.handle:
            return False
        text = fetch_logs(job.handle)
        if text is None:
            return False
        path = self.log_path(job.id)
        private_dir(path.parent)
        atomic_write(path, text)
        return True

    def waiting_for_logs(self, job: Job) -> str:
        handle = job.handle or {}
        where = f"{handle.get('log_uri', '?')}/{handle.get('cluster', '?')}/steps/{handle.get('step', '?')}/"
        return f"waiting for logs: EMR writes them to {where} a few minutes after the step starts"
