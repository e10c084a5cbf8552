"""`halo`: the headless commands (Typer). Bare `halo` opens the console.

Exit codes: 0 ok, 1 job failed (or cancelled), 2 usage or config error, 3 backend
unreachable, 130 interrupted. `--json` prints machine output on stdout; human output is Rich.
Heavy imports (pydantic, rich, textual) happen inside the commands that need them."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, HaloError, UsageError
from core.states import JobState

app = typer.Typer(
    name="halo",
    help="Dark Halo Scope: run, watch and grade the strong-lens pipeline. Bare `halo` opens the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
jobs_app = typer.Typer(help="List, inspect, cancel and follow jobs.", no_args_is_help=True)
config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo workspace on the embedded mini-DR10 survey.")
runs_app = typer.Typer(help="Training runs: list and compare them.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(config_app, name="config")
app.add_typer(demo_app, name="demo")
app.add_typer(runs_app, name="runs")

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="HALO_WORKSPACE", help="workspace folder [default: .]"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


# -- plumbing ----------------------------------------------------------------------------


def _engine(workspace: Path | None, create: bool = False):
    from core.engine import Engine
    from core.workspace import Workspace

    engine = Engine(Workspace.resolve(workspace, create=create))
    engine.refresh(remote=False)  # reconcile local jobs left running by an earlier process
    return engine


def _say(text: str, console: Any = None) -> None:
    """A line of text from files, users or paths, shown as typed (never markup)."""
    from rich.text import Text

    from halo_tui.format import visible

    (console or _console()).print(Text(visible(text)))


def _started_here(engine: Any) -> str:
    """Said once, when a launch made a folder a workspace: where its store and logs went."""
    ws = engine.workspace
    return f"halo: {ws.root} is a new workspace: its job store and logs are in {ws.halo_dir}"


def _glance(engine: Any) -> None:
    """Look at EMR steps too, quickly; if AWS cannot be reached say so and go on (exit 0):
    listing jobs must not depend on a remote backend."""
    engine.refresh(strict=False)
    if engine.remote_error:
        _say_remote(engine.remote_error)


def _say_remote(error: str) -> None:
    """A remote backend that did not answer: what is shown is as last seen (a warning)."""
    from rich.text import Text

    from halo_tui.format import visible

    _console(stderr=True).print(Text(visible(f"halo: warning: {error}"), style="yellow"))


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


PIPED_WIDTH = 240  # piped or redirected: wide enough that rows and paths do not break


def _console(stderr: bool = False):
    """Rich output for people: the terminal's width in a terminal; piped, a wide fixed width
    (Rich's 80 columns split paths and rows a script or `less -S` reads)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or PIPED_WIDTH)
    return Console(stderr=stderr, highlight=False, width=width)


def _job_json(job: Any) -> dict[str, Any]:
    from core.engine import cli_command

    return {**job.to_dict(), "command": cli_command(job)}


def _outcome(job: Any) -> int:
    return EXIT_OK if job.state is JobState.SUCCEEDED else EXIT_JOB_FAILED


def _table(columns: tuple[str, ...], right: tuple[str, ...] = ()):
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


JOB_COLUMNS = ("id", "stage", "variant", "backend", "state", "started", "elapsed", "exit")


def _jobs_table(jobs: list[Any]) -> Any:
    """The jobs as aligned columns in one Text, the state in its colour (laid out once: Rich's
    Table measures every cell, 40 s for 10,000 jobs)."""
    from rich.text import Text

    from halo_tui.format import STATE_STYLES, duration, visible, when

    rows = [
        [
            str(job.id),
            visible(job.stage),
            visible(job.variant or "-"),
            visible(job.backend),
            str(job.state),
            when(job.started),
            duration(job.elapsed),
            "-" if job.exit_code is None else str(job.exit_code),
        ]
        for job in jobs
    ]
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(JOB_COLUMNS)]
    right = {0, 6, 7}  # id, elapsed, exit

    def cells(values: list[str]) -> list[str]:
        pairs = enumerate(zip(values, widths, strict=True))
        return [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in pairs]

    text = Text(" " + "  ".join(cells(list(JOB_COLUMNS))).rstrip() + "\n", style="bold")
    for job, row in zip(jobs, rows, strict=True):
        padded = cells(row)
        text.append(" " + "  ".join(padded[:4]) + "  ")
        text.append(padded[4], style=STATE_STYLES[job.state])
        text.append(("  " + "  ".join(padded[5:])).rstrip() + "\n")
    text.rstrip()
    return text


