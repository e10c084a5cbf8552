"""A smoke test of `halo` in a real terminal: tmux runs it, keys go in with send-keys, the
screen comes back with capture-pane. It also checks that a hang-up ends the console. The tmux
server is a private one (`tmux -L`, its own socket), so a user's own tmux server, its
sessions and options, are never touched, and two test runs at once do not meet."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from textual.binding import Binding

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


SOCKET = f"halo-test-{os.getpid()}"


def _tmux(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", SOCKET, *args], **kwargs)


def _start(session: str, env: dict[str, str], *command: str) -> None:
    """A session at 80×24 on the private server, the console's settings passed explicitly
    (`-e`): a server already running keeps its own environment for new sessions."""
    passed = [a for k in ("HALO_WORKSPACE", "TERM", "USER") if k in env for a in ("-e", f"{k}={env[k]}")]
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", *passed, *command, check=True, env=env)


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session, capture_output=True, text=True).stdout


def _wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = _screen(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never showed; the screen was:\n{_screen(session)}")


def _keys(session: str, key: str) -> None:
    _tmux("send-keys", "-t", session, key, check=True)
    time.sleep(0.4)  # a lone Escape must not merge with the next key into an Alt sequence


def test_halo_in_tmux(halo, workspace: Path) -> None:
    halo("stage", "sleepy", "--seconds", "0.1", "--wait", check=0)
    halo("stage", "sleepy", "--code", "5", "--wait", check=1)
    session = f"halo-smoke-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(TERM="xterm-256color", HALO_WORKSPACE=str(workspace))
    env.pop("COLORTERM", None)  # no truecolor: the console falls back to 256 colours
    _start(session, env, halo.executable)
    _tmux("set-option", "-s", "escape-time", "10", check=True)  # on the private server only
    try:
        screen = _wait_for(session, "succeeded")
        assert "failed" in screen and "sleepy" in screen and "Dark Halo Scope" in screen
        _keys(session, "?")
        _wait_for(session, "jobs.cancel")
        _keys(session, "Escape")
        _keys(session, "l")
        _wait_for(session, "sleepy: start")
        _keys(session, "Escape")
        _keys(session, "Enter")  # the newest job, first in the table
        screen = _wait_for(session, "exited with code 5")
        assert "halo stage sleepy --code 5" in screen
        pid = _tmux(
            "list-panes", "-t", session, "-F", "#{pane_pid}", capture_output=True, text=True
        ).stdout.strip()
    finally:
        _tmux("kill-session", "-t", session, capture_output=True)  # hangs up the pane
        _tmux("kill-server", capture_output=True)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the console outlived its terminal"


def test_a_triage_pass_at_80x24(halo, workspace: Path, make_candidates) -> None:
    """Issue 14: a person's triage pass in a real terminal at 80×24, blind items mixed in at
    the workspace's rate: open the candidates with 3, jump, grade, note, undo the note, grade a
    blind item, see the calibration, filter, export, quit; the grades and the CSVs are there."""
    from core import grades
    from core.candidates import CandidateTable, TriageStream, blinds_path
    from core.layout import candidates_file
    from core.workspace import Workspace

    (workspace / "data" / "runs" / "demo").mkdir(parents=True)
    (workspace / "data" / "runs" / "demo" / "run.json").write_text('{"run": "demo"}')
    (workspace / "halo.toml").write_text("[triage]\nblind_rate = 0.25\n")
    path = make_candidates(candidates_file(workspace, "demo"), 30)
    truth = ["lens"] * 5 + ["not_lens"] * 5
    blinds = make_candidates(blinds_path(path), 10, brickname=["0001p000"] * 10, truth=truth)
    stream = TriageStream(CandidateTable(path), CandidateTable(blinds), 0.25, seed="demo")
    candidate = stream.row(int(stream.source.tolist().index(0)))
    blind = stream.row(int(stream.source.tolist().index(1)))
    session = f"halo-triage-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(TERM="xterm-256color", HALO_WORKSPACE=str(workspace), USER="alice")
    _start(session, env, halo.executable)
    _tmux("set-option", "-s", "escape-time", "10", check=True)

    def jump(item: dict) -> None:
        _keys(session, "#")
        _wait_for(session, "go to number")  # with blind items in it: a place in the stream
        _tmux("send-keys", "-t", session, "-l", str(item["rank"]), check=True)
        _keys(session, "Enter")
        _wait_for(session, f"#{item['rank']} of 40")

    try:
        _wait_for(session, "Dark Halo Scope")
        _keys(session, "3")
        _wait_for(session, "graded 0/40")
        jump(candidate)
        _keys(session, "a")
        _wait_for(session, "graded 1/40")
        jump(candidate)  # back (the grade moved the cursor on)
        _keys(session, "t")
        _tmux("send-keys", "-t", session, "-l", "arc NE", check=True)
        _keys(session, "Enter")
        _wait_for(session, "alice: arc NE")
        assert grades.notes(Workspace(workspace).store, "demo") == {
            (candidate["brickname"], candidate["objid"]): ["alice: arc NE"]
        }
        _keys(session, "U")  # the note goes; the A stays
        _wait_for(session, "undid the note")
        jump(blind)  # nothing on screen says it is one
        _keys(session, "x")
        _wait_for(session, "graded 2/40")
        _keys(session, "i")  # her own figures would say the item she just graded was blind
        _wait_for(session, "your own figures are hidden")
        alice = grades.calibration(Workspace(workspace).store, "demo")["alice"]
        assert (alice.duds, alice.sims) == ((1, 0) if blind["blind"] == "not_lens" else (0, 1))
        _keys(session, "Escape")
        _keys(session, "f")
        _wait_for(session, "filter ungraded (38)")
        _keys(session, "e")
        _wait_for(session, "exported")
        _keys(session, "q")
    finally:
        _tmux("kill-session", "-t", session, capture_output=True)
        _tmux("kill-server", capture_output=True)
    store = Workspace(workspace).store
    assert {k: c.grades for k, c in grades.current(store, "demo").items()} == {
        (candidate["brickname"], candidate["objid"]): {"alice": "A"}
    }
    assert grades.notes(store, "demo") == {}
    exported = path.with_name("grades-demo.csv").read_text().splitlines()
    assert exported[0].startswith("run,rank,brickname,objid") and len(exported) == 2
    assert exported[1].startswith(f"demo,{candidate['objid'] + 1},1499p022,{candidate['objid']},")  # its rank
    inspectors = grades.calibration_path(path.with_name("grades-demo.csv")).read_text().splitlines()
    assert len(inspectors) == 2 and inspectors[1].startswith("demo,alice,")


def test_the_console_asks_before_making_a_folder_a_workspace(halo, tmp_path: Path) -> None:
    """`halo` typed in a folder that is not a workspace says so and asks; no makes nothing."""
    folder = tmp_path / "somewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(TERM="xterm-256color", HALO_WORKSPACE=str(folder))
    for answer, shown in (("n", "nothing created"), ("y", "Dark Halo Scope")):
        session = f"halo-ask-{os.getpid()}-{answer}"
        _start(session, env, "sh", "-c", f"{halo.executable}; echo halo exited; sleep 30")
        try:
            screen = _wait_for(session, "open the console? [y/N]")
            assert "is not a halo workspace yet" in " ".join(screen.split())
            _keys(session, answer)
            _keys(session, "Enter")
            _wait_for(session, shown)
            assert (folder / ".halo").exists() == (answer == "y")
            if answer == "y":
                _keys(session, "q")
                _wait_for(session, "halo exited")
        finally:
            _tmux("kill-session", "-t", session, capture_output=True)


def _halo_processes(workspace: Path) -> list[int]:
    """Console processes on `workspace` (a `halo` whose environment names it), still alive."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/halo") for part in cmdline[:2]) and (
            f"HALO_WORKSPACE={workspace}".encode() in environ
        ):
            found.append(int(proc.name))
    return found


