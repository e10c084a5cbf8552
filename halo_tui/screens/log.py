"""A job's log, followed live (the LogView widget), with search and a jump to its end."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input, Static

from core.logs import tail
from halo_tui.components.logview import LogView
from halo_tui.format import visible
from halo_tui.messages import LogRead, MatchesCounted
from halo_tui.screens.base import HaloScreen

POLL_S = 0.5
INDEX_BUDGET = 64 << 20  # bytes indexed per poll: a huge log is indexed while its tail shows


class LogScreen(HaloScreen):
    """One job's log, live."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back"),
        Binding("g", "top", "Top", id="log.top"),
        Binding("G", "bottom", "Bottom", id="log.bottom"),
        Binding("f", "toggle_follow", "Follow", id="log.follow"),
        Binding("slash", "search", "Search", id="log.search"),
        Binding("n", "next", "Next", id="log.next"),
        Binding("N", "previous", "Previous", id="log.previous"),
        Binding("j", "scroll(1)", "Down", show=False, id="log.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="log.up"),
        Binding("ctrl+d", "half_page(1)", "Half page down", show=False, id="log.half_down"),
        Binding("ctrl+u", "half_page(-1)", "Half page up", show=False, id="log.half_up"),
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
        self.matches: Any = None  # the matching lines' numbers, once counted (a worker)

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
        self.post_message(LogRead(lines=tail(self.path, max(50, self.app.size.height))))

    def on_log_read(self, message: LogRead) -> None:
        if message.warning:
            self.notify(message.warning, severity="warning", markup=False)
        views = self.query(LogView)  # on the UI thread; the screen may have closed meanwhile
        if message.lines is not None and views:
            views.first().show_tail(message.lines)
        if message.event is not None and views:
            self._indexed(message.event)

    @work(thread=True, exclusive=True, group="log")
    def poll(self) -> None:
        views = self.query(LogView)  # the screen may have closed since the poll was asked for
        if not views:
            return
        view = views.first()
        if self.fetch is not None:
            try:
                self.fetch()
            except Exception as err:  # the backend may be unreachable for a while: say so, go on
                self.post_message(LogRead(warning=visible(f"could not fetch the logs: {err}")))
        self.post_message(LogRead(event=view.index.refresh(INDEX_BUDGET)))

    def _indexed(self, event: str) -> None:
        view = self.query_one(LogView)
        view.indexed(event)
        self._status()
        if not view.index.complete:
            self.call_later(self.poll)  # index the next part at once (a 0 s timer divides by 0)
        else:
            self.set_timer(max(POLL_S, self.poll_seconds), self.poll)

    def _status(self) -> None:
        """`path  120 lines  following · match 3 of 17` (the count once the search has it)."""
        view = self.query_one(LogView)
        state = "following" if view.follow else "paused (G to follow)"
        done = "" if view.index.complete else f" — indexing {view.index.indexed >> 20} MiB"
        found = ""
        if view.pattern is not None and self.matches is not None:
            at = bisect_left(self.matches, view.current) if view.current is not None else -1
            shown = at + 1 if 0 <= at < len(self.matches) and self.matches[at] == view.current else "-"
            found = f" · match {shown} of {len(self.matches)}" if self.matches else " · no match"
        self.query_one("#log-status", Static).update(
            Text(visible(f"{state}{found} · {view.line_count} lines{done} · {self.path}"))  # the path last
        )

    @work(thread=True, exclusive=True, group="log-count")
    def _count(self, index: Any, pattern: str) -> None:
        self.post_message(MatchesCounted(pattern, index.matching(pattern)))

    def on_matches_counted(self, message: MatchesCounted) -> None:
        views = self.query(LogView)
        if not views:  # closed meanwhile
            return
        view = views.first()
        if view.pattern is not None and view.pattern.pattern == message.pattern:
            self.matches = message.lines
            self._status()

    def action_scroll(self, lines: int) -> None:
        self.query_one(LogView).scroll_relative(y=lines, animate=False)

    def action_half_page(self, direction: int) -> None:
        view = self.query_one(LogView)
        view.scroll_relative(y=direction * max(1, view.size.height // 2), animate=False)

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
        except re.error as err:  # a typo in a pattern is not worth nothing: search the text itself
            view.pattern = re.compile(re.escape(event.value), re.IGNORECASE)
            self.notify(
                visible(f"not a regular expression ({err}): searching for the text as typed"),
                severity="warning",
                markup=False,
            )
        view.follow = False
        self.matches = None
        if view.pattern is not None:
            self._count(view.index, view.pattern.pattern)
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
        if found is None:  # wrap around, as less and vim do
            found = view.index.search(view.pattern.pattern, -1 if forward else view.line_count, forward)
            if found is None:
                self.notify("no match")
                return
            self.notify("search wrapped to the " + ("top" if forward else "bottom"))
        view.follow = False
        view.goto(found)
        self._status()

    def action_next(self) -> None:
        self._jump(True)

    def action_previous(self) -> None:
        self._jump(False)
