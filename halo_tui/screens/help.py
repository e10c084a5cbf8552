"""Every key of the screen it was opened on and of the app, as the keyboard shows them;
it scrolls when it does not fit."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    """Every key of the screen it was opened on and of the app, as the keyboard shows them;
    it scrolls when it does not fit."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen #help {
        width: 96%; max-width: 90; height: auto; max-height: 96%; border: round $accent; padding: 1 2;
        background: $panel;
    }
    """

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close")]

    def __init__(self, bindings: list[tuple[Binding, Any]]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        lines = ["[b]Keys[/b] (remap by id in halo.toml under \\[keys])", ""]
        for binding, _ in self.bindings:
            key = escape(self.app.get_key_display(binding))
            lines.append(
                f"  [b]{key:>10}[/b]  {escape(binding.description):<16} [dim]{binding.id or ''}[/dim]"
            )
        if self.app.readonly:
            lines += ["", "[yellow]read-only session: actions that change state are hidden[/yellow]"]
        with VerticalScroll(id="help"):
            yield Static("\n".join(lines))

    def on_mount(self) -> None:
        self.query_one("#help").focus()
