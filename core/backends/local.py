"""The local backend: a job is a detached process group, tracked by PID and start time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.safe_io import open_append, private_dir

# Popen objects of the jobs this process started, so that finished ones are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Probe:
    """What a look at a job's process found."""

    alive: bool
    exit_code: int | None = None  # from the exit file, once the job has ended


def launch(
    argv: list[str], log_path: Path, exit_path: Path, cwd: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Start `argv` detached under the wrapper; return the handle to find it again."""
    private_dir(log_path.parent)
    exit_path.unlink(missing_ok=True)  # a planted link is removed, never written through
    with os.fdopen(open_append(log_path), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "core.wrapper", str(exit_path), "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return {"pid": proc.pid, "start": process_start(proc.pid), "exit_file": str(exit_path)}


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (guards against PID reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; it only waits to be reaped
        return None
    return int(fields[19])


def alive(handle: dict[str, Any]) -> bool:
    """Whether the job still runs: its wrapper (same PID and start time), or anything else
    in the process group the wrapper leads (a stage whose wrapper alone was killed runs on,
    and is still the job)."""
    pid = handle["pid"]
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
    elif (start := process_start(pid)) is not None and start == handle.get("start"):
        return True
    return bool(group_members(pid, handle.get("start")))


def group_members(pgid: int, since: int | None) -> list[int]:
    """The live processes of process group `pgid` started no earlier than `since` (clock
    ticks since boot): the job's, and not a later process that reused the number."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid and (since is None or int(fields[19]) >= since):
            found.append(int(name))
    return found


def read_exit(handle: dict[str, Any]) -> int | None:
    try:
        with open(handle["exit_file"], encoding="utf-8") as fh:
            return int(json.load(fh)["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def probe(handle: dict[str, Any]) -> Probe:
    code = read_exit(handle)
    if code is not None:
        alive(handle)  # reap it if it is our child
        return Probe(alive=False, exit_code=code)
    if alive(handle):
        return Probe(alive=True)
    return Probe(alive=False, exit_code=read_exit(handle))  # it may have just written it


def cancel(handle: dict[str, Any], grace: float) -> None:
    """SIGTERM the job's process group, then SIGKILL it after `grace` seconds."""
    if not alive(handle):
        return
    _signal_group(handle["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(handle):
            return
        time.sleep(0.05)
    _signal_group(handle["pid"], signal.SIGKILL)
    for _ in range(100):
        if not alive(handle):
            return
        time.sleep(0.02)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the wrapper leads its own session and group
    except ProcessLookupError:
        pass
