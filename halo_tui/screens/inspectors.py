"""Each inspector's completeness and false-positive rate on the blind items, and the
consensus weight it earns them."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from core import grades as grades_mod
from halo_tui.format import visible


class InspectorsScreen(ModalScreen[None]):
    """The inspectors' calibration on the run's blind items, and their consensus weights."""

    DEFAULT_CSS = "InspectorsScreen { align: center middle; }"

    BINDINGS = [Binding("escape,i,q", "app.pop_screen", "Close", id="inspectors.close")]

    def __init__(
        self, run: str, figures: dict[str, grades_mod.Calibration], hidden: str | None = None
    ) -> None:
        """`hidden`: the inspector now grading a stream with blind items in it, whose own line
        is not shown (it would change with each blind item they grade, and so say which one
        they just graded was blind)."""
        super().__init__()
        self.run, self.figures, self.hidden = run, figures, hidden

    def compose(self) -> ComposeResult:
        text = Text(f"Inspectors on the blind items of {visible(self.run)}\n\n", style="bold")
        for c in self.figures.values():
            if c.inspector == self.hidden:
                continue
            text.append(visible(c.line()) + "\n")
        if self.hidden is not None:
            text.append(
                visible(
                    f"{self.hidden}: your own figures are hidden while blind items are in your stream"
                    " (they would tell you which item you just graded was one); `halo stage triage`"
                    " exports them, and they show here once the stream has none\n"
                )
            )
        if not any(c.sims or c.duds or c.unsure for c in self.figures.values()):
            text.append("no blind item graded yet: every inspector weighs the same\n")
        text.append(
            "\ncompleteness: simulated lenses graded A or B; FPR: known non-lenses graded A or B;"
            " intervals 95 %. The consensus weights each inspector by completeness − FPR."
        )
        yield Static(text, id="dialog")