def _pass_workspace_down(workspace: Path | None) -> None:
    """`halo -w DIR jobs list` means the same as `halo jobs list -w DIR`: subcommands read
    their --workspace default from $HALO_WORKSPACE, parsed after this callback ran."""
    if workspace is not None:
        os.environ["HALO_WORKSPACE"] = str(workspace)


# -- root --------------------------------------------------------------------------------


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="console: hide every action that changes state")
    ] = False,
    blind_rate: Annotated[
        float | None,
        typer.Option(
            "--blind-rate",
            min=0.0,
            max=0.5,
            help="console: the fraction of the triage stream that is blind items"
            " [default: halo.toml [triage] blind_rate, 0.05]",
        ),
    ] = None,
) -> None:
    """Bare `halo` opens the console on the workspace."""
    _pass_workspace_down(workspace)
    if ctx.invoked_subcommand is None:
        engine = _engine(workspace)
        if not engine.workspace.in_use:
            _ask_to_start(engine)
        _open_console(engine, readonly=readonly, blind_rate=blind_rate)


def _ask_to_start(engine: Any) -> None:
    """The console on a folder that is not a workspace: say so and ask before making it one
    (a user who typed `halo` in the wrong folder is sent to the right one instead)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{engine.workspace.not_yet()} (not a terminal: nothing asked, nothing created)")
    err = _console(stderr=True)
    _say(f"halo: {engine.workspace.not_yet()}.", err)
    try:
        answer = input(f"Make {engine.workspace.root} a workspace and open the console? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        err.print("nothing created")
        raise typer.Exit(EXIT_OK)
    engine.store  # noqa: B018 - creates .halo/ with the store
    _say(_started_here(engine), err)


def _open_console(engine: Any, **options: Any) -> None:
    """The console on the engine's workspace, in this terminal; it ends with its terminal
    (halo_tui.lifeline), and a crash is one line on stderr (exit 1), the grades kept."""
    from halo_tui.app import HaloApp
    from halo_tui.components import pixels
    from halo_tui.lifeline import Lifeline

    app = HaloApp(engine, **options)
    Lifeline(app.flush_writes, sys.stdin.fileno() if sys.stdin else None).start()
    pixels.detect()  # before Textual owns the terminal
    try:
        app.run()
    finally:
        app.flush_writes()
    if app.crash:
        from halo_tui.format import visible

        typer.echo(f"halo: the console failed: {visible(app.crash)}", err=True)
        raise typer.Exit(EXIT_JOB_FAILED)


# -- jobs --------------------------------------------------------------------------------


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
    engine = _engine(workspace)
    if not engine.workspace.has_store:  # a look never creates a workspace
        if as_json:
            sys.stdout.write("[]\n")
        else:
            _say(f"no jobs: {engine.workspace.not_yet()}", _console(stderr=True))
        return
    _glance(engine)
    if as_json:
        rows = engine.store.list_json(states=states, stage=stage, limit=limit)
        sys.stdout.write("[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n")
        return
    shown = None if show_all else (limit or TABLE_LIMIT)
    jobs = engine.store.list(states=states, stage=stage, limit=shown)
    if jobs:
        _console().print(_jobs_table(jobs), soft_wrap=True)  # a row a line, however narrow
        more = engine.store.count(states=states, stage=stage) - len(jobs) if shown else 0
        if more > 0:
            _console(stderr=True).print(f"{more:,} older job(s) not shown: --limit N or --all")
        return
    if states or stage:  # none match the filter: say so, not that the workspace is empty
        what = " or ".join(s.value for s in states or []) + (f" {stage}" if stage else "")
        _say(f"no {what.strip()} jobs ({engine.store.count():,} job(s) in all)", _console(stderr=True))
    else:
        _say(f"no jobs yet in {engine.workspace.root}", _console(stderr=True))


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job: parameters, command, log, outputs, failure."""
    engine = _engine(workspace)
    job = engine.get(job_id, patient=False)  # a look: AWS that does not answer at once is stale
    if engine.remote_error:
        _say_remote(engine.remote_error)
    data = _job_json(job)
    if as_json:
        _emit_json(data)
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
    _console().print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running job (SIGTERM, then SIGKILL after the grace period)."""
    engine = _engine(workspace)
    job = engine.cancel(job_id)
    if as_json:
        _emit_json(_job_json(job))
    else:
        _console(stderr=True).print(f"job {job.id} cancelled")


@jobs_app.command("logs")
def jobs_logs(
    job_id: Annotated[int, typer.Argument(help="job id")],
    workspace: WorkspaceOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="follow until the job ends; exit with its outcome")
    ] = False,
) -> None:
    """Print a job's log; with -f, follow it until the job ends."""
    engine = _engine(workspace)
    job = engine.get(job_id)
    if engine.backend(job.backend).late_logs:
        _late_logs(engine, job, follow)
        return
    if not follow:
        _copy_from(_log_of(engine, job), 0, sys.stdout.buffer)
        return
    job = _follow(engine, job, sys.stdout.buffer)
    raise typer.Exit(_outcome(job))


