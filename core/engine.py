"""The engine: every launch, look and cancel of a job goes through here and lands in the store."""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import jobresult
from core.backends import emr, local
from core.errors import BackendUnreachable, HaloError, UsageError
from core.names import check_name
from core.safe_io import atomic_write, private_dir
from core.stages import Stage, registry
from core.states import JobState
from core.store import Job
from core.workspace import Workspace

BACKENDS = ("local", "emr")
# A job still queued this long after it was recorded lost its launcher before it started.
QUEUED_TIMEOUT_S = 60.0


class Engine:
    remote_error: str | None = None

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = workspace.store

    # -- paths -----------------------------------------------------------------------

    def log_path(self, job_id: int) -> Path:
        return self.workspace.logs_dir / f"{job_id}.log"

    def _exit_path(self, job_id: int) -> Path:
        return self.workspace.logs_dir / f"{job_id}.exit"

    def _result_path(self, job_id: int) -> Path:
        return self.workspace.logs_dir / f"{job_id}.result.json"

    # -- launching -------------------------------------------------------------------

    def stages(self) -> dict[str, Stage]:
        return registry(self.workspace.config.stages)

    def stage(self, name: str) -> Stage:
        check_name("stage", name)
        stages = self.stages()
        if name not in stages:
            raise UsageError(f"unknown stage {name!r}; known stages: {', '.join(stages)}")
        return stages[name]

    def validate(
        self, stage_name: str, variant: str | None, params: dict[str, Any], backend: str | None
    ) -> tuple[Stage, str | None, dict[str, Any], str]:
        """Check a launch against the registry and the config; return it normalised."""
        config = self.workspace.config
        stage = self.stage(stage_name)
        if variant is not None:
            check_name("variant", variant)
            if variant not in config.variants:
                raise UsageError(f"unknown variant {variant!r}; known: {', '.join(config.variants)}")
        elif stage.needs_variant:
            raise UsageError(f"stage {stage.name!r} needs --variant (one of {', '.join(config.variants)})")
        parsed: dict[str, Any] = {}
        for key, raw in params.items():
            param = stage.param(key)
            value = param.parse(raw)
            table = {"grid": config.grids, "preset": config.presets}.get(param.kind)
            if table is not None and value not in table:
                raise UsageError(f"unknown {param.kind} {value!r}; known: {', '.join(table)}")
            parsed[param.name] = value
        for param in stage.params:
            if param.name not in parsed and param.default is not None:
                parsed[param.name] = param.parse(param.default)
        backend = backend or config.backends.default
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "emr" and stage.name not in emr.SPARK_STAGES:
            raise UsageError(
                f"stage {stage.name!r} has no Spark entry point; on EMR: {', '.join(emr.SPARK_STAGES)}"
            )
        if not stage.available(self.workspace.root):
            raise UsageError(f"stage {stage.name!r} is not built yet (no module {stage.module})")
        return stage, variant, parsed, backend

    def launch(
        self,
        stage_name: str,
        variant: str | None = None,
        params: dict[str, Any] | None = None,
        backend: str | None = None,
        force: bool = False,
    ) -> Job:
        """Validate, record and start a job; refuse a duplicate of a live one unless `force`."""
        stage, variant, params, backend = self.validate(stage_name, variant, params or {}, backend)
        self.refresh(remote=backend == "emr")  # a finished duplicate must not block the launch
        job = self.store.create(stage.name, variant, params, backend, force=force)
        if backend == "emr":
            return self._launch_emr(job, variant, params)
        argv = stage.argv(self.workspace.root, variant, params)
        log_path = self.log_path(job.id)
        try:
            handle = local.launch(
                argv, log_path, self._exit_path(job.id), self.workspace.root, self._env(job, stage)
            )
        except OSError as err:
            return self.store.transition(
                job.id, JobState.FAILED, failure=f"could not start: {err}", argv=argv
            )
        return self.store.transition(
            job.id, JobState.RUNNING, handle=handle, argv=argv, log_path=str(log_path)
        )

    def _launch_emr(self, job: Job, variant: str | None, params: dict[str, Any]) -> Job:
        """Upload the code, add the step; the job stays queued until the step runs."""
        config = self.workspace.config
        cfg = config.backends.emr
        try:
            grid = params.get("grid") or config.variants[variant].default_grid
            py_files, entry = emr.upload_code(cfg.s3_prefix)
            args = emr.inject_args(cfg, variant, grid, config.variants[variant].injection, params)
            argv = emr.spark_submit(cfg, py_files, entry, args)
            handle = emr.submit(cfg, emr.step_name(job.uid, job.id, job.stage), job.uid, argv)
        except HaloError as err:
            self.store.transition(job.id, JobState.FAILED, failure=f"could not submit: {err}")
            raise
        return self.store.update(job.id, handle=handle, argv=argv, log_path=str(self.log_path(job.id)))

    def fetch_logs(self, job: Job) -> bool:
        """Bring an EMR job's step logs from S3 into its local log; False while none exist."""
        if job.backend != "emr" or not job.handle:
            return self.log_path(job.id).exists()
        text = emr.fetch_logs(job.handle)
        if text is None:
            return False
        path = self.log_path(job.id)
        private_dir(path.parent)
        atomic_write(path, text)
        return True

    def _env(self, job: Job, stage: Stage) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HALO_JOB_ID=str(job.id),
            HALO_WORKSPACE=str(self.workspace.root),
            PYTHONUNBUFFERED="1",
        )
        env[jobresult.ENV_VAR] = str(self._result_path(job.id))
        if stage.pythonpath:
            paths = [str(self.workspace.root / p) for p in stage.pythonpath]
            env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env

    # -- looking ---------------------------------------------------------------------

    def refresh(self, remote: bool = True, strict: bool = True) -> list[Job]:
        """Reconcile every job the store has as live with what its process (or step) is doing.
        Local jobs never wait on a remote backend: with `remote=False` EMR steps are not
        looked at; with `strict=False` an unreachable EMR is a quick look that gives up,
        leaving its jobs as last seen and the reason in `remote_error`."""
        live = self.store.live()
        steps = [j for j in live if j.backend == "emr" and j.handle] if remote else []
        statuses: dict[str, Any] = {}
        self.remote_error = None
        if steps:
            try:
                region = self.workspace.config.backends.emr.region
                statuses = emr.poll(region, [j.handle for j in steps], patient=strict)
            except BackendUnreachable as err:
                if strict:
                    raise
                self.remote_error = f"{err} ({len(steps)} EMR job(s) shown as last seen)"
        out = []
        for job in live:
            if job.backend != "emr":
                out.append(self._reconcile(job))
            else:  # looked at above, or left as last seen
                out.append(self._reconcile_step(job, statuses) if job in steps else job)
        return out

    def _reconcile_step(self, job: Job, statuses: dict[str, Any]) -> Job:
        status = statuses.get(job.handle["step"])
        if status is None:
            return job
        state, failure = emr.outcome(status)
        if state is JobState.QUEUED or state is job.state:
            return job
        if job.state is JobState.QUEUED:
            job = self.store.transition(job.id, JobState.RUNNING)
        if state.terminal:
            job = self.store.transition(job.id, state, failure=failure)
        return job

    def _reconcile(self, job: Job) -> Job:
        """A local job, against its process group and exit file (EMR steps: _reconcile_step)."""
        if job.state is JobState.QUEUED:
            if job.handle is None and time.time() - job.created > QUEUED_TIMEOUT_S:
                return self.store.transition(
                    job.id, JobState.FAILED, failure="lost: its launcher ended before it started"
                )
            return job
        if job.handle is None:
            return self.store.transition(job.id, JobState.FAILED, failure="lost: no process handle recorded")
        found = local.probe(job.handle)
        if found.alive:
            return job
        if found.exit_code is None:
            return self._finish(
                job, JobState.FAILED, None, "lost: the process ended without recording an exit code"
            )
        if found.exit_code == 0:
            return self._finish(job, JobState.SUCCEEDED, 0, None)
        return self._finish(job, JobState.FAILED, found.exit_code, _exit_reason(found.exit_code))

    def _finish(self, job: Job, state: JobState, code: int | None, failure: str | None) -> Job:
        outputs, summary = jobresult.read(self._result_path(job.id))
        ended = _mtime(self._exit_path(job.id))
        fields: dict[str, Any] = {
            "exit_code": code,
            "failure": failure,
            "outputs": outputs,
            "summary": summary,
        }
        if ended is not None:
            fields["ended"] = ended
        return self.store.transition(job.id, state, **fields)

    def get(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        if not job.state.live:
            return job
        if job.backend == "emr" and job.handle:
            statuses = emr.poll(self.workspace.config.backends.emr.region, [job.handle])
            return self._reconcile_step(job, statuses)
        return self._reconcile(job)

    def wait(
        self,
        job_id: int,
        poll: float = 0.2,
        on_change: Callable[[Job], None] | None = None,
        stop: Any = None,
    ) -> Job:
        """Block until the job ends (or `stop`, a threading.Event, is set); call `on_change`
        at each state change."""
        job = self.get(job_id)
        seen = job.state
        while not job.state.terminal:
            if stop is not None and stop.wait(poll):
                return job
            if stop is None:
                time.sleep(poll)
            job = self.get(job_id)
            if job.state != seen and on_change is not None:
                on_change(job)
            seen = job.state
        return job

    # -- cancelling ------------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        """Stop a live job (SIGTERM, then SIGKILL after the grace period) and record it."""
        job = self.get(job_id)
        if job.state.terminal:
            raise UsageError(f"job {job.id} has already ended ({job.state})")
        if job.backend == "emr" and job.handle is not None:
            emr.cancel(self.workspace.config.backends.emr.region, job.handle)
            return self.store.transition(
                job.id, JobState.CANCELLED, failure="cancelled by the user (cancel_steps)"
            )
        if job.handle is not None:
            local.cancel(job.handle, self.workspace.config.backends.local.cancel_grace_seconds)
        code = local.read_exit(job.handle) if job.handle else None
        outputs, summary = jobresult.read(self._result_path(job.id))
        return self.store.transition(
            job.id,
            JobState.CANCELLED,
            exit_code=code,
            failure="cancelled by the user",
            outputs=outputs,
            summary=summary,
        )


def cli_command(job: Job) -> str:
    """The `halo stage` command line that launches the same job again."""
    argv = ["halo", "stage", job.stage]
    if job.variant:
        argv += ["--variant", job.variant]
    for key, value in sorted(job.params.items()):
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    if job.backend != "local":
        argv += ["--backend", job.backend]
    return shlex.join(argv)


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
