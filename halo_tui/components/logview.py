"""The log screen: a Line-API view over core.logs.LineIndex, so only the lines on screen are
read, however large the log. Follow mode is on at the start and pauses when the user scrolls
up; search highlights matches and moves with n / N; g / G go to the top and the bottom."""

from __future__ import annotations

import re
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.logs import LineIndex
from halo_tui.format import visible

MATCH = Style(bgcolor="yellow", color="black")


CURRENT = Style(bgcolor="dark_orange", color="black", bold=True)


class LogView(ScrollView, can_focus=True):
    """Lines of a log file; until its index is complete, its tail."""

    DEFAULT_CSS = "LogView { height: 1fr; }"

    def __init__(self, path: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.index = LineIndex(path)
        self.preview: list[str] | None = None
        self.pattern: re.Pattern[str] | None = None
        self.current: int | None = None
        self.follow = True

    @property
    def line_count(self) -> int:
        return len(self.preview) if self.preview is not None else len(self.index)

    def show_tail(self, lines: list[str]) -> None:
        if self.index.indexed and self.index.complete:
            return  # the index came first: it shows the whole log already
        self.preview = lines
        self._resize(scroll_end=True)

    def indexed(self, event: str) -> None:
        """The index grew (or was reset): show it, keeping to the end in follow mode."""
        if self.index.complete:
            self.preview = None
        if event != "same" or self.preview is None:
            self._resize(scroll_end=self.follow)

    def _resize(self, scroll_end: bool) -> None:
        self.virtual_size = Size(self.size.width, self.line_count)
        if scroll_end:
            self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        number = self.scroll_offset.y + y
        if number >= self.line_count:
            return Strip.blank(self.size.width)
        if self.preview is not None:
            text = self.preview[number]
        else:
            got = self.index.lines(number, number + 1)
            text = got[0] if got else ""
        line = Text(visible(text.expandtabs(4)))  # an ESC in a log must not reach the terminal
        if self.pattern is not None:
            line.highlight_regex(self.pattern, CURRENT if number == self.current else MATCH)
        segments = list(line.render(self.app.console))
        return (
            Strip(segments)
            .crop(self.scroll_offset.x, self.scroll_offset.x + self.size.width)
            .extend_cell_length(self.size.width)
        )

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.follow = new >= self.max_scroll_y  # scrolling up pauses follow mode

    def goto(self, number: int) -> None:
        self.current = number
        self.scroll_to(y=max(0, number - self.size.height // 2), animate=False)
        self.refresh()
