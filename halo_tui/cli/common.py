"""What every `halo` command shares: the root Typer app, the --workspace and --json options,
the engine, and output for people (Rich, never markup from data) and for scripts (JSON)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import EXIT_JOB_FAILED, EXIT_OK
from core.states import JobState
from halo_tui.engine_protocol import ConsoleEngine

app = typer.Typer(
    name="halo",
    help="Dark Halo Scope: run, watch and grade the strong-lens pipeline. Bare `halo` opens the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="HALO_WORKSPACE", help="workspace folder [default: .]"),
]
DemoWorkspaceOpt = Annotated[  # the demo's own folder when none is named
    Path | None,
    typer.Option(
        "--workspace", "-w", envvar="HALO_WORKSPACE", help="workspace folder [default: ./halo-demo]"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


# -- plumbing ----------------------------------------------------------------------------


def engine_for(workspace: Path | None, create: bool = False):
    from core.engine import Engine
    from core.workspace import Workspace

    engine = Engine(Workspace.resolve(workspace, create=create))
    engine.refresh(remote=False)  # reconcile local jobs left running by an earlier process
    return engine


def say(text: str, console: Any = None) -> None:
    """A line of text from files, users or paths, shown as typed (never markup)."""
    from rich.text import Text

    from halo_tui.format import visible

    (console or console_for()).print(Text(visible(text)))


def started_here(engine: ConsoleEngine) -> str:
    """Said once, when a launch made a folder a workspace: where its store and logs went."""
    ws = engine.workspace
    return f"halo: {ws.root} is a new workspace: its job store and logs are in {ws.halo_dir}"


def glance(engine: ConsoleEngine) -> None:
    """Look at EMR steps too, quickly; if AWS cannot be reached say so and go on (exit 0):
    listing jobs must not depend on a remote backend."""
    engine.refresh(strict=False)
    if engine.remote_error:
        say_remote(engine.remote_error)


def say_remote(error: str) -> None:
    """A remote backend that did not answer: what is shown is as last seen (a warning)."""
    from rich.text import Text

    from halo_tui.format import visible

    console_for(stderr=True).print(Text(visible(f"halo: warning: {error}"), style="yellow"))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


PIPED_WIDTH = 240  # piped or redirected: wide enough that rows and paths do not break


def console_for(stderr: bool = False):
    """Rich output for people: the terminal's width in a terminal; piped, a wide fixed width
    (Rich's 80 columns split paths and rows a script or `less -S` reads)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or PIPED_WIDTH)
    return Console(stderr=stderr, highlight=False, width=width)


def job_json(job: Any) -> dict[str, Any]:
    from core.engine import cli_command

    return {**job.to_dict(), "command": cli_command(job)}


def outcome(job: Any) -> int:
    return EXIT_OK if job.state is JobState.SUCCEEDED else EXIT_JOB_FAILED


def table_of(columns: tuple[str, ...], right: tuple[str, ...] = ()):
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


JOB_COLUMNS = ("id", "stage", "variant", "backend", "state", "started", "elapsed", "exit")


def jobs_table(jobs: list[Any]) -> Any:
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


def pass_workspace_down(workspace: Path | None) -> None:
    """`halo -w DIR jobs list` means the same as `halo jobs list -w DIR`: subcommands read
    their --workspace default from $HALO_WORKSPACE, parsed after this callback ran."""
    if workspace is not None:
        os.environ["HALO_WORKSPACE"] = str(workspace)