def test_the_console_is_gone_when_its_terminal_is(halo, workspace: Path, make_candidates) -> None:
    """Issue 22 item 5: after its tmux server (or SSH link) went away the console lived on with
    PPID 1, in a futex wait, holding the store. Twenty times, on a random screen (jobs, the
    log, the candidates with grades just pressed, a modal open), the tmux server is killed at a
    random moment; within 2 s no console is left, and every grade the screen showed as saved
    is in the store. A second tmux server, the user's own, runs beside it and is untouched."""
    import random

    from core import grades
    from core.layout import candidates_file
    from core.workspace import Workspace

    (workspace / "data" / "runs" / "demo").mkdir(parents=True)
    (workspace / "data" / "runs" / "demo" / "run.json").write_text('{"run": "demo"}')
    make_candidates(candidates_file(workspace, "demo"), 60)
    halo("stage", "sleepy", "--seconds", "0.1", "--wait", check=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(TERM="xterm-256color", HALO_WORKSPACE=str(workspace), USER="alice")
    users = f"halo-user-{os.getpid()}"  # the user's own server, which must outlive every kill
    subprocess.run(["tmux", "-L", users, "new-session", "-d", "-s", "mine", "sleep", "600"], check=True)
    rng = random.Random(22)
    scenes = {
        "jobs": [],
        "log": ["l"],
        "help": ["?"],
        "launch form": ["n"],
        "candidates, grading": ["3", "a", "b", "x", "c"],
        "zoomed": ["3", "z", "Right"],
    }
    took = []
    try:
        for loop in range(20):
            name = rng.choice(sorted(scenes))
            socket = f"halo-hup-{os.getpid()}-{loop}"
            tmux = ["tmux", "-L", socket]
            passed = [a for k in ("HALO_WORKSPACE", "TERM", "USER") for a in ("-e", f"{k}={env[k]}")]
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", "c", "-x", "120", "-y", "35", *passed, halo.executable],
                check=True,
                env=env,
            )
            try:
                subprocess.run([*tmux, "set-option", "-s", "escape-time", "10"], check=True)
                _wait_in(tmux, "Dark Halo Scope")
                for key in scenes[name]:
                    subprocess.run([*tmux, "send-keys", "-t", "c", key], check=True)
                    time.sleep(0.05)
                time.sleep(rng.uniform(0, 0.6))  # a random moment: mid-render, mid-write, idle
                shown = _screen_in(tmux)
            finally:
                killed = time.monotonic()
                subprocess.run([*tmux, "kill-server"], capture_output=True)
            while _halo_processes(workspace) and time.monotonic() - killed < 10:
                time.sleep(0.05)
            left = _halo_processes(workspace)
            took.append(time.monotonic() - killed)
            assert not left, f"loop {loop} ({name}): the console outlived its terminal: {left}"
            assert took[-1] < 2.0, f"loop {loop} ({name}): it took {took[-1]:.1f} s to go"
            graded = re.search(r"graded (\d+)/", shown)
            mine = grades.current(Workspace(workspace).store, "demo")
            assert not graded or len(mine) >= int(graded.group(1)), (name, shown)
        mine = subprocess.run(["tmux", "-L", users, "has-session", "-t", "mine"], capture_output=True)
        assert mine.returncode == 0, "the user's own tmux server was touched"
    finally:
        subprocess.run(["tmux", "-L", users, "kill-server"], capture_output=True)


