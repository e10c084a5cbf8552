"""`halo jobs`: list, show, cancel, follow the logs of and watch jobs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import EXIT_JOB_FAILED, EXIT_OK, UsageError
from core.states import JobState
from halo_tui.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console_for,
    emit_json,
    engine_for,
    glance,
    job_json,
    jobs_table,
    outcome,
    say,
    say_remote,
)
from halo_tui.engine_protocol import ConsoleEngine

jobs_app = typer.Typer(help="List, inspect, cancel and follow jobs.", no_args_is_help=True)


TABLE_LIMIT = 50  # rows of `halo jobs list`'s table unless --limit or --all


@jobs_app.command("list")
def jobs_list(
    workspace: WorkspaceOpt = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="only jobs in this state (repeatable)")
    ] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="only jobs of this stage")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help=f"at most this many, newest first [table: {TABLE_LIMIT}]"),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="every job (the table shows 50 by default)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first (the table the newest 50 unless --limit or --all; --json all)."""
    states = None
    if state:
        known = [s.value for s in JobState]
        bad = [s for s in state if s not in known]
        if bad:
            raise UsageError(f"unknown state {bad[0]!r}; known: {', '.join(known)}")
        states = [JobState(s) for s in state]
    engine = engine_for(workspace)
    if not engine.workspace.has_store:  # a look never creates a workspace
        if as_json:
            sys.stdout.write("[]\n")
        else:
            say(f"no jobs: {engine.workspace.not_yet()}", console_for(stderr=True))
        return
    glance(engine)
    if as_json:
        rows = engine.store.list_json(states=states, stage=stage, limit=limit)
        sys.stdout.write("[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n")
        return
    shown = None if show_all else (limit or TABLE_LIMIT)
    jobs = engine.store.list(states=states, stage=stage, limit=shown)
    if jobs:
        console_for().print(jobs_table(jobs), soft_wrap=True)  # a row a line, however narrow
        more = engine.store.count(states=states, stage=stage) - len(jobs) if shown else 0
        if more > 0:
            console_for(stderr=True).print(f"{more:,} older job(s) not shown: --limit N or --all")
        return
    if states or stage:  # none match the filter: say so, not that the workspace is empty
        what = " or ".join(s.value for s in states or []) + (f" {stage}" if stage else "")
        say(f"no {what.strip()} jobs ({engine.store.count():,} job(s) in all)", console_for(stderr=True))
    else:
        say(f"no jobs yet in {engine.workspace.root}", console_for(stderr=True))


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job: parameters, command, log, outputs, failure."""
    engine = engine_for(workspace)
    job = engine.get(job_id, patient=False)  # a look: AWS that does not answer at once is stale
    if engine.remote_error:
        say_remote(engine.remote_error)
    data = job_json(job)
    if as_json:
        emit_json(data)
        return
    from rich.table import Table
    from rich.text import Text

    from halo_tui.format import job_rows

    if not sys.stdout.isatty():  # piped: one field a line, as long as it is (no padding, no wrap)
        for key, value in job_rows(job):
            lines = value.plain.splitlines() or [""]
            for i, line in enumerate(lines):
                sys.stdout.write(f"{key if i == 0 else '':<10}  {line}\n")
        return
    table = Table.grid(padding=(0, 2))
    for key, value in job_rows(job):
        table.add_row(Text(key, style="bold"), value)
    console_for().print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running job (SIGTERM, then SIGKILL after the grace period)."""
    engine = engine_for(workspace)
    job = engine.cancel(job_id)
    if as_json:
        emit_json(job_json(job))
    else:
        console_for(stderr=True).print(f"job {job.id} cancelled")


@jobs_app.command("logs")
def jobs_logs(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="follow until the job ends; exit with its outcome")
    ] = False,
) -> None:
    """Print a job's log; with -f, follow it until the job ends."""
    engine = engine_for(workspace)
    job = engine.get(job_id)
    if engine.backend(job.backend).late_logs:
        _late_logs(engine, job, follow)
        return
    if not follow:
        _copy_from(_log_of(engine, job), 0, sys.stdout.buffer)
        return
    job = follow_log(engine, job, sys.stdout.buffer)
    raise typer.Exit(outcome(job))


