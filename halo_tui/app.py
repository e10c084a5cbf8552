"""`halo`: the operator console (Textual).

Screens: jobs (live table, details, launch, cancel, relaunch, logs), runs (monitor, compare,
candidates). `?` lists every action; the command palette (ctrl+p) does too. Key bindings have
ids and can be remapped in halo.toml under [keys]. `--readonly` hides every action that
changes state. All I/O runs in thread workers; an idle console does not repaint. The app
exits on SIGHUP (a lost SSH link)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider

from halo_tui.format import home_relative
from halo_tui.screens.help import HelpScreen
from halo_tui.screens.jobs import JobsScreen
from halo_tui.screens.runs import RunsScreen, latest_candidates


class ActionCommands(Provider):
    """Every key-bound action of the screen the palette was opened on, and the app's."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        # `self.screen`: the screen under the palette (`app.screen` is the palette itself)
        for binding, target in _bindings(self.app, self.screen):
            if not binding.show and not binding.description:
                continue
            label = f"{binding.description} ({self.app.get_key_display(binding)})"
            score = matcher.match(label)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(label), _runner(target, binding.action), help=binding.id or ""
                )


def _runner(target: Any, action: str) -> Any:
    async def run() -> None:
        await target.run_action(action)

    return run


def _bindings(app: App[Any], screen: Any = None) -> list[tuple[Binding, Any]]:
    """(binding, the node it belongs to) for `screen` (the active one) and the app, allowed
    ones only."""
    found = []
    for node in (screen or app.screen, app):
        for binding in getattr(node, "BINDINGS", []):
            if isinstance(binding, Binding):
                name = binding.action.split("(")[0]
                check = getattr(node, "check_action", None)
                if check is None or check(name, ()) is not False:
                    found.append((binding, node))
    return found


class HaloApp(App[None]):
    """`halo`: the operator console on one workspace."""

    TITLE = "Dark Halo Scope"
    CSS = """
    #dialog {
        width: 96%; max-width: 110; height: auto; max-height: 90%; border: round $accent; padding: 1 2;
        background: $panel;
    }
    .status { height: 1; color: $text-muted; }
    """  # the dialogs' shared look (#dialog), the status lines; each screen's own CSS is beside it
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("1", "jobs", "Jobs", id="app.jobs"),
        Binding("2", "runs", "Runs", id="app.runs"),
        Binding("3", "candidates", "Candidates", id="app.candidates"),
    ]

    def __init__(self, engine: Any, readonly: bool = False, blind_rate: float | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.readonly = readonly
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
        try:  # a lost SSH link hangs up: leave cleanly (the jobs go on)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

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
