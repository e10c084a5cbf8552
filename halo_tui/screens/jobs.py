"""The jobs screen: a live table of jobs (progress, exit code), details, launch, cancel,
relaunch, log, monitor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from core.errors import HaloError
from core.layout import run_name_of, runs_dir
from core.logs import tail
from core.states import JobState
from halo_tui.format import STATE_STYLES, duration, visible, when
from halo_tui.messages import JobActed, JobsLoaded
from halo_tui.screens.confirm import ConfirmScreen
from halo_tui.screens.job_details import DetailsScreen
from halo_tui.screens.launch import LaunchScreen

REFRESH_S = 2.0


COLUMNS = ("id", "stage", "variant", "backend", "state", "progress", "exit", "started", "elapsed")


PROGRESS = re.compile(r"(?:([a-z]+)\s+)?(\d+)\s*/\s*(\d+)")


def progress(job: Any) -> str:
    """What a running job's last log lines say of its progress: "epoch 3/6 · step 23/31"
    (train), "3/16" (bricks, partitions), else "started" until it says; "done" once ended."""
    if job.state is not JobState.RUNNING or not job.log_path:
        return "-" if job.state is not JobState.SUCCEEDED else "done"
    for line in reversed(tail(Path(job.log_path), 5)):
        found = PROGRESS.findall(line)
        if found:
            labelled = [f"{label} {done}/{total}" for label, done, total in found if label]
            return " · ".join(labelled) if labelled else "{1}/{2}".format(*found[-1])
    return "started"


class JobsScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "details", "Details", id="jobs.details"),
        Binding("l", "log", "Log", id="jobs.log"),
        Binding("m", "monitor", "Monitor", id="jobs.monitor"),
        Binding("n", "launch", "New", id="jobs.launch"),
        Binding("c", "cancel", "Cancel", id="jobs.cancel"),
        Binding("r", "relaunch", "Relaunch", id="jobs.relaunch"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("s", "sort", "Sort", id="jobs.sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="jobs.clear"),
    ]
    CHANGES = ("launch", "cancel", "relaunch")

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, Any] = {}
        self.shown: list[tuple[Any, ...]] | None = None
        self.filter_text = ""
        self.warned: str | None = None  # the remote backend error last shown
        self.sort_column = 0
        self._timer: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter jobs (any column)", id="jobs-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#jobs-filter").display = False
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.load()

    @property
    def engine(self) -> Any:
        return self.app.engine

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.app.readonly and action in self.CHANGES)

    @work(thread=True, exclusive=True, group="jobs")
    def load(self) -> None:
        self.engine.refresh(strict=False)  # an unreachable EMR leaves its jobs as last seen
        error = self.engine.remote_error
        warning = error if error and error != self.warned else None
        self.warned = error
        jobs = self.engine.store.list(limit=1000)
        rows = [
            (
                str(j.id),
                j.stage,
                j.variant or "-",
                j.backend,
                str(j.state),
                progress(j),
                "" if j.exit_code is None else str(j.exit_code),
                when(j.started),
                duration(j.elapsed),
            )
            for j in jobs
        ]
        self.post_message(JobsLoaded({str(j.id): j for j in jobs}, rows, warning))

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        if message.warning:
            self.notify(visible(message.warning), severity="warning", markup=False)
        self._show(message.jobs, message.rows)

    def _show(self, jobs: dict[str, Any], rows: list[tuple[Any, ...]]) -> None:
        self.jobs = jobs
        text = self.filter_text.lower()
        rows = [r for r in rows if not text or any(text in str(c).lower() for c in r)]
        key = self.sort_column
        rows.sort(key=lambda r: int(r[0]) if key == 0 else str(r[key]), reverse=key == 0)
        if rows != self.shown:  # an idle console does not repaint
            self.shown = rows
            table = self.query_one(DataTable)
            for i, column in enumerate(table.columns.values()):  # the sort column's arrow
                arrow = ("▼" if i == 0 else "▲") if i == key else ""
                column.label = Text(COLUMNS[i] + (f" {arrow}" if arrow else ""))
            selected = self.selected_id()
            table.clear()
            for row in rows:
                table.add_row(*row[:4], Text(row[4], style=STATE_STYLES[row[4]]), *row[5:], key=row[0])
            if selected in {r[0] for r in rows}:
                table.move_cursor(row=table.get_row_index(selected))
        if self._timer is not None:  # one refresh armed at a time, after the last one finished
            self._timer.stop()
        self._timer = self.set_timer(REFRESH_S, self.load)

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected(self) -> Any | None:
        key = self.selected_id()
        return self.jobs.get(key) if key else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def action_details(self) -> None:
        job = self.selected()
        if job is not None:
            self.app.push_screen(DetailsScreen(job))

    def action_log(self) -> None:
        from halo_tui.screens.log import LogScreen

        job = self.selected()
        if job is None:
            return
        path = Path(job.log_path) if job.log_path else self.engine.log_path(job.id)
        fetch = None
        backend = self.engine.backend(job.backend)
        if backend.late_logs:  # e.g. EMR's reach S3 minutes late: the log screen keeps fetching them
            fetch = lambda: self.engine.fetch_logs(self.engine.store.get(job.id))  # noqa: E731
            self.notify(f"{job.backend}: {backend.late_logs}; the log is fetched as it arrives", markup=False)
        title = f"job {job.id}: {job.stage} ({job.state})"
        self.app.push_screen(LogScreen(path, title, fetch, backend.poll_seconds))

    def action_monitor(self) -> None:
        job = self.selected()
        if job is None or job.stage != "train":
            self.notify("the training monitor opens on a train job")
            return
        from halo_tui.screens.monitor import MonitorScreen

        run = run_name_of(self.engine.workspace.config, job.variant, job.params)
        self.app.push_screen(MonitorScreen(runs_dir(self.engine.workspace.root) / run))

    def action_launch(self) -> None:
        def launched(choice: Any) -> None:
            if choice:
                self._launch(*choice)

        self.app.push_screen(LaunchScreen(self.engine), launched)

    @work(thread=True, group="actions")
    def _launch(
        self, stage: str, variant: str | None, params: dict[str, Any], backend: str, force: bool = False
    ) -> None:
        try:
            job = self.engine.launch(stage, variant=variant, params=params, backend=backend, force=force)
        except HaloError as err:
            self.post_message(JobActed(str(err), ok=False))
            return
        self.post_message(JobActed(f"job {job.id} {job.state}: {job.stage}"))

    def action_cancel(self) -> None:
        job = self.selected()
        if job is None or job.state.terminal:
            self.notify("nothing to cancel: the job has ended" if job else "no job selected")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(job.id)

        self.app.push_screen(ConfirmScreen(f"Cancel job {job.id} ({job.stage})?"), answered)

    @work(thread=True, group="actions")
    def _cancel(self, job_id: int) -> None:
        try:
            job = self.engine.cancel(job_id)
        except HaloError as err:
            self.post_message(JobActed(str(err), ok=False))
            return
        self.post_message(JobActed(f"job {job.id} {job.state}"))

    def on_job_acted(self, message: JobActed) -> None:
        self.notify(visible(message.said), severity="information" if message.ok else "error", markup=False)
        if message.ok:
            self.load()

    def action_relaunch(self) -> None:
        job = self.selected()
        if job is not None:
            self._launch(job.stage, job.variant, dict(job.params), job.backend)

    def action_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.shown = None
        self.load()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.value, box.display = "", False
        self.query_one(DataTable).focus()

    def action_sort(self) -> None:
        """The next column as the sort key: its header carries the arrow (no toast per press)."""
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)
        self.shown = None
        self.load()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_column = event.column_index
        self.shown = None
        self.load()
