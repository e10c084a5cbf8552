"""The console's writes to the store (grades, notes, undos), in the order pressed.

A key press queues a change; a worker drains the queue under one lock, so the UI never waits on
SQLite. Whatever ends the console (q, a crash, a lost terminal) flushes the queue first:
`flush` takes the same lock, so a change is written once, by whichever thread gets to it."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from core.errors import UsageError
from core.grades import Undone

# a change takes the store and returns (what to tell the inspector, what an undo took back)
Change = Callable[[Any], tuple[str | None, Undone | None]]


class WriteQueue:
    """Changes to the store, written one at a time in the order they were queued."""

    def __init__(self) -> None:
        self.pending: deque[Change] = deque()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.pending)

    def submit(self, change: Change) -> None:
        self.pending.append(change)

    def drain(self, store: Any, done: Callable[[str | None, Undone | None], None] | None = None) -> int:
        """Write every queued change (blocking on the lock); `done(said, undone)` after each.
        A change that fails is said ("not saved: …") and the rest go on."""
        written = 0
        with self.lock:
            while self.pending:
                try:
                    said, undone = self.pending[0](store)
                except (OSError, sqlite3.Error, UsageError) as err:
                    said, undone = f"not saved: {err}", None
                self.pending.popleft()
                written += 1
                if done is not None:
                    done(said, undone)
        return written

    def flush(self, store: Any, timeout: float = 1.0) -> bool:
        """Write what is still queued, waiting at most `timeout` for a drain under way; False
        if the queue could not be emptied in time."""
        if not self.lock.acquire(timeout=timeout):
            return not self.pending
        self.lock.release()
        self.drain(store)
        return not self.pending
