"""Fault suite, text from users, logs and remote services: shown as typed, never as Rich
markup, and no control sequence from a log reaches a terminal. (Issue 11, items 7 and 8.)"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from core.engine import Engine
from core.states import JobState
from core.workspace import Workspace

HOSTILE = "res[/x][bold red]y"
REASON = "step failed: [/app/spark] and [bold red]this[/] too"


def _failed_job(root: Path, reason: str) -> int:
    engine = Engine(Workspace(root))
    job = engine.store.create("sleepy", None, {"out": HOSTILE}, "local")
    engine.store.transition(job.id, JobState.RUNNING, started=1.0)
    engine.store.transition(job.id, JobState.FAILED, ended=2.0, exit_code=1, failure=reason)
    engine.store.close()
    return job.id


def test_markup_in_options_and_failure_reasons_is_shown_as_typed(halo) -> None:
    job_id = _failed_job(halo.root, REASON)
    shown = halo("jobs", "show", str(job_id), check=0)  # was a MarkupError traceback
    assert REASON in shown.stdout and HOSTILE in shown.stdout
    assert "[bold red]" in shown.stdout  # not eaten as a style
    watched = halo("jobs", "watch", str(job_id), check=1)
    assert REASON in watched.stdout
    launched = halo("stage", "sleepy", "--out", HOSTILE, "--wait", check=0)
    assert "Traceback" not in launched.stderr
    assert HOSTILE in halo("jobs", "show", "2", check=0).stdout


async def test_the_console_shows_hostile_text_as_typed(engine) -> None:
    from textual.widgets import Static

    from halo_tui.app import HaloApp
    from halo_tui.screens.job_details import DetailsScreen

    job_id = _failed_job(engine.workspace.root, REASON)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        app.push_screen(DetailsScreen(engine.get(job_id)))
        await pilot.pause(0.2)
        shown = "\n".join(str(s.content) for s in app.screen.query(Static))
        assert REASON in shown and HOSTILE in shown
        assert app.is_running  # the console did not crash


def _log_with_escapes(halo) -> Path:
    assert halo("stage", "sleepy", "--wait").returncode == 0
    log = halo.root / ".halo" / "logs" / "1.log"
    with log.open("ab") as out:
        out.write(b"\x1b]0;pwned\x07 retitle\n\x1b[31mred\x1b[0m text\n")
        out.write("C1 \u009b2J clear, \u202egnp.exe reversed\n".encode())  # xterm acts on U+009B
        pad = (1 << 16) - 1 - out.tell()  # a C1 CSI cut in two by a 64 KiB read
        out.write(b"." * (pad - 1) + b"\n" + "\u009b2J split\n".encode())
    return log


def test_control_sequences_in_a_log_never_reach_the_terminal(halo) -> None:
    _log_with_escapes(halo)
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env["HALO_WORKSPACE"] = str(halo.root)
    proc = subprocess.Popen([halo.executable, "jobs", "logs", "1"], stdout=child, stderr=child, env=env)
    os.close(child)
    seen = b""
    while True:  # read as it writes: a pty holds a few KiB
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    assert b"\x1b]0;pwned" not in seen and b"\x1b[31m" not in seen
    assert b"\\x1b]0;pwned\\x07 retitle" in seen and b"\\x1b[31mred" in seen
    assert b"\xc2\x9b" not in seen and "\u202e".encode() not in seen
    assert b"C1 \\x9b2J clear, \\u202egnp.exe" in seen and b"\\x9b2J split" in seen
    # piped (not a terminal), the log is passed on byte for byte
    piped = halo("jobs", "logs", "1")
    assert "\x1b[31mred" in piped.stdout


async def test_the_log_screen_shows_escapes_visibly(engine, tmp_path: Path, log_screen_rows) -> None:
    log = tmp_path / "escapes.log"
    log.write_bytes(
        b"plain line\n\x1b]0;pwned\x07 retitle\n\x1b[31mred\x1b[0m text\n"
        + "C1 \u009b2J clear, \u202egnp.exe reversed\n".encode()
    )
    rendered = "".join(await log_screen_rows(engine, log, 4))
    assert "\x1b" not in rendered and "\\x1b]0;pwned\\x07 retitle" in rendered
    assert "\u009b" not in rendered and "\u202e" not in rendered and "\\x9b2J" in rendered
