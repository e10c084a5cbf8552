"""Every key on every screen (issue 22): the review crashed the console four ways with keys
nobody had pressed in a test (`o` on Candidates, Compare at 80×24, the monitor's plots) and
with NO_COLOR. For each screen, at 80×24, 120×35 and 200×50, in truecolor, 256 colours, 16
colours and NO_COLOR=1: every binding the screen (and its focused widget) declares is pressed,
then a fixed-seed random sequence of 200 keys drawn from every binding of every screen,
waiting for the console to be idle after each key. The console must stay alive (or quit
cleanly when a key asks it to: it is then started again where the sequence was), raise
nothing, say no error, and draw the screen it ends on. The bindings are read from the
screens, so a new one is covered without editing this test.

The whole matrix (18 screens × 12 sizes and modes, their bindings and 200 random keys each)
takes about half an hour on two cores, a screen change costing ~0.1 s under the pilot:
HALOTEST_EVERY_KEY=all runs it. The suite runs each screen at one size and mode (they take
turns, so all twelve have screens) with 20 random keys.
Keys are sent as the pilot sends them, without its wait for an idle CPU (20 ms a key, a
second under load); `Session.idle` waits for the console's own queues and workers instead."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.command import CommandPalette

from core.candidates import blinds_path
from core.errors import UsageError
from core.layout import candidates_file
from halo_tui.app import HaloApp
from halo_tui.screens.candidates import CandidatesScreen
from halo_tui.screens.compare import CompareScreen
from halo_tui.screens.confirm import ConfirmScreen
from halo_tui.screens.help import HelpScreen
from halo_tui.screens.inspectors import InspectorsScreen
from halo_tui.screens.job_details import DetailsScreen
from halo_tui.screens.jobs import JobsScreen
from halo_tui.screens.launch import LaunchScreen
from halo_tui.screens.log import LogScreen
from halo_tui.screens.monitor import MonitorScreen
from halo_tui.screens.prompt import NoteScreen
from halo_tui.screens.runs import RunsScreen

SIZES = ((80, 24), (120, 35), (200, 50))
COLOURS = {
    "truecolor": {"COLORTERM": "truecolor", "TERM": "xterm-256color"},
    "256": {"TERM": "xterm-256color"},
    "16": {"TERM": "xterm"},
    "NO_COLOR": {"TERM": "xterm-256color", "NO_COLOR": "1"},
}
IDLE_S = 20.0  # a key after which the console is not idle within this long hangs it: a failure

# Each screen as a person reaches it from the jobs screen, and what it is once there.
# (name, keys from the jobs screen, screen class, blind items in the stream)
SCREENS = (
    ("jobs", (), JobsScreen, True),
    ("details", ("enter",), DetailsScreen, True),
    ("log", ("l",), LogScreen, True),
    ("launch", ("n",), LaunchScreen, True),
    ("confirm", ("c",), ConfirmScreen, True),
    ("help", ("question_mark",), HelpScreen, True),
    ("palette", ("ctrl+p",), CommandPalette, True),
    ("runs", ("2",), RunsScreen, True),
    ("monitor", ("2", "enter"), MonitorScreen, True),
    ("compare", ("2", "space", "down", "space", "c"), CompareScreen, True),
    ("candidates", ("3",), CandidatesScreen, True),
    ("candidates, no blinds", ("3",), CandidatesScreen, False),
    ("zoom", ("3", "z"), CandidatesScreen, True),
    ("band g", ("3", "v"), CandidatesScreen, True),
    ("bands side by side", ("3", "v", "v", "v", "v"), CandidatesScreen, True),
    ("inspectors", ("3", "i"), InspectorsScreen, True),
    ("note", ("3", "t"), NoteScreen, True),
    ("go to rank", ("3", "number_sign"), NoteScreen, True),
)
PRINTABLE = {"question_mark": "?", "number_sign": "#", "plus": "+", "minus": "-", "slash": "/", "space": " "}


def keys_of(bindings: list) -> list[str]:
    """The keys of a BINDINGS list (a binding may name several: "escape,q")."""
    out = []
    for binding in bindings:
        key = binding.key if isinstance(binding, Binding) else binding[0]
        out += [k.strip() for k in key.split(",") if k.strip()]
    return out


def all_keys() -> list[str]:
    """Every key bound anywhere in the console: the app's and every screen's."""
    found = keys_of(HaloApp.BINDINGS)
    for _, _, kind, _ in SCREENS:
        found += keys_of(getattr(kind, "BINDINGS", []))
    return sorted(set(found))


@pytest.fixture(scope="module")
def ended_jobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two real jobs of the test stage, one that ended well and one that failed
    (exit 4), made once for the module: each test copies its `.halo/` (a job's log is read in
    the workspace it is in), where launching and waiting for them took each ~4 s."""
    from core.engine import Engine
    from core.workspace import Workspace
    from tests.conftest import SLEEPY_TOML, STAGELIB

    root = tmp_path_factory.mktemp("ended") / "ws"
    root.mkdir()
    shutil.copytree(STAGELIB, root / "stagelib")
    (root / "halo.toml").write_text(SLEEPY_TOML)
    made = Engine(Workspace(root))
    made.wait(made.launch("sleepy", params={"seconds": "0.1"}).id)
    made.wait(made.launch("sleepy", params={"code": "4"}).id)
    made.store.close()
    return root / ".halo"


