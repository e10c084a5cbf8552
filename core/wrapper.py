"""Runs a job's command and records its exit code beside the log.

`python -m core.wrapper EXIT_FILE -- ARGV...`: the local backend starts this detached, in a
session of its own, so the job outlives the console. When the command ends, its exit code
is written (atomically) to EXIT_FILE; the engine reads it on its next look, even if the
console that launched the job is long gone. Kept to the standard library: it starts fast."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time

from core.safe_io import atomic_write


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[halo {stamp}] {message}", flush=True)


def write_exit(path: str, exit_code: int) -> None:
    atomic_write(path, json.dumps({"exit_code": exit_code, "ended": time.time()}))


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m core.wrapper EXIT_FILE -- ARGV...", file=sys.stderr)
        return 2
    exit_path, argv = args[0], args[2:]
    # a console launching it blocks SIGHUP in its threads (halo_tui.lifeline): the job gets
    # the ordinary signal mask back, so `jobs cancel` and a hang-up reach it as they should
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _say(f"start: {shlex.join(argv)}")
    try:
        child = subprocess.Popen(argv)
    except OSError as err:
        _say(f"cannot start: {err}")
        write_exit(exit_path, 127)
        return 127

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = child.wait()
    if code < 0:
        _say(f"end: killed by {signal.Signals(-code).name}")
    else:
        _say(f"end: exit code {code}")
    write_exit(exit_path, code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