def _late_logs(engine: Any, job: Any, follow: bool) -> None:
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
            raise typer.Exit(_outcome(job))
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
    raise typer.Exit(_outcome(job))


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
    engine = _engine(workspace)
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

                    _console().print(state_line(job, with_stage=True))
        if all(j.state.terminal for j in jobs.values()):
            break
        time.sleep(pause)
        jobs = {i: engine.get(i) for i in job_ids}  # only the watched jobs' backends are asked
    raise typer.Exit(
        EXIT_OK if all(j.state is JobState.SUCCEEDED for j in jobs.values()) else EXIT_JOB_FAILED
    )


def _log_of(engine: Any, job: Any) -> Path:
    return engine.job_log(job.id)


def _follow(engine: Any, job: Any, out: Any) -> Any:
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


# -- stages ------------------------------------------------------------------------------


@app.command("stages")
def stages(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the pipeline stages, their options, and whether each is built."""
    engine = _engine(workspace)
    rows = [
        {
            "name": s.name,
            "seed_name": s.seed_name,
            "module": s.module,
            "available": s.available(engine.workspace.root),
            "needs_variant": s.needs_variant,
            "description": s.description,
            "options": _options_of(s),
        }
        for s in engine.stages().values()
    ]
    if as_json:
        _emit_json(rows)
        return

    table = _table(("stage", "seed", "status", "options", "does"))
    for row in rows:
        status = "[green]available[/]" if row["available"] else "[dim]not built yet[/]"
        options = " ".join(o["flag"] for o in row["options"])
        table.add_row(row["name"], row["seed_name"], status, options or "-", row["description"])
    _console().print(table)


def _options_of(stage_def: Any) -> list[dict[str, Any]]:
    """A stage's declared options as `halo stages --json` and `halo stage NAME --help` show them."""
    return [
        {
            "flag": p.flag,
            "kind": p.kind,
            "default": p.default,
            "choices": list(p.choices),
            "range": None if p.low is None and p.high is None else [p.low, p.high],
            "help": p.help,
            "required": p.required,
        }
        for p in stage_def.params
    ]


def _stage_help(ctx: typer.Context, workspace: Path | None, name: str | None) -> None:
    """`halo stage [NAME] --help`: the command's own options, then NAME's."""
    from rich.text import Text

    from halo_tui.format import visible

    out = _console()
    out.print(ctx.get_help(), markup=False, highlight=False)
    if name is None:
        out.print("\nEach stage's options: halo stage NAME --help (the stages: halo stages)")
        return
    stage_def = _engine(workspace).stage(name)
    table = _table(("option", "type", "default", "allowed", "does"))
    own = {flag for param in ctx.command.params for flag in getattr(param, "opts", [])}
    for option in _options_of(stage_def):
        if option["flag"] in own:  # --force: the command's own option passes it on
            continue
        bounds = option["range"]
        allowed = ", ".join(map(str, option["choices"])) or (
            "-" if bounds is None else " to ".join("…" if v is None else f"{v:g}" for v in bounds)
        )
        default = "-" if option["default"] in (None, "") else str(option["default"])
        default = "required" if option.get("required") else default
        cells = (option["flag"], option["kind"], default, allowed, option["help"] or "")
        table.add_row(*(Text(visible(str(c))) for c in cells))
    out.print(Text(visible(f"\nOptions of {name} ({stage_def.description}):")))
    out.print(table)


@app.command(
    "stage",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def stage(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="stage name (see `halo stages`)", show_default=False)
    ] = None,
    workspace: WorkspaceOpt = None,
    variant: Annotated[str | None, typer.Option("--variant", help="config variant, e.g. v4_sota")] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="local or emr [default: from config]")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="launch even if the same job runs; redo outputs")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="block until the job ends; exit with its outcome")
    ] = False,
    as_json: JsonOpt = False,
    show_help: Annotated[
        bool, typer.Option("--help", help="this help, and with a NAME that stage's options")
    ] = False,
) -> None:
    """Launch a stage as a job. Stage options (`halo stage NAME --help`) follow as --name VALUE."""
    if show_help or "--help" in ctx.args:
        _stage_help(ctx, workspace, name)
        raise typer.Exit(EXIT_OK)
    if name is None:
        raise UsageError("which stage? halo stage NAME (the stages: halo stages)")
    engine = _engine(workspace)
    stage_def = engine.stage(name)
    params = _stage_options(stage_def, ctx.args)
    if force and any(p.name == "force" for p in stage_def.params):
        params["force"] = True
    fresh = not engine.workspace.has_store
    with _interruptible() as stopped:
        job = engine.launch(name, variant=variant, params=params, backend=backend, force=force)
        err = _console(stderr=True)
        if fresh:
            _say(_started_here(engine), err)
        if not as_json:
            err.print(f"job {job.id} {job.state}: {job.stage}" + (f" ({job.variant})" if job.variant else ""))
            err.print(f"log: {job.log_path}")
        if wait:
            job = engine.wait(
                job.id, on_change=None if as_json else lambda j: _say_state(err, j), stop=stopped
            )
        if stopped.is_set():
            err.print(f"stopped waiting; job {job.id} goes on (halo jobs logs -f {job.id})")
            raise typer.Exit(EXIT_INTERRUPTED)
    if as_json:
        _emit_json(_job_json(job))
    elif wait:
        from halo_tui.format import duration, state_line

        err.print(state_line(job, f" after {duration(job.elapsed)}"))
    raise typer.Exit(_outcome(job) if wait else EXIT_OK)


