"""One job's record, field by field."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
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
        with Vertical(id="dialog"):
            for key, value in rows:
                yield Static(Text.assemble((f"{key:>10}", "bold"), "  ", value))
