"""Bare `halo`: the console on the workspace (asking first where the folder is not one yet)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from core.candidates import BLIND_RATE, BLIND_RATE_RANGE
from core.errors import EXIT_JOB_FAILED, EXIT_OK, UsageError
from halo_tui.cli.common import (
    WorkspaceOpt,
    app,
    console_for,
    engine_for,
    pass_workspace_down,
    say,
    started_here,
)
from halo_tui.engine_protocol import ConsoleEngine


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
            min=BLIND_RATE_RANGE[0],
            max=BLIND_RATE_RANGE[1],
            help="console: the fraction of the triage stream that is blind items"
            f" [default: halo.toml [triage] blind_rate, {BLIND_RATE}]",
        ),
    ] = None,
) -> None:
    """Bare `halo` opens the console on the workspace."""
    pass_workspace_down(workspace)
    if ctx.invoked_subcommand is None:
        engine = engine_for(workspace)
        if not engine.workspace.in_use:
            _ask_to_start(engine)
        open_console(engine, readonly=readonly, blind_rate=blind_rate)


def _ask_to_start(engine: ConsoleEngine) -> None:
    """The console on a folder that is not a workspace: say so and ask before making it one
    (a user who typed `halo` in the wrong folder is sent to the right one instead)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{engine.workspace.not_yet()} (not a terminal: nothing asked, nothing created)")
    err = console_for(stderr=True)
    say(f"halo: {engine.workspace.not_yet()}.", err)
    try:
        answer = input(f"Make {engine.workspace.root} a workspace and open the console? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        err.print("nothing created")
        raise typer.Exit(EXIT_OK)
    engine.store  # noqa: B018 - creates .halo/ with the store
    say(started_here(engine), err)


def open_console(engine: ConsoleEngine, **options: Any) -> None:
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