def _late_logs(engine: ConsoleEngine, job: Any, follow: bool) -> None:
    """A backend whose logs arrive late (EMR: on S3, minutes after the step starts): say so
    while there are none, fetch them as they come."""
    backend = engine.backend(job.backend)
    said = False
    interval = backend.poll_seconds
    while True:
        if engine.fetch_logs(job):
            break
        if not said:
            typer.echo(backend.waiting_for_logs(job), err=True)
            said = True
        if not follow:
            return
        if job.state.terminal and said:
            time.sleep(interval)
            if engine.fetch_logs(job):
                break
            raise typer.Exit(outcome(job))
        time.sleep(interval)
        job = engine.get(job.id)
    if not follow:
        _copy_from(_log_of(engine, job), 0, sys.stdout.buffer)
        return
    offset = 0
    while True:
        offset = _copy_from(_log_of(engine, job), offset, sys.stdout.buffer)
        if job.state.terminal:
            break
        time.sleep(interval)
        job = engine.get(job.id)
        engine.fetch_logs(job)
    engine.fetch_logs(job)
    _copy_from(_log_of(engine, job), offset, sys.stdout.buffer)
    raise typer.Exit(outcome(job))


@jobs_app.command("watch")
def jobs_watch(
    job_ids: Annotated[list[int] | None, typer.Argument(help="job ids", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    interval: Annotated[
        float | None, typer.Option("--interval", min=0.05, help="seconds between looks")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Poll until the jobs end, printing each state change; exit 0 if all succeeded, else 1 (for cron)."""
    if not job_ids:
        raise UsageError("which jobs? halo jobs watch ID [ID …] (the ids: halo jobs list)")
    engine = engine_for(workspace)
    jobs = {i: engine.get(i) for i in job_ids}
    pause = interval or min(2.0, engine.workspace.config.backends.emr.poll_seconds)
    seen: dict[int, str] = {}
    while True:
        for job_id, job in jobs.items():
            if seen.get(job_id) != job.state.value:
                seen[job_id] = job.state.value
                change = {
                    "job": job_id,
                    "stage": job.stage,
                    "state": job.state.value,
                    "failure": job.failure,
                    "at": time.time(),
                }
                if as_json:
                    sys.stdout.write(json.dumps(change) + "\n")
                    sys.stdout.flush()
                else:
                    from halo_tui.format import state_line

                    console_for().print(state_line(job, with_stage=True))
        if all(j.state.terminal for j in jobs.values()):
            break
        time.sleep(pause)
        jobs = {i: engine.get(i) for i in job_ids}  # only the watched jobs' backends are asked
    raise typer.Exit(
        EXIT_OK if all(j.state is JobState.SUCCEEDED for j in jobs.values()) else EXIT_JOB_FAILED
    )


def _log_of(engine: ConsoleEngine, job: Any) -> Path:
    return engine.job_log(job.id)


def follow_log(engine: ConsoleEngine, job: Any, out: Any) -> Any:
    """Copy the job's log to `out` as it grows, until the job ends; return the ended job."""
    path = _log_of(engine, job)
    offset = 0
    while True:
        offset = _copy_from(path, offset, out)
        if job.state.terminal:
            return job
        time.sleep(0.2)
        job = engine.get(job.id)


def _copy_from(path: Path, offset: int, out: Any) -> int:
    """Copy what `path` holds past `offset` to `out`; start over if it was truncated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return offset
    if size < offset:
        offset = 0
    terminal = bool(getattr(out, "isatty", lambda: False)())
    if terminal:
        from halo_tui.format import utf8_whole, visible_bytes
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(1 << 16):
            if terminal:  # no control reaches a terminal, and none is cut in two to slip by
                chunk = chunk[: utf8_whole(chunk) or len(chunk)]
                handle.seek(offset + len(chunk))
                out.write(visible_bytes(chunk))
            else:
                out.write(chunk)
            offset += len(chunk)
    out.flush()
    return offset
