"""The console (Textual). For now one screen: the live jobs table.

All I/O runs in a thread worker; the table is rebuilt only when the jobs changed, so an idle
console does not repaint."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header

from halo_tui.format import duration, when

REFRESH_S = 2.0
COLUMNS = ("id", "stage", "variant", "backend", "state", "started", "elapsed", "exit")


class HaloApp(App[None]):
    """`halo`: the operator console on one workspace."""

    TITLE = "Dark Halo Scope"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("r", "refresh", "Refresh", id="refresh"),
    ]

    def __init__(self, engine: Any, readonly: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.readonly = readonly
        self._shown: list[tuple[Any, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.engine.workspace.root) + ("  [read-only]" if self.readonly else "")
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        self.load_jobs()
        self.set_interval(REFRESH_S, self.load_jobs)

    def action_refresh(self) -> None:
        self.load_jobs()

    @work(thread=True, exclusive=True, group="jobs")
    def load_jobs(self) -> None:
        self.engine.refresh()
        rows = [
            (
                str(j.id),
                j.stage,
                j.variant or "-",
                j.backend,
                str(j.state),
                when(j.started),
                duration(j.elapsed),
                "-" if j.exit_code is None else str(j.exit_code),
            )
            for j in self.engine.store.list(limit=500)
        ]
        self.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[Any, ...]]) -> None:
        if rows == self._shown:
            return
        self._shown = rows
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row, key=row[0])
