"""Two or more runs side by side: each figure against its target, the ROC curves plotted,
each run's completeness map as a heatmap."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from core import runs as runs_mod
from halo_tui.components.heatmap import heatmap, thresholds
from halo_tui.format import TARGET_STYLES, visible
from halo_tui.screens.base import HaloScreen

SCROLLING = Binding.Group("scroll")


class CompareScreen(HaloScreen):
    """The seed's comparison table, and beside it each run's completeness map (θE × src_dmag)
    at an operating threshold; `t` steps through the thresholds."""

    CSS = """
    CompareScreen #body { height: 1fr; }
    CompareScreen #compare { width: auto; max-width: 60%; }
    CompareScreen #maps { width: 1fr; padding: 0 1; }
    CompareScreen #roc { height: 16; }
    CompareScreen.-narrow #body { layout: vertical; overflow-y: auto; }
    CompareScreen.-narrow #compare { max-width: 100%; height: auto; }
    CompareScreen.-narrow #maps { height: auto; overflow-y: hidden; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("t", "threshold", "Threshold", id="compare.threshold"),
        # priority: before the table's own PgUp/PgDn, which would move its cursor instead
        *(
            Binding(key, f"scroll_maps({step})", what, id=ident, group=SCROLLING, priority=True)
            for key, step, what, ident in (
                ("pagedown", 1, "Scroll down", "compare.down"),
                ("pageup", -1, "Scroll up", "compare.up"),
            )
        ),
    ]
    NARROW = 120  # columns under which the maps go below the table instead of beside it

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.runs: list[Any] = []
        self.threshold = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
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
            cells = [
                Text(text + (" ▲" if best else ""), style=TARGET_STYLES[ok] + (" bold" if best else ""))
                for text, best, ok in runs_mod.row_cells(table, row)
            ]
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

    def on_resize(self) -> None:
        """Narrow (80 columns): the table, the ROC and every map one under the other, the
        whole scrolled with pgup/pgdn; wide: the maps beside the table, scrolled alone."""
        self.set_class(self.size.width < self.NARROW, "-narrow")

    def action_scroll_maps(self, direction: int) -> None:
        target = self.query_one("#body" if self.has_class("-narrow") else "#maps")
        target.scroll_relative(y=direction * max(1, target.size.height - 2), animate=False)

    def action_threshold(self) -> None:
        self.threshold += 1
        self._show_maps()
