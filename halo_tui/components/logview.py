"""The log screen: a Line-API view over core.logs.LineIndex, so only the lines on screen are
read, however large the log. Follow mode is on at the start and pauses when the user scrolls
up; search highlights matches and moves with n / N; g / G go to the top and the bottom."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Input, Static

from core.logs import LineIndex, tail
from halo_tui.format import visible

POLL_S = 0.5
INDEX_BUDGET = 64 << 20  # bytes indexed per poll: a huge log is indexed while its tail shows
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


class LogScreen(Screen[None]):
    """One job's log, live."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back"),
        Binding("g", "top", "Top", id="log.top"),
        Binding("G", "bottom", "Bottom", id="log.bottom"),
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
        Binding("slash", "search", "Search", id="log.search"),
        Binding("n", "next", "Next", id="log.next"),
        Binding("N", "previous", "Previous", id="log.previous"),
    ]

    def __init__(
        self,
        path: Path,
        title: str,
        fetch: Callable[[], object] | None = None,
        poll_seconds: float = POLL_S,
    ) -> None:
        super().__init__()
        # fetch: bring a remote backend's logs home, every `poll_seconds` (EMR's on S3)
        self.path, self.heading, self.fetch, self.poll_seconds = path, title, fetch, poll_seconds

    def compose(self) -> ComposeResult:
        yield Static(self.heading, id="log-title")
        yield LogView(self.path, id="log")
        yield Input(placeholder="search (regex)", id="log-search")
        yield Static("", id="log-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#log-search").display = False
        view = self.query_one(LogView)
        view.focus()
        self.load_tail()
        self.poll()

    @work(thread=True, group="log-tail")
    def load_tail(self) -> None:
        """The end of the log, read in a worker: the screen never waits on a big file."""
        lines = tail(self.path, max(50, self.app.size.height))
        self.app.call_from_thread(self._show_tail, lines)

    def _show_tail(self, lines: list[str]) -> None:
        views = self.query(LogView)  # on the UI thread; the screen may have closed meanwhile
        if views:
            views.first().show_tail(lines)

    @work(thread=True, exclusive=True, group="log")
    def poll(self) -> None:
        view = self.query_one(LogView)
        if self.fetch is not None:
            try:
                self.fetch()
            except Exception as err:  # the backend may be unreachable for a while: say so, go on
                message = visible(f"could not fetch the logs: {err}")
                self.app.call_from_thread(self.notify, message, severity="warning", markup=False)
        event = view.index.refresh(INDEX_BUDGET)
        self.app.call_from_thread(self._indexed, event)

    def _indexed(self, event: str) -> None:
        view = self.query_one(LogView)
        view.indexed(event)
        state = "following" if view.follow else "paused (G to follow)"
        done = "" if view.index.complete else f" — indexing {view.index.indexed >> 20} MiB"
        self.query_one("#log-status", Static).update(
            Text(visible(f"{self.path}  {view.line_count} lines  {state}{done}"))
        )
        if not view.index.complete:
            self.call_later(self.poll)  # index the next part at once (a 0 s timer divides by 0)
        else:
            self.set_timer(max(POLL_S, self.poll_seconds), self.poll)

    def action_top(self) -> None:
        self.query_one(LogView).scroll_home(animate=False)

    def action_bottom(self) -> None:
        view = self.query_one(LogView)
        view.follow = True
        view.scroll_end(animate=False)

    def action_toggle_follow(self) -> None:
        view = self.query_one(LogView)
        view.follow = not view.follow
        if view.follow:
            view.scroll_end(animate=False)

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        view = self.query_one(LogView)
        event.input.display = False
        view.focus()
        try:
            view.pattern = re.compile(event.value, re.IGNORECASE) if event.value else None
        except re.error as err:
            self.notify(visible(f"not a regular expression: {err}"), severity="error", markup=False)
            return
        view.follow = False
        self.action_next()

    def _jump(self, forward: bool) -> None:
        view = self.query_one(LogView)
        if view.pattern is None or view.preview is not None:
            if view.preview is not None:
                self.notify("still indexing the log; search works once it is done")
            return
        start = (
            view.current
            if view.current is not None
            else (view.scroll_offset.y - 1 if forward else view.line_count)
        )
        found = view.index.search(view.pattern.pattern, start, forward)
        if found is None:
            self.notify("no more matches")
            return
        view.follow = False
        view.goto(found)

    def action_next(self) -> None:
        self._jump(True)

    def action_previous(self) -> None:
        self._jump(False)