@pytest.fixture
def busy_workspace(ended_jobs: Path, engine, make_candidates, make_evaluation) -> Path:
    """Jobs that ended well and badly, a running one, two evaluated runs with metrics (one
    train job writing one of them), candidates with blind items and a known lens."""
    root = engine.workspace.root
    assert not (root / ".halo").exists()  # nothing opened this test's store yet
    shutil.copytree(ended_jobs, root / ".halo")
    for name, level in (("gen1", 0.3), ("gen2", 1.2)):
        run = root / "data" / "runs" / name
        (run / "eval").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"run": name, "variant": "v4_sota", "epochs": 4}))
        lines = [
            {
                "epoch": e,
                "train_loss": 0.5 / (e + 1),
                "val_loss": 0.6 / (e + 1),
                "auroc": 0.9 + 0.02 * e,
                "tpr@fpr1e-2": 0.4 + 0.1 * e,
                "tpr@fpr1e-3": None,
                "seconds": 12.0,
                "n_neg_independent": 300,
            }
            for e in range(3)
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        (run / "eval" / "eval-test.json").write_text(json.dumps(make_evaluation(level)))
    path = make_candidates(candidates_file(root, "gen1"), 60, known_lens=["SLACS [x]"] + [None] * 59)
    truth = ["lens"] * 6 + ["not_lens"] * 6
    make_candidates(blinds_path(path), 12, brickname=["0001p000"] * 12, truth=truth)
    engine.launch("sleepy", params={"seconds": "600"})  # the newest: the cursor's row, `c` cancels it
    return root


async def _no_wait(*_args: object, **_kwargs: object) -> None:
    """The pilot's wait for an idle CPU (20 ms at least per key, a second under load)."""
    await asyncio.sleep(0)


class Session:
    """One console under the pilot, started again if a key quits it."""

    def __init__(self, engine, size: tuple[int, int], blinds: bool) -> None:
        self.engine, self.size, self.blinds = engine, size, blinds
        self.app: HaloApp | None = None
        self.context = None
        self.pilot = None
        self.drawn: list[object] = []  # the screens drawn, in order

    async def start(self) -> None:
        self.app = HaloApp(self.engine, blind_rate=0.2 if self.blinds else 0.0)
        real = self.app._display

        def display(screen, renderable) -> None:  # noqa: ANN001 - Textual's own signature
            if renderable is not None:
                self.drawn.append(screen)
            real(screen, renderable)

        self.app._display = display
        self.context = self.app.run_test(size=self.size, notifications=True)  # toasts drawn too
        self.pilot = await self.context.__aenter__()
        await self.idle()

    async def stop(self) -> None:
        if self.context is not None:
            await self.context.__aexit__(None, None, None)
            self.check()
        self.context = None

    def check(self, context: str = "") -> None:
        app = self.app
        assert app._exception is None, f"{context}: {app._exception!r}"
        assert app.crash is None, f"{context}: {app.crash}"
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert not errors, f"{context}: said {errors}"

    async def idle(self) -> None:
        """Every message the key set off handled and every worker it started finished (and
        what they posted handled): the queues of the app and of every widget on screen stay
        empty over a few turns of the event loop. A hang fails the test after IDLE_S."""
        deadline, calm = time.monotonic() + IDLE_S, 0
        while calm < 3:
            await asyncio.sleep(0)
            if not self.running:
                return
            app = self.app
            nodes = [app, *app.screen_stack, *app.screen.walk_children()]
            busy = any(not n._message_queue.empty() for n in nodes) or not all(
                w.is_finished for w in app.workers
            )
            calm = 0 if busy else calm + 1
            if busy:
                assert time.monotonic() < deadline, f"not idle after {IDLE_S} s: {list(app.workers)}"
                await asyncio.sleep(0.001)

    async def shown(self) -> bool:
        """Whether the screen on top is drawn within IDLE_S: the screen repaints on its own
        timer (a sixtieth of a second), not on a message, so idle alone does not wait for it."""
        deadline = time.monotonic() + IDLE_S
        while self.app.screen not in self.drawn and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.app.screen in self.drawn

    @property
    def running(self) -> bool:
        return self.app is not None and self.app.is_running and not self.app._exit

    async def goto(self, keys: tuple[str, ...], kind: type) -> None:
        """The keys that reach a screen of `kind`: from the candidates screen when one is open
        (as it was when it opened: the composite, not zoomed, no filter, the first page), else from a
        fresh jobs screen (no filter, newest first, the cursor on a running job)."""
        if not self.running:
            await self.stop()
            await self.start()
        app = self.app
        base = CandidatesScreen if keys[:1] == ("3",) else None
        if base is not None and any(isinstance(s, base) for s in app.screen_stack):
            for _ in range(2):  # once more if a page the worker was rendering swallowed the key
                while not isinstance(app.screen, base):
                    app.pop_screen()
                    await self.idle()
                screen = app.screen
                screen.view, screen.zoomed, screen.pan = "grz", False, (0, 0)
                screen.filter = "all"  # a filter the random keys left may list nothing to note
                screen._filter_rows()
                screen.page = screen.cursor = 0
                screen.show()
                await self.idle()
                for key in keys[1:]:
                    await self.press(key, f"reaching {kind.__name__}")
                if isinstance(app.screen, kind):
                    break
        else:
            for _ in range(2):  # once more if the jobs table was refilled under the first key
                await self._fresh_jobs()
                for key in keys:
                    await self.press(key, f"reaching {kind.__name__}")
                if isinstance(app.screen, kind):
                    break
        said = [n.message for n in app._notifications]
        assert isinstance(app.screen, kind), (keys, app.screen, app.screen.focused, said)

    async def _fresh_jobs(self) -> None:
        app = self.app
        while not isinstance(app.screen, JobsScreen) and len(app.screen_stack) > 1:
            app.pop_screen()
            await self.idle()
        if not isinstance(app.screen, JobsScreen):
            app.push_screen(JobsScreen())
            await self.idle()
        jobs = app.screen
        jobs.action_clear_filter()
        jobs._sort_by(0)
        live = self.engine.store.live()
        if not live:  # a key cancelled it: `c` needs one to ask about
            live = [self.engine.launch("sleepy", params={"seconds": "600"}, force=True)]
            jobs.load()
        await self.idle()  # a job live a moment ago may have ended since: its row stays
        table = jobs.query_one("DataTable")
        table.move_cursor(row=table.get_row_index(str(live[0].id)))
        table.focus()
        await self.idle()

    async def press(self, key: str, context: str) -> None:
        if not self.running:  # a key quit the console (q, the palette's Quit): start again
            self.check(context)
            await self.stop()
            await self.start()
        await self.app._press_keys([key])  # the pilot's press without its wait for every widget
        await self.idle()
        self.check(f"{context}, key {key!r}")

    def declared(self) -> list[str]:
        """The keys the current screen and its focused widget declare."""
        screen = self.app.screen
        found = keys_of(getattr(screen, "BINDINGS", []))
        if screen.focused is not None:
            found += keys_of(getattr(screen.focused, "BINDINGS", []))
        return list(dict.fromkeys(found))


def runs_here(number: int, size: tuple[int, int], colour: str) -> tuple[bool, bool]:
    """Whether screen `number` has its bindings pressed, and its random sequence run, at this
    size and colour mode: everywhere with HALOTEST_EVERY_KEY=all; else at one of the twelve,
    the screens taking turns, so that every size and every colour mode has screens of its own
    and the suite stays within its time."""
    s, c = SIZES.index(size), list(COLOURS).index(colour)
    if os.environ.get("HALOTEST_EVERY_KEY") == "all":
        return True, True
    here = number % (len(SIZES) * len(COLOURS)) == s * len(COLOURS) + c
    return here, here


@pytest.mark.parametrize("colour", list(COLOURS))
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_every_key_on_every_screen(
    engine, busy_workspace: Path, size, colour, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("textual.app.wait_for_idle", _no_wait)  # Session.idle waits instead
    for var in ("COLORTERM", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    for var, value in COLOURS[colour].items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.chdir(tmp_path)  # the palette's "save screenshot" writes where it runs
    launch = engine.launch

    def sleepy_only(stage: str, *args, **kwargs):  # noqa: ANN002, ANN003
        """Random keys in the launch form must not start a real stage (the demo's survey)."""
        if stage != "sleepy":
            raise UsageError(f"{stage}: not launched in this test")
        return launch(stage, *args, **kwargs)

    monkeypatch.setattr(engine, "launch", sleepy_only)
    rng = random.Random(f"{size}-{colour}")
    every = all_keys()
    everything = os.environ.get("HALOTEST_EVERY_KEY") == "all"
    pressed = 0
    for blinds in (True, False):
        wanted = [
            (n, entry, *runs_here(n, size, colour)) for n, entry in enumerate(SCREENS) if entry[3] == blinds
        ]
        if not any(keys or sequence for *_, keys, sequence in wanted):
            continue
        session = Session(engine, size, blinds)
        await session.start()
        try:
            for _, (name, keys, kind, _), declared, sequence in wanted:
                began = time.monotonic()
                if declared:
                    await session.goto(keys, kind)
                    for key in [k for k in session.declared() if k not in ("q", "ctrl+q")] + ["q"]:
                        if not (session.running and isinstance(session.app.screen, kind)):
                            await session.goto(keys, kind)  # the last key left it: back again
                        await session.press(key, f"{name}: declared")
                        pressed += 1
                if sequence:
                    await session.goto(keys, kind)
                    session.drawn.clear()
                    for key in rng.choices(every, k=RANDOM_KEYS if everything else SUITE_RANDOM_KEYS):
                        await session.press(key, f"{name}: random")
                        pressed += 1
                    if session.running and session.drawn:
                        assert await session.shown(), f"{name}: {session.app.screen} not drawn"
                if os.environ.get("HALOTEST_EVERY_KEY_TIMES"):
                    print(f"{name}: {time.monotonic() - began:.1f} s")
        finally:
            await session.stop()
    assert pressed > 0


RANDOM_KEYS = 200  # the sequence, with HALOTEST_EVERY_KEY=all
SUITE_RANDOM_KEYS = 20  # in the suite
