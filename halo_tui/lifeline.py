"""How the console ends when it is not asked to: a lost terminal, or a bug.

- **Gone when the terminal is.** A dropped SSH link or a killed tmux server hangs the terminal
  up. Textual cannot be relied on to notice: its writer thread dies on the first EIO, the UI
  thread then blocks for ever on the writer's full queue, and an asyncio SIGHUP handler never
  runs on a blocked loop (the review found consoles left with PPID 1, in a futex wait). So two
  daemon threads watch instead: one waits for SIGHUP (blocked in every other thread, so it
  arrives here whatever the UI thread is doing), one polls the terminal for a hang-up (POLLHUP,
  POLLERR or POLLNVAL: EOF and EIO to readers). Either writes the queued grades and ends the
  process at once (exit 129, as a shell reports SIGHUP). The jobs run on (they are detached).
- **A crash is one readable line.** An unexpected exception's traceback (without locals) goes
  to `.halo/logs/console-<date>.log`; the terminal gets one line naming what failed, where, and
  that file.
"""

from __future__ import annotations

import datetime
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

EXIT_HANGUP = 128 + signal.SIGHUP
HANGUP_FLUSH_S = 1.0  # at most this long to write the queued grades once the terminal is gone


class Lifeline:
    """Ends the process within about a second of its terminal going away, after `flush`."""

    def __init__(self, flush: Callable[[], object], fd: int | None = None) -> None:
        self.flush, self.fd = flush, fd
        self.fired = threading.Event()
        self.reason: str | None = None

    def start(self) -> Lifeline:
        """Watch from now on: call before any other thread starts (they inherit the blocked
        SIGHUP, so only the watcher receives it)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        threading.Thread(target=self._wait_for_sighup, name="halo-sighup", daemon=True).start()
        if self.fd is not None and os.isatty(self.fd):
            threading.Thread(target=self._watch_terminal, name="halo-terminal", daemon=True).start()
        return self

    def _wait_for_sighup(self) -> None:
        signal.sigwait({signal.SIGHUP})
        self.hang_up("SIGHUP")

    def _watch_terminal(self) -> None:
        poller = select.poll()
        poller.register(self.fd, 0)  # no events asked: only a hang-up or an error wakes it
        while not self.fired.is_set():
            for _, events in poller.poll():
                if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self.hang_up("the terminal hung up")
                    return

    def hang_up(self, reason: str) -> None:
        """Write what is queued (bounded in time), then end the process."""
        if self.fired.is_set():
            return
        self.reason = reason
        self.fired.set()
        done = threading.Thread(target=self._flush_quietly, daemon=True)
        done.start()
        done.join(HANGUP_FLUSH_S)
        os._exit(EXIT_HANGUP)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - nothing can be shown: the terminal is gone
            pass


def crash_log(logs_dir: Path, error: BaseException) -> tuple[Path | None, str]:
    """Append `error`'s traceback (no locals) to today's console log; return the file and the
    one line a person reads: what failed and where."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/halo_tui/" in f.filename or "/core/" in f.filename] or frames
    where = f" in {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    what = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    stamp = datetime.datetime.now()
    path: Path | None = logs_dir / f"console-{stamp:%Y-%m-%d}.log"
    try:
        from core.safe_io import open_append, private_dir

        private_dir(logs_dir)
        fd = open_append(path)
        with os.fdopen(fd, "a") as out:
            out.write(f"--- {stamp:%Y-%m-%d %H:%M:%S} halo {' '.join(sys.argv[1:])}\n")
            out.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except OSError:
        path = None
    return path, f"{what}{where}"
