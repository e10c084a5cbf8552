"""`halo runs`: training runs listed and compared."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from halo_tui.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console_for,
    emit_json,
    table_of,
)

runs_app = typer.Typer(help="Training runs: list and compare them.", no_args_is_help=True)


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
        emit_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
        return

    table = table_of(("run", "parent", "epochs", *runs_mod.OVERVIEW_HEADERS))
    for row in rows:
        table.add_row(
            Text(visible(row["run"])),
            Text(visible(row["parent"] or "-")),
            str(row["epochs"]),
            *(runs_mod.overview_cell(row, k) for k in runs_mod.OVERVIEW),
        )
    out = console_for()
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
        emit_json(table)
        return
    if as_markdown:
        sys.stdout.write(runs_mod.markdown(table))
        return
    out = table_of(("metric", *table["runs"], "target"))
    for row in table["rows"]:
        cells = [
            Text(visible(text + (" ▲" if best else "")), style=TARGET_STYLES[ok])
            for text, best, ok in runs_mod.row_cells(table, row)
        ]
        out.add_row(row["metric"], *cells, row["target"] or "")
    console_for().print(out)
