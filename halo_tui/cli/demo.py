"""`halo demo`: the demo pipeline (core/demo.py) run as engine jobs on the embedded mini-DR10
survey, then its report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from core import demo as demo_pipeline
from core.errors import EXIT_JOB_FAILED
from core.states import JobState
from halo_tui.cli.common import (
    DemoWorkspaceOpt,
    JsonOpt,
    console_for,
    emit_json,
    engine_for,
    job_json,
    outcome,
    pass_workspace_down,
)
from halo_tui.cli.jobs import follow_log, jobs_list
from halo_tui.cli.root import open_console
from halo_tui.engine_protocol import ConsoleEngine

demo_app = typer.Typer(help="The demo workspace on the embedded mini-DR10 survey.")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    workspace: DemoWorkspaceOpt = None,
    headless: Annotated[bool, typer.Option("--headless", help="do not open the console at the end")] = False,
) -> None:
    """Run the whole demo pipeline on the embedded mini-DR10 survey (default ./halo-demo):
    mock survey, select, manifest, coadds, inject, train, eval and score, each an engine job;
    then print where the results are, the model's figures and the planted lenses' ranks."""
    if ctx.invoked_subcommand is not None:
        pass_workspace_down(workspace)
        return
    engine = _demo_workspace(workspace)
    for stage_name, variant, params in demo_pipeline.STEPS:
        if stage_name == "demo" and (engine.workspace.root / "survey" / "_stage.json").exists():
            console_for(stderr=True).print(
                "the mock survey is there already (halo demo init --force rewrites it)"
            )
            continue
        job = _run_step(engine, stage_name, variant, params)
        if job.state is not JobState.SUCCEEDED:
            raise typer.Exit(EXIT_JOB_FAILED)
    jobs_list(workspace=engine.workspace.root)
    _demo_report(engine.workspace.root)
    if not headless and sys.stdin.isatty() and sys.stdout.isatty():
        open_console(engine)


def _demo_report(root: Path) -> None:
    """Where the results are, the audit, the test figures with their independent counts, the
    real-galaxy and lookalike false positives, and where the known lenses landed."""
    from rich.text import Text

    from halo_tui.demo_report import lines, next_steps

    console = console_for()
    console.rule("[bold]demo results")
    run = demo_pipeline.RUN
    for line in [*lines(root, run, demo_pipeline.VARIANT, demo_pipeline.GRID), "", *next_steps(root, run)]:
        console.print(Text(line), soft_wrap=True)


def _survey_option(name: str) -> Any:
    """A `halo demo init` option made from the demo stage's declaration (core/stages.py): its
    flag, range and help, with the default the demo pipeline uses (core/demo.py)."""
    from core.stages import registry

    param = registry()["demo"].param(name)
    if param.kind == "bool":
        return typer.Option(param.flag, help=param.help)
    default = demo_pipeline.SURVEY.get(name, param.default)
    return typer.Option(param.flag, min=param.low, max=param.high, help=f"{param.help} [default: {default}]")


@demo_app.command("init")
def demo_init(
    workspace: DemoWorkspaceOpt = None,
    bricks: Annotated[int | None, _survey_option("bricks")] = None,
    seed: Annotated[int | None, _survey_option("seed")] = None,
    brick_px: Annotated[int | None, _survey_option("brick_px")] = None,
    lrgs_per_brick: Annotated[int | None, _survey_option("lrgs_per_brick")] = None,
    no_images: Annotated[bool, _survey_option("no_images")] = False,
    force: Annotated[bool, _survey_option("force")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the demo workspace (default ./halo-demo) and write the mock survey into it, as a job."""
    engine = _demo_workspace(workspace)
    given = {"bricks": bricks, "seed": seed, "brick_px": brick_px, "lrgs_per_brick": lrgs_per_brick}
    options = {**demo_pipeline.SURVEY, **{k: v for k, v in given.items() if v is not None}}
    options |= {"no_images": no_images or None, "force": force or None}
    job = _run_step(engine, "demo", None, {k: v for k, v in options.items() if v is not None}, quiet=as_json)
    if as_json:
        emit_json({"workspace": str(engine.workspace.root), "job": job_json(job)})
    raise typer.Exit(outcome(job))


def _demo_workspace(workspace: Path | None) -> Any:
    from core import layout

    engine = engine_for(workspace or os.environ.get("HALO_WORKSPACE") or Path(layout.DEMO_DIR), create=True)
    toml = engine.workspace.root / layout.WORKSPACE_FILE
    if not toml.exists():
        toml.write_text(demo_pipeline.WORKSPACE_TOML)
    engine.workspace.config  # noqa: B018 - validate now, so a broken halo.toml is named at once
    return engine


def _run_step(
    engine: ConsoleEngine, stage_name: str, variant: str | None, params: dict[str, Any], quiet: bool = False
) -> Any:
    """Launch one stage as a job and wait for it, its log shown on stderr unless `quiet`."""
    err = console_for(stderr=True)
    label = stage_name + (f" ({variant})" if variant else "")
    job = engine.launch(stage_name, variant=variant, params=params)
    if not quiet:
        err.rule(f"[bold]job {job.id}: {label}")
    job = follow_log(engine, job, _Discard() if quiet else sys.stderr.buffer)
    if not quiet:
        from halo_tui.format import duration, state_line

        err.print(state_line(job, f" after {duration(job.elapsed)}"))
    return job


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass
