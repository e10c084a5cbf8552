"""Candidate triage: a grid of stamps in truecolor half blocks, graded from the keyboard.

a b c x u grade the selected stamp (A, B, C, X, unsure) for this inspector ($USER) and move
on; t adds a note; U undoes the last grade; f cycles the filter (all, ungraded,
disagreements); v cycles the view (grz composite, g, r, z, all four side by side); z zooms
to one full-size stamp; e exports the grades to CSV; i shows each inspector's calibration.
Blind items (simulated lenses and known non-lenses, core.candidates.TriageStream) are mixed
into the stream at the workspace's `[triage] blind_rate`, looking like any candidate; their
grades measure the inspectors and weight the consensus. The next page is rendered in a
worker ahead of time."""

from __future__ import annotations

import getpass
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.strip import Strip
from textual.widgets import Footer, Header, Static

from core import grades as grades_mod
from core.candidates import CandidateTable, TriageStream, blinds_path, scored_files
from core.colour import Q
from core.figures import score as score_text
from core.grades import GradeKey, Undone
from core.layout import CANDIDATES_FILE, grades_csv
from halo_tui.components import pixels
from halo_tui.components.candidate_grid import (
    STAMP,
    GridGeometry,
    StampCache,
    page_rows,
    place_tiles,
    tile_lines,
)
from halo_tui.components.candidate_panel import CandidatePanel, progress_line
from halo_tui.components.stamp import VIEWS, render_rgb, span
from halo_tui.components.stamp_tile import StampTile
from halo_tui.format import visible
from halo_tui.messages import Exported, GradesChanged, PageRendered, RunGrades, StreamLoaded
from halo_tui.screens.base import HaloScreen
from halo_tui.screens.inspectors import InspectorsScreen
from halo_tui.screens.prompt import NoteScreen

FILTERS = ("all", "ungraded", "disagreements")


GRADE_KEYS = {"a": "A", "b": "B", "c": "C", "x": "X", "u": "unsure"}
# keys shown as one footer item each: "abcxu grade", "pgdn pgup page", "+- stretch"
GRADING, PAGES, STRETCH = (Binding.Group(d, compact=True) for d in ("grade", "page", "stretch"))


STRETCH_RANGE = (5.0, 320.0)


GRADES_POLL_S = 1.0  # how soon another inspector's grades show (a cheap look at the store)


def viewer_url(ra: float, dec: float) -> str:
    """The Legacy Survey viewer centred on (ra, dec), DR10, zoomed, with a marker."""
    return (
        f"https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}"
        f"&layer=ls-dr10&zoom=16&mark={ra:.6f},{dec:.6f}"
    )


def inspector() -> str:
    return os.environ.get("USER") or getpass.getuser()


def ident(info: dict[str, Any]) -> GradeKey:
    """A stream item's grade key: (brickname, objid), with the truth for a blind item."""
    blind = info.get("blind")
    return (info["brickname"], info["objid"], *((blind,) if blind else ()))


def gather(store: Any, run: str) -> RunGrades:
    """The run's grades as the screen keeps them, candidates and blind items keyed alike
    (`ident`)."""
    seen = grades_mod.version(store, run)
    return RunGrades(seen, grades_mod.current_all(store, run), grades_mod.notes(store, run, blinds=None))


