"""The jobs screen: a live table of jobs (progress, exit code), details, launch, cancel,
relaunch, log, monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input

from core.errors import HaloError, UsageError
from core.layout import run_name_of, runs_dir
from core.logs import progress as log_progress
from core.states import JobState
from core.store import Job
from halo_tui.components.row_table import RowTable
from halo_tui.format import STATE_STYLES, duration, visible, when
from halo_tui.messages import JobActed, JobRow, JobsLoaded
from halo_tui.screens.base import HaloScreen
from halo_tui.screens.confirm import ConfirmScreen
from halo_tui.screens.job_details import DetailsScreen
from halo_tui.screens.launch import LaunchScreen

REFRESH_S = 2.0


# what a person looks for first comes first: at 80 columns the table shows up to `started`
COLUMNS = ("id", "stage", "state", "progress", "elapsed", "exit", "started", "variant", "backend")


def progress(job: Any) -> str:
    """What a running job's last log lines say of its progress: "epoch 3/6 · step 23/31"
    (train), "3/16" (bricks, partitions), else "started" until it says; "done" once ended."""
    if job.state is not JobState.RUNNING or not job.log_path:
        return "-" if job.state is not JobState.SUCCEEDED else "done"
    return log_progress(Path(job.log_path))[0] or "started"


class JobsScreen(HaloScreen):
    BINDINGS = [
        Binding("enter", "details", "Details", id="jobs.details"),
        Binding("l", "log", "Log", id="jobs.log"),
        Binding("m", "monitor", "Monitor", id="jobs.monitor"),
        Binding("n", "launch", "New", id="jobs.launch"),
        Binding("c", "cancel", "Cancel", id="jobs.cancel"),
        Binding("r", "relaunch", "Relaunch", id="jobs.relaunch"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("s", "sort", "Sort", id="jobs.sort"),
        Binding("S", "reverse", "Reverse sort", show=False, id="jobs.reverse"),
        Binding("j", "cursor(1)", "Down", show=False, id="jobs.down"),
        Binding("k", "cursor(-1)", "Up", show=False, id="jobs.up"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="jobs.clear"),
    ]
    CHANGES = ("launch", "cancel", "relaunch")

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, Job] = {}
        self.shown: list[JobRow] | None = None
        self.filter_text = ""
        self.warned: str | None = None  # the remote backend error last shown
        self.sort_column, self.descending = 0, True  # newest first
        self.launched: str | None = None  # a job just launched: the cursor goes to it
        self._timer: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield RowTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter jobs (any column)", id="jobs-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#jobs-filter").display = False
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
                str(j.state),
                progress(j),
                duration(j.elapsed),
                "" if j.exit_code is None else str(j.exit_code),
                when(j.started, short=True),
                j.variant or "-",
                j.backend,
            )
            for j in jobs
        ]
        self.post_message(JobsLoaded({str(j.id): j for j in jobs}, rows, warning))

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        if message.warning:
            self.notify(visible(message.warning), severity="warning", markup=False)
        self._show(message.jobs, message.rows)

    def _sort_value(self, row: JobRow) -> Any:
        """The sort column's value as it orders: ids, exit codes and times as numbers (the
        elapsed time in seconds, not its text), the rest as text; None where there is none."""
        job = self.jobs[row[0]]
        numbers = {"id": job.id, "elapsed": job.elapsed, "exit": job.exit_code, "started": job.started}
        return numbers.get(COLUMNS[self.sort_column], row[self.sort_column])

    def _show(self, jobs: dict[str, Job], rows: list[JobRow]) -> None:
        self.jobs = jobs
        text = self.filter_text.lower()
        rows = [r for r in rows if not text or any(text in str(c).lower() for c in r)]
        valued = [r for r in rows if self._sort_value(r) is not None]
        rows = sorted(valued, key=self._sort_value, reverse=self.descending) + [  # none last either way
            r for r in rows if self._sort_value(r) is None
        ]
        if rows != self.shown:  # an idle console does not repaint
            self.shown = rows
            table = self.query_one(DataTable)
            selected = self.launched or self.selected_id()
            table.clear(columns=True)  # the headers anew, so that their widths are measured again
            for i, name in enumerate(COLUMNS):  # the sort column's arrow, a cell kept for it on all
                arrow = ("▼" if self.descending else "▲") if i == self.sort_column else " "
                table.add_column(Text(f"{name} {arrow}"), key=name)
            for row in rows:
                state = Text(row[2], style=STATE_STYLES[row[2]])
                table.add_row(*row[:2], state, *row[3:], key=row[0])
            if selected in {r[0] for r in rows}:
                table.move_cursor(row=table.get_row_index(selected))
                self.launched = None
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
        try:
            path = self.engine.job_log(job.id)
        except UsageError as err:  # a planted link: its contents are another file's
            self.notify(str(err), severity="error", markup=False)
            return
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
        self.post_message(JobActed(f"job {job.id} {job.state}: {job.stage}", job_id=job.id))

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
        # a launch or cancel the engine refused (a job already running, say) is a warning: the
        # console did what it should; "error" is kept for what went wrong
        self.notify(visible(message.said), severity="information" if message.ok else "warning", markup=False)
        if message.job_id is not None:
            self.launched = str(message.job_id)
        if message.ok:
            self.shown = None
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
        self._sort_by((self.sort_column + 1) % len(COLUMNS))

    def action_reverse(self) -> None:
        self._sort_by(self.sort_column, not self.descending)

    def _sort_by(self, column: int, descending: bool | None = None) -> None:
        """Sort on `column`: ids newest first, the rest ascending, unless told."""
        self.sort_column = column
        self.descending = (column == 0) if descending is None else descending
        self.shown = None
        self.load()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; on the sorted one, reverses the order."""
        same = event.column_index == self.sort_column
        self._sort_by(event.column_index, not self.descending if same else None)

    def action_cursor(self, step: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=table.cursor_row + step)
