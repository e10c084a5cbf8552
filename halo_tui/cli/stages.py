"""`halo stages` and `halo stage NAME`: the stages, their options (from core/stages.py) and
launching one as a job."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import EXIT_INTERRUPTED, EXIT_OK, HaloError, UsageError
from core.stages import Stage, bound_text, registry
from halo_tui.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    app,
    console_for,
    emit_json,
    engine_for,
    job_json,
    outcome,
    say,
    started_here,
    table_of,
)


@app.command("stages")
def stages(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the pipeline stages, their options, and whether each is built."""
    engine = engine_for(workspace)
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
        emit_json(rows)
        return

    table = table_of(("stage", "seed", "status", "options", "does"))
    for row in rows:
        status = "[green]available[/]" if row["available"] else "[dim]not built yet[/]"
        options = " ".join(o["flag"] for o in row["options"])
        table.add_row(row["name"], row["seed_name"], status, options or "-", row["description"])
    console_for().print(table)


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


def _declared(workspace: Path | None, name: str) -> Stage:
    """NAME's declaration: from the workspace's registry (its own stages too), else, where no
    workspace can be read (help needs none), from the shipped one."""
    try:
        return engine_for(workspace).stage(name)
    except HaloError:
        shipped = registry()
        if name not in shipped:
            raise
        return shipped[name]


def _stage_help(ctx: typer.Context, workspace: Path | None, name: str | None) -> None:
    """`halo stage [NAME] --help`: the command's own options, then NAME's."""
    from rich.text import Text

    from halo_tui.format import visible

    out = console_for()
    out.print(ctx.get_help(), markup=False, highlight=False)
    if name is None:
        out.print("\nEach stage's options: halo stage NAME --help (the stages: halo stages)")
        return
    stage_def = _declared(workspace, name)
    table = table_of(("option", "type", "default", "allowed", "does"))
    own = {flag for param in ctx.command.params for flag in getattr(param, "opts", [])}
    for option in _options_of(stage_def):
        if option["flag"] in own:  # --force: the command's own option passes it on
            continue
        bounds = option["range"]
        allowed = ", ".join(map(str, option["choices"])) or (
            "-" if bounds is None else " to ".join("…" if v is None else bound_text(v) for v in bounds)
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
    engine = engine_for(workspace)
    stage_def = engine.stage(name)
    params = _stage_options(stage_def, ctx.args)
    if force and any(p.name == "force" for p in stage_def.params):
        params["force"] = True
    fresh = not engine.workspace.has_store
    with interruptible() as stopped:
        job = engine.launch(name, variant=variant, params=params, backend=backend, force=force)
        err = console_for(stderr=True)
        if fresh:
            say(started_here(engine), err)
        if not as_json:
            err.print(f"job {job.id} {job.state}: {job.stage}" + (f" ({job.variant})" if job.variant else ""))
            err.print(f"log: {job.log_path}")
        if wait:
            job = engine.wait(
                job.id, on_change=None if as_json else lambda j: say_state(err, j), stop=stopped
            )
        if stopped.is_set():
            err.print(f"stopped waiting; job {job.id} goes on (halo jobs logs -f {job.id})")
            raise typer.Exit(EXIT_INTERRUPTED)
    if as_json:
        emit_json(job_json(job))
    elif wait:
        from halo_tui.format import duration, state_line

        err.print(state_line(job, f" after {duration(job.elapsed)}"))
    raise typer.Exit(outcome(job) if wait else EXIT_OK)


@contextlib.contextmanager
def interruptible() -> Any:
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


def say_state(console: Any, job: Any) -> None:
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
