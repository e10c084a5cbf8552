"""One line asked for (a note, a number to go to); escape gives None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input


class NoteScreen(ModalScreen[str | None]):
    """One line asked for (a note, a rank to go to); escape gives None."""

    DEFAULT_CSS = "NoteScreen { align: center middle; }"

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]

    def __init__(self, prompt: str = "note for this candidate (enter to save)") -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.prompt, id="note")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
