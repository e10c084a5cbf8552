"""`halo config`: check and show the configuration."""

from __future__ import annotations

import typer

from halo_tui.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console_for,
    emit_json,
)

config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)


@config_app.command("check")
def config_check(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Validate the shipped config, the workspace's halo.toml and HALO_* variables."""
    from core.workspace import Workspace

    ws = Workspace.resolve(workspace)
    config = ws.config
    counts = {"variants": len(config.variants), "grids": len(config.grids), "presets": len(config.presets)}
    if as_json:
        emit_json({"ok": True, "workspace": str(ws.root), **counts})
    else:
        console_for(stderr=True).print(
            f"config ok: {counts['variants']} variants, {counts['grids']} grids, {counts['presets']} presets"
        )


@config_app.command("show")
def config_show(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Show the effective configuration (each grid with its configuration count)."""
    from core.config import describe
    from core.workspace import Workspace

    data = describe(Workspace.resolve(workspace).config)
    if as_json:
        emit_json(data)
        return
    from rich.pretty import Pretty

    console = console_for()
    for section, value in data.items():
        console.rule(f"[bold]{section}")
        console.print(Pretty(value, expand_all=False))
