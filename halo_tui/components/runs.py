"""The runs screen: every training run; enter opens its monitor, space marks runs, c compares
the marked runs side by side (the seed's comparison table), g opens a run's candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core import runs as runs_mod
from core.candidates import candidates_path
from halo_tui.components.heatmap import heatmap, thresholds
from halo_tui.format import visible


class CompareScreen(Screen[None]):
    """The seed's comparison table, and beside it each run's completeness map (θE × src_dmag)
    at an operating threshold; `t` steps through the thresholds."""

    CSS = """
    CompareScreen Horizontal { height: 1fr; }
    CompareScreen #compare { width: auto; max-width: 60%; }
    CompareScreen #maps { width: 1fr; padding: 0 1; }
    CompareScreen #roc { height: 16; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("t", "threshold", "Threshold", id="compare.threshold"),
    ]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.runs: list[Any] = []
        self.threshold = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield DataTable(id="compare", zebra_stripes=True)
            with VerticalScroll(id="maps"):
                from halo_tui.components.plots import RocPlot

                yield RocPlot(id="roc")
                yield Static("", id="heatmaps")
        yield Footer()

    def on_mount(self) -> None:
        ws = self.app.engine.workspace
        self.runs = [runs_mod.load(ws.root, n) for n in self.names]
        table = runs_mod.compare(self.runs, ws.config.targets)
        view = self.query_one(DataTable)
        view.add_columns("metric", *table["runs"], "target")
        for row in table["rows"]:
            cells = []
            bounds = row.get("upper_bounds") or [None] * len(table["runs"])
            for name, value, bound in zip(table["runs"], row["values"], bounds, strict=True):
                text = runs_mod._cell(row["metric"], value, bound)
                cells.append(
                    Text(text, style="bold green" if row["best"] == name and len(self.names) > 1 else "")
                )
            view.add_row(row["metric"], *cells, row["target"] or "")
        curves = {r.name: r.evaluation["roc"] for r in self.runs if r.evaluation and r.evaluation.get("roc")}
        roc = self.query_one("#roc")
        roc.display = bool(curves)  # runs evaluated before the curve was stored have none
        roc.show(curves)
        self._show_maps()

    def _show_maps(self) -> None:
        names = thresholds(next((r.evaluation for r in self.runs if r.evaluation), None))
        chosen = names[self.threshold % len(names)] if names else None
        maps = Text()
        for run in self.runs:
            maps.append_text(heatmap(run.evaluation, chosen, title=visible(run.name)))
            maps.append("\n\n")
        self.query_one("#heatmaps", Static).update(maps)

    def action_threshold(self) -> None:
        self.threshold += 1
        self._show_maps()


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.jobs", "Back", id="runs.back"),
        Binding("enter", "monitor", "Monitor", id="runs.monitor"),
        Binding("space", "mark", "Mark", id="runs.mark"),
        Binding("c", "compare", "Compare", id="runs.compare"),
        Binding("g", "candidates", "Candidates", id="runs.candidates"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("space marks runs to compare", id="runs-hint", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "", "run", "epochs", "auroc", "tpr@fpr1e-3", "evaluated", "candidates"
        )
        self.load()

    @work(thread=True, exclusive=True, group="runs")
    def load(self) -> None:
        root = self.app.engine.workspace.root
        rows = []
        for name in runs_mod.list_names(root):
            run = runs_mod.load(root, name)
            last: dict[str, Any] = run.epochs[-1] if run.epochs else {}
            rows.append(
                (
                    name,
                    len(run.epochs),
                    last.get("auroc"),
                    last.get("tpr@fpr1e-3"),
                    run.evaluation is not None,
                    candidates_path(root, name).exists(),
                )
            )
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[Any, ...]]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for name, epochs, auroc, tpr, evaluated, cands in rows:
            table.add_row(
                "*" if name in self.marked else "",
                name,
                str(epochs),
                runs_mod._cell("auroc", auroc),
                runs_mod._cell("tpr@fpr1e-3", tpr),
                "yes" if evaluated else "-",
                "yes" if cands else "-",
                key=name,
            )

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_monitor()

    def action_monitor(self) -> None:
        from halo_tui.components.monitor import MonitorScreen

        name = self._selected()
        if name:
            self.app.push_screen(MonitorScreen(runs_mod.runs_root(self.app.engine.workspace.root) / name))

    def action_mark(self) -> None:
        name = self._selected()
        if name:
            self.marked ^= {name}
            self.load()

    def action_compare(self) -> None:
        names = sorted(self.marked) or ([self._selected()] if self._selected() else [])
        if names:
            self.app.push_screen(CompareScreen(names))

    def selected_candidates(self) -> tuple[Path, str] | None:
        """The selected run's candidates file and name, if it has been scored."""
        name = self._selected()
        path = candidates_path(self.app.engine.workspace.root, name) if name else None
        return (path, name) if path is not None and path.exists() else None

    def action_candidates(self) -> None:
        from halo_tui.components.candidates import CandidatesScreen

        found = self.selected_candidates()
        if found is None:
            self.notify("no candidates for this run: run `halo stage score` first")
            return
        self.app.push_screen(CandidatesScreen(*found))


def latest_candidates(workspace: Path) -> tuple[Path, str] | None:
    """The run whose candidates were written last, and its candidates file."""
    found = [
        (path.stat().st_mtime, path, name)
        for name in runs_mod.list_names(workspace)
        if (path := candidates_path(workspace, name)).exists()
    ]
    return (max(found)[1], max(found)[2]) if found else None
