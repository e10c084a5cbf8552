"""One job's record, field by field."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from halo_tui.format import job_rows


class DetailsScreen(ModalScreen[None]):
    DEFAULT_CSS = "DetailsScreen { align: center middle; }"

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close", id="details.close")]

    def __init__(self, job: Any) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        rows = job_rows(self.job)
        with VerticalScroll(id="dialog"):  # at 80×24 a failed job's outputs and reason scroll
            for key, value in rows:
                yield Static(Text.assemble((f"{key:>10}", "bold"), "  ", value))

    def on_mount(self) -> None:
        self.query_one("#dialog").focus()  # the arrows, PgDn and End scroll it