class CandidatesScreen(HaloScreen):
    CSS = """
    CandidatesScreen #tiles { grid-gutter: 0 1; height: 1fr; width: 1fr; }
    CandidatesScreen #meta { border-left: solid $accent; padding: 0 1; height: 1fr; }
    CandidatesScreen #pixels { display: none; height: 1fr; width: 1fr; }
    CandidatesScreen #pixels .pixels { width: auto; }
    """
    # the footer shows them in this order: grading first, so that it shows at 80 columns
    BINDINGS = [
        *(
            Binding(k, f"grade('{g}')", f"Grade {g}", id=f"cand.grade_{g.lower()}", group=GRADING)
            for k, g in GRADE_KEYS.items()
        ),
        Binding("t", "note", "Note", id="cand.note"),
        Binding("U", "undo", "Undo", id="cand.undo"),
        Binding("escape", "app.pop_screen", "Back", id="cand.back"),
        Binding("left", "move(-1, 0)", "Left", show=False, id="cand.left"),
        Binding("right", "move(1, 0)", "Right", show=False, id="cand.right"),
        Binding("up", "move(0, -1)", "Up", show=False, id="cand.up"),
        Binding("down", "move(0, 1)", "Down", show=False, id="cand.down"),
        Binding("h", "move(-1, 0)", "Left", show=False, id="cand.h"),
        Binding("l", "move(1, 0)", "Right", show=False, id="cand.l"),
        Binding("k", "move(0, -1)", "Up", show=False, id="cand.k"),
        Binding("j", "move(0, 1)", "Down", show=False, id="cand.j"),
        Binding("g", "first", "First", show=False, id="cand.first"),
        Binding("G", "last", "Last", show=False, id="cand.last"),
        Binding("n", "next_ungraded", "Next ungraded", id="cand.next_ungraded"),
        Binding("number_sign", "jump", "Go to #", id="cand.jump"),
        Binding("o", "viewer", "Viewer URL", id="cand.viewer"),
        Binding("pagedown", "page(1)", "Next page", id="cand.next", group=PAGES),
        Binding("pageup", "page(-1)", "Prev page", id="cand.prev", group=PAGES),
        Binding("f", "cycle_filter", "Filter", id="cand.filter"),
        Binding("v", "cycle_view", "View", id="cand.view"),
        Binding("plus", "stretch(2)", "Stretch +", id="cand.stretch_up", group=STRETCH),
        Binding("minus", "stretch(0.5)", "Stretch -", id="cand.stretch_down", group=STRETCH),
        Binding("z", "zoom", "Zoom", id="cand.zoom"),
        Binding("e", "export", "Export CSV", id="cand.export"),
        Binding("i", "inspectors", "Inspectors", id="cand.inspectors"),
        Binding("F", "next_file", "Next file", id="cand.next_file"),
    ]
    CHANGES = ("grade", "note", "undo", "export")  # refused in a read-only session

    def __init__(self, path: Path, run: str) -> None:
        super().__init__()
        self.path, self.run = path, run
        self.table: TriageStream | None = None
        self.page, self.cursor, self.view, self.filter, self.zoomed = 0, 0, "grz", "all", False
        self.pan = (0, 0)  # zoomed: the view's offset from the stamp's centre (pixels x, rows)
        self.stretch = Q  # the asinh stretch: + and - (the viewer's 20 to start)
        self.rows: np.ndarray = np.zeros(0, dtype=np.int64)
        self.consensus: dict[tuple[str, int], Any] = {}
        self.notes: dict[tuple[str, int], list[str]] = {}
        self.grades_seen: tuple[int, int] | None = None
        self.cache = StampCache()
        self.asked, self.rendering = 0, False  # redraws asked for; whether a renderer runs
        self.anchor = 0  # the row the cursor was on when a filter was last cycled
        self.who = inspector()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="cand-progress", classes="status")
        with Horizontal():
            yield Grid(id="tiles")
            yield Vertical(Static("", id="pixels-caption"), id="pixels")  # zoomed, real pixels
            yield CandidatePanel("", id="meta")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.app.readonly and action in self.CHANGES)

    @property
    def store(self) -> Any:
        return self.app.engine.store

    def on_mount(self) -> None:
        self.load()
        self.set_interval(GRADES_POLL_S, self.watch_grades)

    @work(thread=True, exclusive=True, group="grades")
    def watch_grades(self) -> None:
        """Other inspectors' grades (another console on the workspace) show within a poll:
        the filter and consensus are redone only when the store's grades changed."""
        if self.app.writes.pending or self.table is None:
            return  # your own writes are on their way; the next poll looks again
        if grades_mod.version(self.store, self.run) != self.grades_seen:
            self.post_message(GradesChanged(gather(self.store, self.run), refilter=True))

    def on_grades_changed(self, message: GradesChanged) -> None:
        self.grades_seen, self.consensus, self.notes = message.grades
        if self.table is None:
            return
        before = self._current()
        if message.refilter:
            self._filter_rows()
        undone = message.undone
        if undone is not None:  # the cursor goes to what was undone
            key = self.table.key(undone.brickname, undone.objid, undone.blind)
            where = np.flatnonzero(self.table.keys[self.rows] == key) if key is not None else []
            if len(where):
                self.page, self.cursor = divmod(int(where[0]), self.per_page)
        elif before is not None and message.refilter:  # kept on the item it was on, if still listed
            where = np.flatnonzero(self.table.keys[self.rows] == self.table.key(*ident(before)))
            if len(where):
                self.page, self.cursor = divmod(int(where[0]), self.per_page)
        if message.said:
            self.notify(visible(message.said), markup=False)
        self.show()

    def write(self, change: Any) -> None:
        """Run `change(store)` (a grade, a note, an undo: it returns what to say and what was
        undone) off the UI thread, in the order asked (the app's WriteQueue); the screen hears
        GradesChanged after each."""
        self.app.writes.submit(change)
        self._drain()

    @work(thread=True, group="grading")
    def _drain(self) -> None:
        def done(said: str | None, undone: Undone | None) -> None:
            grades = gather(self.store, self.run)
            self.grades_seen = grades[0]  # the poll must not take your write for another's
            self.post_message(GradesChanged(grades, said, undone))

        self.app.writes.drain(self.store, done)

    @work(thread=True, exclusive=True, group="candidates")
    def load(self) -> None:
        blinds = blinds_path(self.path)
        table = TriageStream(
            CandidateTable(self.path),
            CandidateTable(blinds) if blinds is not None and blinds.exists() else None,
            self.app.blind_rate,
            seed=self.run,
        )
        self.post_message(StreamLoaded(table, gather(self.store, self.run)))

    def on_stream_loaded(self, message: StreamLoaded) -> None:
        self.table = message.table
        self.grades_seen, self.consensus, self.notes = message.grades
        self._filter_rows()
        self.show()

    def _filter_rows(self) -> None:
        assert self.table is not None
        everyone = np.arange(len(self.table))
        if self.filter == "all":
            self.rows = everyone
            return
        wanted = self.consensus.items()
        if self.filter == "disagreements":
            keys = [self.table.key(*k) for k, c in wanted if c.disagreement]
            self.rows = np.flatnonzero(np.isin(self.table.keys, [k for k in keys if k is not None]))
        else:
            mine = [self.table.key(*k) for k, c in wanted if self.who in c.grades]
            self.rows = np.flatnonzero(~np.isin(self.table.keys, [k for k in mine if k is not None]))

    # -- layout ------------------------------------------------------------------------

    @property
    def grid(self) -> GridGeometry:
        """The grid for the screen's size, view, zoom and pan (components/candidate_grid.py)."""
        return GridGeometry(self.size.width, self.size.height, self.view, self.zoomed, self.pan)

    def zoom_window(self) -> tuple[int, int, int, int]:
        return self.grid.zoom_window()

    @property
    def meta_shown(self) -> bool:
        return self.grid.meta_shown

    def geometry(self) -> tuple[int, int, int]:
        """(bin factor, columns, rows) of the grid for the screen's size."""
        return self.grid.layout()

    @property
    def per_page(self) -> int:
        return self.grid.per_page

    def page_rows(self, page: int) -> list[int]:
        return page_rows(self.rows, page, self.per_page)

    def render_page(self, page: int) -> dict[int, list[Strip]]:
        """Strips of a page's stamps (cached): the costly part, done in workers."""
        assert self.table is not None
        # the terminal's colours ("truecolor", "256", "standard"): fewer than truecolor keeps the sky neutral
        depth = {"256": 256, "standard": 16, "windows": 16}.get(self.app.console.color_system or "")
        factor = self.geometry()[0]
        rows = self.page_rows(page)
        return self.cache.render(rows, self.table.stamps, self.view, self.stretch, factor, depth)

    def show(self) -> None:
        """Draw the current page. Asks coalesce: while a page renders, further asks (a held
        pgdn) only raise `asked`, and the renderer then draws the page the keys stopped on,
        skipping the pages in between."""
        if self.table is None:
            return
        self.asked += 1
        if not self.rendering:
            self.rendering = True
            self._render_latest()

    @work(thread=True, group="render")
    def _render_latest(self) -> None:
        while True:
            asked, page = self.asked, self.page
            real = None  # zoomed where the terminal draws images: the stamp's own pixels
            rows = self.page_rows(page)
            if self.zoomed and pixels.protocol() is not None and rows:
                real = render_rgb(self.table.stamps(rows[:1])[0], self.view, 1, None, self.stretch)
            rendered = self.render_page(page)
            if asked == self.asked:  # nothing asked meanwhile: this is the page to show
                break
        self.post_message(PageRendered(page, rendered, real, asked))
        self.render_page(page + 1)  # ahead of time

    def on_page_rendered(self, message: PageRendered) -> None:
        self.rendering = False
        if message.asked != self.asked:  # asked again since: render the latest instead
            self.show()
            return
        self._place(message.page, message.rendered, message.pixels)

    def _place(self, page: int, rendered: dict[int, list[Strip]], real: np.ndarray | None = None) -> None:
        geometry = self.grid
        factor, cols, _ = geometry.layout()
        grid = self.query_one("#tiles", Grid)
        shown = real is not None and self.zoomed
        grid.display, self.query_one("#pixels").display = not shown, shown
        if shown:
            self._place_pixels(page, real)
            return
        self.query("#pixels .pixels").remove()
        grid.styles.grid_size_columns = cols
        grid.styles.grid_columns = str(span(STAMP // factor, self.view))
        self.query_one("#meta").display = geometry.meta_shown  # zoomed: the stamp takes the width
        tiles = []
        for i, row in enumerate(self.page_rows(page)):
            info = self.table.row(row)
            c = self.consensus.get(ident(info))
            lines, width, where = tile_lines(rendered[row], geometry, factor)
            if self.zoomed:
                grid.styles.grid_columns = str(width)
            mine = c.grades.get(self.who, "") if c else ""
            tiles.append((lines, self._label(info) + where, mine, width, i == self.cursor))
        place_tiles(grid, list(self.query(StampTile)), tiles)
        self._show_meta()

    def _label(self, info: dict[str, Any]) -> str:
        """A stamp's caption: its number, and its score unless blind items are in the stream."""
        if not self.table.scored:
            return f"#{info['rank']}"
        return f"#{info['rank']} " + ("n/a" if info.get("score") is None else score_text(info["score"], 3))

    def _place_pixels(self, page: int, rgb: np.ndarray) -> None:
        """Zoomed in a terminal that draws images: the stamp's own pixels, whole."""
        rows = self.page_rows(page)
        box = self.query_one("#pixels")
        box.query(".pixels").remove()
        if rows:
            info = self.table.row(rows[0])
            drawn = pixels.image(rgb)
            drawn.styles.height = max(4, self.size.height - 5)
            box.mount(drawn)
            c = self.consensus.get(ident(info))
            mine = c.grades.get(self.who, "") if c else ""
            caption = StampTile([], self._label(info), mine, 64).caption
            self.query_one("#pixels-caption", Static).update(caption)
        self._show_meta()

    def progress_line(self) -> str:
        assert self.table is not None
        source = "" if self.path.name == CANDIDATES_FILE else self.path.name
        return progress_line(self.table, self.consensus, self.who, self.filter, len(self.rows), source)

    def action_next_file(self) -> None:
        """The run's next scored file (its candidates, each catalogue's, each folder of FITS
        cutouts'), in this screen's place."""
        files = scored_files(self.app.engine.workspace.root, self.run)
        if len(files) < 2:
            self.notify(f"only {self.path.name} is scored for run {self.run}", markup=False)
            return
        here = files.index(self.path) if self.path in files else -1
        self.app.switch_screen(CandidatesScreen(files[(here + 1) % len(files)], self.run))

    def _show_meta(self) -> None:
        if self.table is not None:
            self.query_one("#cand-progress", Static).update(Text(visible(self.progress_line())))
        rows = self.page_rows(self.page)
        panel = self.query_one("#meta", CandidatePanel)
        if not rows:
            panel.update(f"no candidates ({self.filter})")
            return
        self.cursor = min(self.cursor, len(rows) - 1)
        info = self.table.row(rows[self.cursor])
        panel.show_item(
            info,
            of=len(self.table),
            page=(self.page + 1, max(1, -(-len(self.rows) // self.per_page))),
            blind=not self.table.scored,
            settings=(
                f"view {self.view}  stretch {self.stretch:g}",
                f"filter {self.filter}",
                f"you    {visible(self.who)}",
            ),
            notes=self.notes.get(ident(info), []),
            consensus=self.consensus.get(ident(info)),
        )

    def on_resize(self) -> None:
        self.show()

    # -- actions -----------------------------------------------------------------------

    def action_move(self, dx: int, dy: int) -> None:
        if self.zoomed:  # the arrows pan the zoomed stamp, 4 pixels a press, inside it
            self.pan = self.grid.panned(dx, dy)
            self.show()
            return
        _, cols, _ = self.geometry()
        n = len(self.page_rows(self.page))
        target = self.cursor + dx + dy * cols
        if target >= n:
            self.action_page(1)
            return
        if target < 0:
            if self.page > 0:
                self.page -= 1
                self.cursor = self.per_page - 1
                self.show()
            return
        self.cursor = target
        self._restyle()

    def _restyle(self) -> None:
        for i, tile in enumerate(self.query(StampTile)):
            tile.select(i == self.cursor)
        self._show_meta()

    def _go(self, position: int) -> None:
        """Put the cursor on the `position`-th listed candidate (its page shown)."""
        if len(self.rows) == 0:
            return
        position = min(max(0, position), len(self.rows) - 1)
        page, cursor = divmod(position, self.per_page)
        changed = page != self.page
        self.page, self.cursor = page, cursor
        self.show() if changed else self._restyle()

    @property
    def position(self) -> int:
        return self.page * self.per_page + self.cursor

    def action_first(self) -> None:
        self._go(0)

    def action_last(self) -> None:
        self._go(len(self.rows) - 1)

    def action_next_ungraded(self) -> None:
        """The next listed candidate you have not graded (after the cursor, then from the top)."""
        if self.table is None or len(self.rows) == 0:
            return
        mine = {self.table.key(*k) for k, c in self.consensus.items() if self.who in c.grades}
        listed = self.table.keys[self.rows]
        todo = np.flatnonzero(~np.isin(listed, [k for k in mine if k is not None]))
        if todo.size == 0:
            self.notify("every listed candidate has your grade")
            return
        after = todo[todo > self.position]
        self._go(int(after[0] if after.size else todo[0]))

    def action_jump(self) -> None:
        """Go to an item by its number: its rank, or its place in a stream with blind items."""
        if self.table is None:
            return
        what = "rank" if self.table.scored else "number"

        def go(answer: str | None) -> None:
            if not answer or self.table is None:
                return
            try:
                number = int(answer)
            except ValueError:
                self.notify(visible(f"{answer!r} is not a {what}"), severity="warning", markup=False)
                return
            where = np.flatnonzero(self.table.ranks[self.rows] == number)
            if where.size == 0:
                self.notify(f"{what} {number} is not listed ({self.filter})", severity="warning")
                return
            self._go(int(where[0]))

        self.app.push_screen(NoteScreen(f"go to {what} (enter)"), go)

    def action_viewer(self) -> None:
        """The Legacy Survey viewer at the candidate, as a terminal hyperlink, and copied."""
        info = self._current()
        if info is None:
            return
        if not self.table.scored:  # the viewer shows DR10's sky: a simulated lens without its arc
            self.notify(
                "the viewer is off while blind items are in the stream: it would show a simulated"
                " lens without its arc (halo --blind-rate 0, or [triage] blind_rate = 0, turns them off)",
                severity="warning",
                markup=False,
            )
            return
        url = viewer_url(info["ra"], info["dec"])
        self.app.copy_to_clipboard(url)
        # a toast takes markup, never a Rich Text (it crashed on one); the URL is ours, escaped anyway
        self.notify(f'[link="{url}"]{escape(url)}[/link]', title="viewer (copied)", timeout=8)

    def action_page(self, step: int) -> None:
        pages = max(1, -(-len(self.rows) // self.per_page))
        new = min(max(0, self.page + step), pages - 1)
        if new != self.page:
            self.page, self.cursor = new, 0
            self.show()

    def _current(self) -> dict[str, Any] | None:
        rows = self.page_rows(self.page)
        return self.table.row(rows[self.cursor]) if rows and self.table else None

    def action_grade(self, value: str) -> None:
        info = self._current()
        if info is None:
            return
        who, run = self.who, self.run

        def change(store: Any) -> tuple[str, None]:
            grades_mod.grade(store, run, info["brickname"], info["objid"], who, value, blind=info["blind"])
            return None, None  # the badge under the stamp says it: no toast per grade to pile up

        self.write(change)
        self._go(self.position + 1)  # on to the next at once, over a page's end too

    def action_note(self) -> None:
        info = self._current()
        if info is None:
            return

        who, run = self.who, self.run

        def change(store: Any, note: str) -> tuple[str, None]:
            grades_mod.note(store, run, info["brickname"], info["objid"], who, note, info["blind"])
            return f"note saved on #{info['rank']}", None

        def save(note: str | None) -> None:
            if note:
                self.write(lambda store: change(store, note))

        self.app.push_screen(NoteScreen(), save)

    def action_undo(self) -> None:
        """Take back your latest grade or note, and move the cursor to its candidate."""
        who, run = self.who, self.run

        def change(store: Any) -> tuple[str, Any]:
            undone = grades_mod.undo(store, run, who)
            return ("nothing to undo" if undone is None else undone.describe(self._label_of(undone))), undone

        self.write(change)

    def _label_of(self, undone: Undone) -> str | None:
        """`#14`: an undone item's number in the stream, as its tile shows it."""
        key = self.table.key(undone.brickname, undone.objid, undone.blind) if self.table else None
        where = np.flatnonzero(self.table.keys == key) if key is not None else []
        return f"#{self.table.row(int(where[0]))['rank']}" if len(where) else None

    def action_cycle_filter(self) -> None:
        """The next filter; the cursor stays on its candidate where that is still listed,
        else on the first listed after it."""
        if self.table is None:
            return
        if self.position < len(self.rows):  # through an empty filter, the candidate before it
            self.anchor = int(self.rows[self.position])
        here = self.anchor
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self._filter_rows()
        self.page, self.cursor = divmod(int(np.searchsorted(self.rows, here)), self.per_page)
        if self.page * self.per_page + self.cursor >= len(self.rows):
            self.page, self.cursor = divmod(max(0, len(self.rows) - 1), self.per_page)
        self.show()

    def action_stretch(self, factor: float) -> None:
        """The asinh stretch ×2 or ÷2 (5 to 320): fainter arcs, or the galaxy's core."""
        self.stretch = min(max(self.stretch * factor, STRETCH_RANGE[0]), STRETCH_RANGE[1])
        self.show()

    def action_cycle_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.show()

    def action_zoom(self) -> None:
        if not self.zoomed:
            self.page, self.cursor = self.page * self.per_page + self.cursor, 0
        else:
            position = self.page
            self.zoomed = False
            self.page, self.cursor = divmod(position, self.per_page)
            self.show()
            return
        self.zoomed, self.pan = True, (0, 0)
        self.show()

    def action_export(self) -> None:
        """The candidates' grades (never the blind items') to CSV, and beside it each
        inspector's calibration."""
        if self.table is None:
            return
        self._export(grades_csv(self.path, self.run))

    @work(thread=True, group="grading")
    def _export(self, target: Path) -> None:
        with self.app.writes.lock:  # after the grades asked for before it
            try:
                rows = self.table.candidates.rows_of(grades_mod.current(self.store, self.run))
                n = grades_mod.export_csv(self.store, self.run, target, rows)
            except (OSError, sqlite3.Error) as err:
                self.post_message(Exported(f"not exported to {target}: {err}", ok=False))
                return
        also = grades_mod.calibration_path(target).name
        self.post_message(Exported(f"{n} graded candidates exported to {target} (and {also})"))

    def on_exported(self, message: Exported) -> None:
        self.notify(visible(message.said), markup=False, severity="information" if message.ok else "error")

    def action_inspectors(self) -> None:
        """Each inspector's completeness and false-positive rate on the blind items."""
        hidden = None if self.table is None or self.table.scored else self.who  # blind items in it
        self.app.push_screen(InspectorsScreen(self.run, grades_mod.calibration(self.store, self.run), hidden))