@contextlib.contextmanager
def _interruptible() -> Any:
    """Ctrl-C while launching or waiting sets an event the wait loop checks every 0.2 s
    (instead of an exception that may land anywhere: inside a launch, a store write, a C
    call); a second Ctrl-C is an ordinary KeyboardInterrupt. The job goes on either way."""
    import signal
    import threading

    stopped = threading.Event()

    def first(_signum: int, _frame: Any) -> None:
        stopped.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGINT, previous)


def _say_state(console: Any, job: Any) -> None:
    if not job.state.terminal:  # the end is reported once, with its reason
        console.print(f"job {job.id} {job.state}")


def _stage_options(stage_def: Any, args: list[str]) -> dict[str, Any]:
    """Parse `--name VALUE`, `--name=VALUE` and bare `--flag` against the stage's options."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}; stage options look like --name VALUE")
        key, eq, value = token[2:].partition("=")
        param = stage_def.param(key)
        if not eq:
            if param.kind == "bool":
                value = "true"
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise UsageError(f"option {param.flag} needs a value")
        params[param.name] = value
        i += 1
    return params


# -- runs --------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the training runs: the last epoch's validation figures and, once evaluated, the
    test split's ("-": no figure; "n/m": too few independent negatives to measure it)."""
    from rich.text import Text

    from core import runs as runs_mod
    from core.workspace import Workspace
    from halo_tui.format import visible

    ws = Workspace.resolve(workspace)
    rows = [runs_mod.overview(ws.root, name) for name in runs_mod.list_names(ws.root)]
    if as_json:
        _emit_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
        return

    table = _table(("run", "parent", "epochs", *runs_mod.OVERVIEW_HEADERS))
    for row in rows:
        table.add_row(
            Text(visible(row["run"])),
            Text(visible(row["parent"] or "-")),
            str(row["epochs"]),
            *(runs_mod.overview_cell(row, k) for k in runs_mod.OVERVIEW),
        )
    out = _console()
    out.print(table if rows else f"no runs yet in {runs_mod.runs_root(ws.root)}")
    if rows:
        out.print(
            "parent: the run whose grades a round trained it on (`halo stage retrain`); "
            "val: the last epoch's validation split; test: `halo stage eval` (n/m: not measurable); "
            "real recall: the test split's known lenses above the real galaxies' FPR 1e-2 cut (found/all)"
        )