def _screen_in(tmux: list[str]) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", "c"], capture_output=True, text=True).stdout


def _wait_in(tmux: list[str], text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in _screen_in(tmux):
        assert time.monotonic() < deadline, f"{text!r} never showed:\n{_screen_in(tmux)}"
        time.sleep(0.1)


TMUX_KEYS = {
    "escape": "Escape", "enter": "Enter", "question_mark": "?", "number_sign": "#", "plus": "+",
    "minus": "-", "slash": "/", "space": "Space", "pagedown": "NPage", "pageup": "PPage",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right", "home": "Home", "end": "End",
}  # fmt: skip


# actions that open a dialog or another screen: their keys go last in a screen's row of keys,
# so that the others reach the screen itself
LEAVES = {
    "app.pop_screen", "app.jobs", "note", "jump", "inspectors", "details", "log", "monitor",
    "launch", "cancel", "compare", "candidates", "search", "filter", "help", "yes", "no", "zoom",
}  # fmt: skip


def _tmux_key(key: str) -> str:
    """A Textual key name as tmux's send-keys names it (ctrl+p: C-p, pagedown: NPage)."""
    if key.startswith("ctrl+"):
        return "C-" + key[5:]
    return TMUX_KEYS.get(key, key)


def test_every_declared_key_through_a_real_terminal(halo, workspace: Path, make_candidates) -> None:
    """Issue 22: one pass of the every-key guard through tmux (the pilot's test covers the
    sizes, colour modes and random sequences): each screen reached with its keys, then every
    binding it declares (but q) pressed in a row, as a hurried person would; the console is
    alive at the end, its screen shows no failure, and it wrote no crash log."""
    from test_every_key import SCREENS, keys_of  # the guard's own list of screens

    from core.layout import candidates_file

    (workspace / "data" / "runs" / "demo").mkdir(parents=True)
    (workspace / "data" / "runs" / "demo" / "run.json").write_text('{"run": "demo", "epochs": 2}')
    make_candidates(candidates_file(workspace, "demo"), 30)
    halo("stage", "sleepy", "--seconds", "0.1", "--wait", check=0)
    session = f"halo-keys-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(TERM="xterm-256color", HALO_WORKSPACE=str(workspace), USER="alice")
    _start(session, env, halo.executable)
    _tmux("set-option", "-s", "escape-time", "10", check=True)
    _tmux("set-option", "-w", "-t", session, "remain-on-exit", "on", check=True)  # a dead pane says how

    def dead(before: str) -> str | None:
        """Why the console ended, if it did: its exit status, its last screen, any crash log."""
        state = _tmux(
            "display-message",
            "-p",
            "-t",
            session,
            "#{pane_dead} status #{pane_dead_status} signal #{pane_dead_signal}",
            capture_output=True,
        )
        if state.returncode == 0 and not state.stdout.startswith(b"1"):
            return None
        crashes = [p.read_text() for p in (workspace / ".halo" / "logs").glob("console-*.log")]
        return f"the console ended before {before} ({state.stdout!r}):\n{_screen(session)}\n{crashes}"

    seen = set()
    try:
        _wait_for(session, "Dark Halo Scope")
        pid = _tmux("list-panes", "-t", session, "-F", "#{pane_pid}", capture_output=True, text=True).stdout
        assert pid.strip().isdigit()
        for _, keys, kind, _ in SCREENS:
            if kind in seen:
                continue
            seen.add(kind)
            bindings = [b for b in getattr(kind, "BINDINGS", []) if isinstance(b, Binding)]
            stays = [b for b in bindings if b.action.split("(")[0] not in LEAVES]
            declared = [k for k in keys_of(stays + [b for b in bindings if b not in stays]) if k != "q"]
            # back to jobs from anywhere, then to the screen; once it shows, its keys in a row
            # (tmux keeps their order; the pauses keep an Escape from merging with the next key)
            for step in ("Escape", "Escape", "Escape", "1", *map(_tmux_key, keys)):
                _tmux("send-keys", "-t", session, step, check=True)
                time.sleep(0.03)
            if kind.__name__ == "CandidatesScreen":
                _wait_for(session, "graded ")  # its stamps are read: the keys have a candidate
            time.sleep(0.5)
            for key in declared:
                assert (why := dead(f"{kind.__name__} {key!r}")) is None, why
                _tmux("send-keys", "-t", session, _tmux_key(key), check=True)
                time.sleep(0.03)
        time.sleep(0.5)
        screen = _screen(session)
        assert (why := dead("the end")) is None and Path(f"/proc/{pid.strip()}").exists(), why
        assert "Traceback" not in screen and "console failed" not in screen, screen
        assert not list((workspace / ".halo" / "logs").glob("console-*.log"))
    finally:
        _tmux("kill-session", "-t", session, capture_output=True)
        _tmux("kill-server", capture_output=True)
