"""`halo`: the operator console (Textual).

Screens: jobs (live table, details, launch, cancel, relaunch, logs), runs (monitor, compare,
candidates). `?` lists every action; the command palette (ctrl+p) does too. Key bindings have
ids and can be remapped in halo.toml under [keys]. `--readonly` hides every action that
changes state. All I/O runs in thread workers; an idle console does not repaint. A lost
terminal ends it (halo_tui.lifeline, started by the CLI); an unexpected exception ends it with
one line, its traceback in the workspace's console log."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from halo_tui.components.textual_fixes import monochrome_filters
from halo_tui.engine_protocol import ConsoleEngine
from halo_tui.format import home_relative
from halo_tui.lifeline import crash_log
from halo_tui.screens.help import HelpScreen
from halo_tui.screens.jobs import JobsScreen
from halo_tui.screens.runs import RunsScreen, latest_candidates
from halo_tui.write_queue import WriteQueue


class ActionCommands(Provider):
    """Every key-bound action of the screen the palette was opened on, and the app's: all of
    them as soon as it opens, the matching ones as you type."""

    def _actions(self) -> list[tuple[str, Any, str, str]]:
        # `self.screen`: the screen under the palette (`app.screen` is the palette itself)
        found = []
        for binding, target in _bindings(self.app, self.screen):
            if binding.description:
                label = f"{binding.description} ({self.app.get_key_display(binding)})"
                found.append((label, target, binding.action, binding.id or ""))
        return found

    async def discover(self) -> Hits:
        for label, target, action, ident in self._actions():
            yield DiscoveryHit(label, _runner(target, action), help=ident)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, target, action, ident in self._actions():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), _runner(target, action), help=ident)


def _runner(target: Any, action: str) -> Any:
    async def run() -> None:
        await target.run_action(action)

    return run


def _bindings(app: App[Any], screen: Any = None) -> list[tuple[Binding, Any]]:
    """(binding, the node it belongs to) for `screen` (the active one), its focused widget
    (a table's or a log's own keys) and the app, allowed ones only; a key bound twice is
    listed where it acts (the focused widget, then the screen, then the app)."""
    screen = screen or app.screen
    focused = getattr(screen, "focused", None)
    chain = [n for n in (focused, screen, app) if n is not None]
    taken: set[str] = set()
    found: dict[Any, list[tuple[Binding, Any]]] = {id(n): [] for n in chain}
    for node in chain:
        for binding in getattr(node, "BINDINGS", []):
            if not isinstance(binding, Binding):
                continue
            keys = {k.strip() for k in binding.key.split(",")}
            name = binding.action.split("(")[0]
            check = getattr(node, "check_action", None)
            if keys <= taken or (check is not None and check(name, ()) is False):
                continue
            taken |= keys
            found[id(node)].append((binding, node))
    order = [screen, focused, app]  # as a person reads them: the screen's own keys first
    return [pair for node in order if node is not None for pair in found[id(node)]]


SCREENS = Binding.Group("jobs runs cands", compact=True)  # 1 2 3 in the footer, as one item


class HaloApp(App[None]):
    """`halo`: the operator console on one workspace."""

    TITLE = "Dark Halo Scope"
    CSS = """
    #dialog {
        width: 96%; max-width: 110; height: auto; max-height: 90%; border: round $accent; padding: 1 2;
        background: $panel;
    }
    .status { height: 1; color: $text-muted; }
    Toast { width: auto; max-width: 96%; }
    """  # the dialogs' shared look (#dialog), the status lines, toasts as wide as their text (a path
    # or URL is not wrapped mid-word where the screen has room); each screen's own CSS is beside it
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("1", "jobs", "Jobs", id="app.jobs", group=SCREENS),
        Binding("2", "runs", "Runs", id="app.runs", group=SCREENS),
        Binding("3", "candidates", "Candidates", id="app.candidates", group=SCREENS),
    ]

    def __init__(
        self, engine: ConsoleEngine, readonly: bool = False, blind_rate: float | None = None
    ) -> None:
        super().__init__()
        self._filters = monochrome_filters(self._filters)  # NO_COLOR without its crash
        self.engine = engine
        self.readonly = readonly
        self.writes = WriteQueue()  # grades, notes and undos on their way to the store
        self.crash: str | None = None  # what failed, as one line, if something did
        # the fraction of the triage stream that is blind items (halo.toml [triage])
        self.blind_rate = engine.workspace.config.triage.blind_rate if blind_rate is None else blind_rate

    def on_mount(self) -> None:
        self.sub_title = home_relative(self.engine.workspace.root) + (
            "  [read-only]" if self.readonly else ""
        )
        keys = self.engine.workspace.config.keys
        if keys:
            self.set_keymap(keys)
        self.push_screen(JobsScreen())

    def flush_writes(self) -> bool:
        """Write the queued grades now (on the way out: after q, a crash, a hang-up)."""
        return self.writes.flush(self.engine.store)

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected exception: its traceback to the console log (never to the terminal,
        never with locals: rendering those froze the console for seconds), one line kept for
        the terminal, and the app closes as Textual closes it."""
        if self.crash is None:
            path, line = crash_log(self.engine.workspace.logs_dir, error)
            self.crash = line + (f" (the traceback is in {path})" if path else "")
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        self._close_messages_no_wait()  # Textual's own renders the traceback with locals

    def action_help(self) -> None:
        self.push_screen(HelpScreen(_bindings(self)))

    def _back_to(self, kind: type) -> bool:
        """Pop back to the screen of `kind` if it is open; False if it is not."""
        if not any(isinstance(screen, kind) for screen in self.screen_stack):
            return False
        while not isinstance(self.screen, kind):
            self.pop_screen()
        return True

    def action_jobs(self) -> None:
        if not self._back_to(JobsScreen):
            self.push_screen(JobsScreen())

    def action_candidates(self) -> None:
        """The candidates screen: the open one, else the run chosen on Runs, else the run
        whose candidates were written last."""
        from halo_tui.screens.candidates import CandidatesScreen

        if self._back_to(CandidatesScreen):
            return
        runs = next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)
        chosen = runs.selected_candidates() if runs is not None else None
        found = chosen or latest_candidates(self.engine.workspace.root)
        if found is None:
            self.notify("no candidates yet: run `halo stage score` on a trained run")
            return
        path, run = found
        self.push_screen(CandidatesScreen(path, run))

    def action_runs(self) -> None:
        """The runs screen: the open one (never a second), else a new one over the jobs."""
        if not self._back_to(RunsScreen):
            self._back_to(JobsScreen)
            self.push_screen(RunsScreen())
