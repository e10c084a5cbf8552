"""The runs screen: every training run with its latest figures and lineage; monitor, compare,
candidates, and a round of the loop (`r`: retrain one on its grades)."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from core import runs as runs_mod
from core.layout import candidates_file
from halo_tui.components.row_table import RowTable
from halo_tui.format import visible
from halo_tui.messages import JobActed, RunRow, RunsLoaded
from halo_tui.screens.base import HaloScreen
from halo_tui.screens.compare import CompareScreen

HINT = "space marks runs, c compares them, r retrains one on its grades"
HINT_READONLY = "space marks runs, c compares them"


class RunsScreen(HaloScreen):
    BINDINGS = [
        Binding("escape", "app.jobs", "Back", id="runs.back"),
        Binding("enter", "monitor", "Monitor", id="runs.monitor"),
        Binding("space", "mark", "Mark", id="runs.mark"),
        Binding("c", "compare", "Compare", id="runs.compare"),
        Binding("g", "candidates", "Candidates", id="runs.candidates"),
        Binding("r", "retrain", "Retrain", id="runs.retrain"),
    ]

    CHANGES = ("retrain",)  # what a read-only session hides

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.app.readonly and action in self.CHANGES)

    def compose(self) -> ComposeResult:
        yield Header()
        yield RowTable(id="runs", cursor_type="row", zebra_stripes=True, header_height=2)
        yield Static(self._hint(), id="runs-hint", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(  # val: the last epoch; test: `halo stage eval`
            "", "run", "epochs", *runs_mod.OVERVIEW_HEADERS_2, "stamps"
        )
        self.load()

    @work(thread=True, exclusive=True, group="runs")
    def load(self) -> None:
        root = self.app.engine.workspace.root
        rows = [
            (runs_mod.overview(root, name), candidates_file(root, name).exists())
            for name in runs_mod.list_names(root)
        ]
        self.post_message(RunsLoaded(rows))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        self._show(message.rows)

    def _show(self, rows: list[RunRow]) -> None:
        """The runs, the cursor kept on the run it was on (marking one reloads the table)."""
        table = self.query_one(DataTable)
        was = self._selected()
        table.clear()
        for row, cands in rows:
            table.add_row(
                "*" if row["run"] in self.marked else "",
                row["run"],
                str(row["epochs"]),
                *(runs_mod.overview_cell(row, key) for key in runs_mod.OVERVIEW),
                "yes" if cands else "-",
                key=row["run"],
            )
        names = [row["run"] for row, _ in rows]
        if was in names:
            table.move_cursor(row=names.index(was), animate=False)

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _hint(self) -> str:
        return HINT_READONLY if self.app.readonly else HINT

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted run's lineage under the table: the round it came from, if any."""
        name = self._selected()
        said = runs_mod.lineage_line(self.app.engine.workspace.root, name) if name else ""
        self.query_one("#runs-hint", Static).update(visible(said) if said else self._hint())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_monitor()

    def action_monitor(self) -> None:
        from halo_tui.screens.monitor import MonitorScreen

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

    def action_retrain(self) -> None:
        """One round from the highlighted run: its grades -> a child run (`halo stage retrain`),
        the child's name asked for; refused, in one line, where the round could only fail."""
        from halo_tui.screens.prompt import NoteScreen

        parent = self._selected()
        if parent is None:
            return

        def named(child: str | None) -> None:
            if child:
                self._retrain(parent, child.strip())

        self.app.push_screen(NoteScreen(f"child run's name, trained on {parent}'s grades (enter)"), named)

    @work(thread=True, group="actions")
    def _retrain(self, parent: str, child: str) -> None:
        from core.errors import HaloError

        try:
            job = self.app.engine.launch("retrain", params={"from_run": parent, "run": child})
        except HaloError as err:
            self.post_message(JobActed(str(err), ok=False))
            return
        self.post_message(JobActed(f"job {job.id} {job.state}: retrain {parent} -> {child}", job_id=job.id))

    def on_job_acted(self, message: JobActed) -> None:
        self.notify(visible(message.said), severity="information" if message.ok else "warning", markup=False)

    def selected_candidates(self) -> tuple[Path, str] | None:
        """The selected run's candidates file and name, if it has been scored."""
        name = self._selected()
        path = candidates_file(self.app.engine.workspace.root, name) if name else None
        return (path, name) if path is not None and path.exists() else None

    def action_candidates(self) -> None:
        from halo_tui.screens.candidates import CandidatesScreen

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
        if (path := candidates_file(workspace, name)).exists()
    ]
    return (max(found)[1], max(found)[2]) if found else None
