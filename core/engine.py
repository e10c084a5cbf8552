"""The engine: every launch, look and cancel of a job goes through here and lands in the store."""

from __future__ import annotations

import importlib
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.backends import DEFAULT_BACKEND, check_backend, open_backend
from core.backends.base import Backend
from core.errors import BackendUnreachable, UsageError
from core.layout import job_file
from core.names import check_name
from core.stages import Stage, registry
from core.store import Job, Store
from core.workspace import Workspace

# a local launch's file and folder options: each must be one (a step reads them from S3)
_IS_KIND = {"file": Path.is_file, "folder": Path.is_dir}


class Engine:
    remote_error: str | None = None

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._backends: dict[str, Backend] = {}

    @property
    def store(self) -> Store:
        """The workspace's job store, created on first use: a launch refused by its checks
        leaves no `.halo/` behind."""
        return self.workspace.store

    def backend(self, name: str) -> Backend:
        """The backend called `name` (opened once per engine)."""
        if name not in self._backends:
            self._backends[name] = open_backend(name, self.workspace)
        return self._backends[name]

    def log_path(self, job_id: int) -> Path:
        return job_file(self.workspace.root, job_id, "log")

    def job_log(self, job_id: int) -> Path:
        """A job's log to read: refused (UnsafePath) where someone made it a link, whose
        contents would be another file's, perhaps outside the workspace."""
        from core.safe_io import refuse_link

        path = self.log_path(job_id)
        refuse_link(path)
        return path

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
        """Check a launch against the registry, the config and the backend; return it normalised."""
        config = self.workspace.config
        stage = self.stage(stage_name)
        if variant is not None:
            check_name("variant", variant)
            if variant not in config.variants:
                raise UsageError(f"unknown variant {variant!r}; known: {', '.join(config.variants)}")
            if not stage.takes_variant:  # its job would fail on the flag
                raise UsageError(f"stage {stage.name!r} takes no --variant")
        elif stage.needs_variant:
            raise UsageError(f"stage {stage.name!r} needs --variant (one of {', '.join(config.variants)})")
        parsed: dict[str, Any] = {}
        for key, raw in params.items():
            param = stage.param(key)
            value = param.parse(raw)
            tables: dict[str, dict[str, Any]] = {"grid": config.grids, "preset": config.presets}
            table = tables.get(param.kind)
            if table is not None and value not in table:
                raise UsageError(f"unknown {param.kind} {value!r}; known: {', '.join(table)}")
            parsed[param.name] = value
        for param in stage.params:
            if param.name not in parsed and param.default is not None:
                parsed[param.name] = param.parse(param.default)
            if param.required and param.name not in parsed:
                raise UsageError(f"stage {stage.name!r} needs {param.flag}")
        for group in stage.exclusive:
            given = [stage.param(name).flag for name in group if parsed.get(name) is not None]
            if len(given) > 1:
                raise UsageError(f"options {' and '.join(given)}: give one or the other")
        for name, needed in stage.requires:
            if parsed.get(name) is not None and parsed.get(needed) is None:
                raise UsageError(f"option {stage.param(name).flag} needs {stage.param(needed).flag}")
        backend = check_backend(backend or config.backends.default)
        if not self.backend(backend).remote:  # a step reads its folders from S3
            for param in stage.params:
                value = parsed.get(param.name)
                if value is None or param.kind not in ("file", "folder") or str(value).startswith("s3://"):
                    continue
                if not _IS_KIND[param.kind](self.workspace.root / value):
                    raise UsageError(f"option {param.flag}: {value} is not a {param.kind}")
        if stage.trained_run and variant is not None:
            self._check_trained(variant, parsed)
        if stage.precheck:
            module, _, function = stage.precheck.partition(":")
            getattr(importlib.import_module(module), function)(self.workspace.root, parsed)
        self.backend(backend).check(stage)
        if variant is not None and not self.backend(backend).remote:  # a step reads them from S3
            self._check_inputs(stage, variant, parsed)
        if not stage.available(self.workspace.root):
            raise UsageError(f"stage {stage.name!r} is not built yet (no module {stage.module})")
        return stage, variant, parsed, backend

    def _check_inputs(self, stage: Stage, variant: str, params: dict[str, Any]) -> None:
        """A launch whose input an earlier stage has not written yet is refused before it
        starts (it would start only to fail), naming the stage that writes it."""
        from core.layout import INPUT_MAKERS, stage_input

        for name, instead in stage.needs:
            options = (instead,) if isinstance(instead, str) else instead or ()
            if any(params.get(option) for option in options):
                continue
            path = stage_input(self.workspace.root, self.workspace.config, name, variant, params)
            if not path.exists():
                grid = f" --grid {params['grid']}" if params.get("grid") and name != "parent" else ""
                raise UsageError(
                    f"{stage.name} reads {path}, which is not there yet;"
                    f" write it first: halo stage {INPUT_MAKERS[name]} --variant {variant}{grid}"
                )

    def _check_trained(self, variant: str, params: dict[str, Any]) -> None:
        """A stage that works on a trained run is refused before launch when the run (named,
        or the variant's default) has no checkpoint: it would start only to fail."""
        from core.layout import run_checkpoint, run_name_of, runs_dir

        run = run_name_of(self.workspace.config, variant, params)
        where = runs_dir(self.workspace.root)
        if run_checkpoint(where / run) is None:
            trained = sorted({p.name for p in where.glob("*") if run_checkpoint(p) is not None})
            known = f"trained runs here: {', '.join(trained)}" if trained else "no trained run here yet"
            raise UsageError(
                f"run {run!r} has not been trained (no checkpoint in {where / run}); {known};"
                f" train it first: halo stage train --variant {variant} --run {run}"
            )

    def launch(
        self,
        stage_name: str,
        variant: str | None = None,
        params: dict[str, Any] | None = None,
        backend: str | None = None,
        force: bool = False,
    ) -> Job:
        """Validate, record and start a job; refuse a duplicate of a live one unless `force`."""
        stage, variant, params, name = self.validate(stage_name, variant, params or {}, backend)
        self.refresh(remote=self.backend(name).remote)  # a finished duplicate must not block the launch
        job = self.store.create(stage.name, variant, params, name, force=force)
        return self.backend(name).launch(job, stage, variant, params)

    def fetch_logs(self, job: Job) -> bool:
        """Bring the job's log up to date (a remote backend's from where it writes them);
        False while there is none."""
        return self.backend(job.backend).fetch_logs(job)

    # -- looking ---------------------------------------------------------------------

    def refresh(self, remote: bool = True, strict: bool = True) -> list[Job]:
        """Reconcile every job the store has as live with what its backend says. Local jobs
        never wait on a remote backend: with `remote=False` remote ones are not looked at;
        with `strict=False` an unreachable one is a quick look that gives up, leaving its
        jobs as last seen and the reason in `remote_error`."""
        if not self.workspace.has_store:
            return []  # nothing was ever launched here: nothing to reconcile, nothing created
        live = self.store.live()
        by_backend: dict[str, list[Job]] = {}
        for job in live:
            by_backend.setdefault(job.backend, []).append(job)
        self.remote_error = None
        found: dict[int, Job] = {}
        for name, jobs in by_backend.items():
            backend = self.backend(name)
            if backend.remote and not remote:
                continue
            try:
                found.update((job.id, job) for job in backend.poll(jobs, patient=strict))
            except BackendUnreachable as err:
                if strict:
                    raise
                self.remote_error = f"{err} ({len(jobs)} {name} job(s) shown as last seen)"
        return [found.get(job.id, job) for job in live]

    def get(self, job_id: int, patient: bool = True) -> Job:
        """A job as its backend says it is now. Not `patient` (a look): a backend that does not
        answer at once leaves the job as the store last saw it, the reason in `remote_error`."""
        if not self.workspace.has_store:
            raise UsageError(f"no job {job_id}: {self.workspace.not_yet()}")
        job = self.store.get(job_id)
        self.remote_error = None
        if not job.state.live:
            return job
        if patient:
            return self.backend(job.backend).poll([job])[0]
        try:
            return self.backend(job.backend).poll([job], patient=False)[0]
        except BackendUnreachable as err:
            self.remote_error = f"{err} (job {job.id} shown as last seen)"
            return job

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
        """Stop a live job through its backend and record it."""
        job = self.get(job_id)
        if job.state.terminal:
            raise UsageError(f"job {job.id} has already ended ({job.state})")
        return self.backend(job.backend).cancel(job)


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
    if job.backend != DEFAULT_BACKEND:
        argv += ["--backend", job.backend]
    return shlex.join(argv)
