"""A smoke test of `halo` in a real terminal: tmux runs it, keys go in with send-keys, the
screen comes back with capture-pane. It also checks that a hang-up ends the console. The tmux
server is a private one (`tmux -L`, its own socket), so a user's own tmux server, its
sessions and options, are never touched, and two test runs at once do not meet."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


SOCKET = f"halo-test-{os.getpid()}"


def _tmux(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", SOCKET, *args], **kwargs)


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
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", halo.executable, check=True, env=env)
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