@runs_app.command("compare")
def runs_compare(
    names: Annotated[list[str], typer.Argument(help="run names (see `halo runs list`)")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
    as_markdown: Annotated[bool, typer.Option("--markdown", help="a Markdown table, to paste")] = False,
) -> None:
    """The seed's comparison table across runs: ▲ marks the better run on a row; in a terminal
    green meets the target and red, underlined, misses it (--markdown to paste, --json for scripts)."""
    from rich.text import Text

    from core import runs as runs_mod
    from core.workspace import Workspace
    from halo_tui.format import TARGET_STYLES, visible

    ws = Workspace.resolve(workspace)
    table = runs_mod.compare([runs_mod.load(ws.root, n) for n in names], ws.config.targets)
    if as_json:
        _emit_json(table)
        return
    if as_markdown:
        sys.stdout.write(runs_mod.markdown(table))
        return
    out = _table(("metric", *table["runs"], "target"))
    for row in table["rows"]:
        cells = [
            Text(visible(text + (" ▲" if best else "")), style=TARGET_STYLES[ok])
            for text, best, ok in runs_mod.row_cells(table, row)
        ]
        out.add_row(row["metric"], *cells, row["target"] or "")
    _console().print(out)


# -- config ------------------------------------------------------------------------------


@config_app.command("check")
def config_check(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Validate the shipped config, the workspace's halo.toml and HALO_* variables."""
    from core.workspace import Workspace

    ws = Workspace.resolve(workspace)
    config = ws.config
    counts = {"variants": len(config.variants), "grids": len(config.grids), "presets": len(config.presets)}
    if as_json:
        _emit_json({"ok": True, "workspace": str(ws.root), **counts})
    else:
        _console(stderr=True).print(
            f"config ok: {counts['variants']} variants, {counts['grids']} grids, {counts['presets']} presets"
        )


@config_app.command("show")
def config_show(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Show the effective configuration (each grid with its configuration count)."""
    from core.config import describe
    from core.workspace import Workspace

    data = describe(Workspace.resolve(workspace).config)
    if as_json:
        _emit_json(data)
        return
    from rich.pretty import Pretty

    console = _console()
    for section, value in data.items():
        console.rule(f"[bold]{section}")
        console.print(Pretty(value, expand_all=False))


# -- demo --------------------------------------------------------------------------------


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    headless: Annotated[bool, typer.Option("--headless", help="do not open the console at the end")] = False,
) -> None:
    """Run the whole demo pipeline on the embedded mini-DR10 survey (default ./halo-demo):
    mock survey, select, manifest, coadds, inject, train, eval and score, each an engine job;
    then print where the results are, the model's figures and the planted lenses' ranks."""
    if ctx.invoked_subcommand is not None:
        _pass_workspace_down(workspace)
        return
    engine = _demo_workspace(workspace)
    for stage_name, variant, params in DEMO_STEPS:
        if stage_name == "demo" and (engine.workspace.root / "survey" / "_stage.json").exists():
            _console(stderr=True).print(
                "the mock survey is there already (halo demo init --force rewrites it)"
            )
            continue
        job = _run_step(engine, stage_name, variant, params)
        if job.state is not JobState.SUCCEEDED:
            raise typer.Exit(EXIT_JOB_FAILED)
    jobs_list(workspace=engine.workspace.root)
    _demo_report(engine.workspace.root)
    if not headless and sys.stdin.isatty() and sys.stdout.isatty():
        _open_console(engine)


def _demo_report(root: Path) -> None:
    """Where the results are, the audit, the test figures with their independent counts, the
    real-galaxy and lookalike false positives, and where the known lenses landed."""
    from rich.text import Text

    from halo_tui.demo_report import lines, next_steps

    console = _console()
    console.rule("[bold]demo results")
    for line in [*lines(root, DEMO_RUN, "v4_sota", "grid_sota"), "", *next_steps(root, DEMO_RUN)]:
        console.print(Text(line), soft_wrap=True)


@demo_app.command("init")
def demo_init(
    workspace: WorkspaceOpt = None,
    bricks: Annotated[
        int | None, typer.Option("--bricks", min=1, help="number of bricks [default: 32]")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed [default: 1]")] = None,
    brick_px: Annotated[
        int | None, typer.Option("--brick-px", min=64, help="brick size (DR10: 3600) [default: 600]")
    ] = None,
    lrgs: Annotated[
        int | None, typer.Option("--lrgs-per-brick", min=1, help="LRGs drawn per brick [default: 85]")
    ] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="catalogues only")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="rewrite the survey even if it is up to date")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the demo workspace (default ./halo-demo) and write the mock survey into it, as a job."""
    engine = _demo_workspace(workspace)
    options = {
        "bricks": bricks or DEMO_SURVEY["bricks"],
        "lrgs_per_brick": lrgs or DEMO_SURVEY["lrgs_per_brick"],
        "seed": seed,
        "brick_px": brick_px,
        "no_images": no_images or None,
        "force": force or None,
    }
    job = _run_step(engine, "demo", None, {k: v for k, v in options.items() if v is not None}, quiet=as_json)
    if as_json:
        _emit_json({"workspace": str(engine.workspace.root), "job": _job_json(job)})
    raise typer.Exit(_outcome(job))


# The demo pipeline so far: stages are added here as they are built.
# 32 bricks with 85 LRGs each: ~340 independent control galaxies in the test split, so that
# tpr@fpr1e-2 is measurable (it needs 100) with an interval worth printing
DEMO_SURVEY = {"bricks": 32, "lrgs_per_brick": 85}
DEMO_STEPS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("demo", None, DEMO_SURVEY),
    ("select", "v4_sota", {}),
    ("manifest", "v4_sota", {"grid": "grid_sota"}),
    ("coadds", "v4_sota", {"grid": "grid_sota"}),
    ("inject", "v4_sota", {"grid": "grid_sota"}),
    ("train", "v4_sota", {"grid": "grid_sota", "preset": "demo_cpu", "run": "demo"}),
    ("eval", "v4_sota", {"grid": "grid_sota", "run": "demo"}),
    ("score", "v4_sota", {"grid": "grid_sota", "run": "demo"}),
)
DEMO_RUN = "demo"


def _demo_workspace(workspace: Path | None) -> Any:
    from core import layout

    engine = _engine(workspace or os.environ.get("HALO_WORKSPACE") or Path(layout.DEMO_DIR), create=True)
    toml = engine.workspace.root / layout.WORKSPACE_FILE
    if not toml.exists():
        toml.write_text(DEMO_TOML)
    engine.workspace.config  # noqa: B018 - validate now, so a broken halo.toml is named at once
    return engine


def _run_step(
    engine: Any, stage_name: str, variant: str | None, params: dict[str, Any], quiet: bool = False
) -> Any:
    """Launch one stage as a job and wait for it, its log shown on stderr unless `quiet`."""
    err = _console(stderr=True)
    label = stage_name + (f" ({variant})" if variant else "")
    job = engine.launch(stage_name, variant=variant, params=params)
    if not quiet:
        err.rule(f"[bold]job {job.id}: {label}")
    job = _follow(engine, job, _Discard() if quiet else sys.stderr.buffer)
    if not quiet:
        from halo_tui.format import duration, state_line

        err.print(state_line(job, f" after {duration(job.elapsed)}"))
    return job


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


# The grids the demo workspace sizes for its survey: the seed's, and the source models that
# bench/source_models.py compares (structured, larger, drawn from a population).
DEMO_GRIDS = (
    "grid_sota",
    "grid_small",
    "structured_sota",
    "sersic_sized",
    "structured_sized",
    "population_dr10",
    "structured_dr10",
)
DEMO_TOML = """\
# Dark Halo Scope demo workspace. Anything here overrides or adds to the shipped config
# (`halo config show` lists it all). The demo keeps the shipped grids but draws fewer tasks,
# so that the whole pipeline runs in minutes on a laptop.
""" + "".join(f"\n[grids.{name}]\nn_total_per_split = 2000\n" for name in DEMO_GRIDS)


# -- entry point -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run `halo`; map user errors to one line (with --json, one JSON object on stdout:
    {"error": ..., "exit": N}) and the documented exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="halo", standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except HaloError as err:
        code = _error(str(err), err.exit_code, args)
    except sqlite3.DatabaseError as err:  # the store, locked or damaged after it was opened
        from core.store import unusable

        failure = unusable(err)
        code = _error(str(failure), failure.exit_code, args)
    except OSError as err:  # the file system said no (a read-only workspace, say): name the file
        code = _error(_file_system(err), EXIT_USAGE, args)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # the command line did not parse: one line, not usage
        command = getattr(getattr(exc, "ctx", None), "command_path", "halo")
        code = _error(f"{exc.format_message().rstrip('.')} (see {command} --help)", EXIT_USAGE, args)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _file_system(err: OSError) -> str:
    """An OSError in one line: the file, what the system said, and what halo needs."""
    import errno

    from core.errors import file_system_failure

    said = file_system_failure(err)
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{said}: halo writes its store and logs in the workspace (.halo/); use a writable one"
    if err.errno == errno.ENOSPC:
        return f"{said}: free some space and run it again"
    return said


def _error(message: str, code: int, args: list[str]) -> int:
    """A user error: `halo: error: …` on stderr, or with --json one object on stdout."""
    if "--json" in args:
        _emit_json({"error": message, "exit": code})
    else:
        typer.echo(f"halo: error: {message}", err=True)
    return code
