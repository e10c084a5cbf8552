"""One stamp of the candidates grid: its half-block strips, rendered in advance, and a
caption (its number and score, highlighted when selected, then your grade as a badge)."""

from __future__ import annotations

from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

SELECTED = "bold black on yellow"
# Your grade under each stamp, as a badge: A green to X red, unsure grey.
GRADE_STYLES = {
    "A": "bold white on green",
    "B": "bold black on bright_green",
    "C": "bold black on yellow",
    "X": "bold white on red",
    "unsure": "black on grey62",
}


class StampTile(Widget):
    """One stamp and its caption (rank and score, highlighted when selected, then your grade
    as a coloured badge); its strips are rendered in advance."""

    DEFAULT_CSS = "StampTile { width: auto; height: auto; } StampTile.selected { background: $accent; }"

    def __init__(
        self, lines: list[Strip], label: str, badge: str, width: int, selected: bool = False
    ) -> None:
        super().__init__()
        self.lines, self.label, self.badge, self.cells = lines, label, badge, width
        self.selected = selected
        self.styles.width = width
        self.styles.height = len(lines) + 1

    @property
    def caption(self) -> Text:
        # a span, not the Text's own style: `Text.render` (what render_line draws) applies
        # spans only, and the selected stamp's highlight was lost so (no cursor on the grid)
        text = Text()
        text.append(self.label, style=SELECTED if self.selected else "")
        if self.badge:
            text.append(" ")
            text.append(f" {self.badge} ", style=GRADE_STYLES.get(self.badge, ""))
        return text

    def select(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.refresh()

    def show(self, lines: list[Strip], label: str, badge: str, width: int, selected: bool) -> None:
        """Another stamp in this tile (a page turn reuses the tiles)."""
        self.lines, self.label, self.badge, self.cells, self.selected = lines, label, badge, width, selected
        self.styles.width = width
        self.styles.height = len(lines) + 1
        self.refresh(layout=True)

    def render_line(self, y: int) -> Strip:
        if y < len(self.lines):
            return self.lines[y]
        segments = list(self.caption.render(self.app.console))
        return Strip(segments).crop(0, self.cells).extend_cell_length(self.cells)
