"""Reading job logs that may be many GB and still growing, as toolong does: a byte-offset
index of line starts (built in chunks, extended as the file grows), so that only the lines
on screen are ever read; `tail` finds the last lines from the end without any index, so the
end of a huge log shows at once. Truncation and rotation (a new file at the same path) reset
the index."""

from __future__ import annotations

import os
import re
from array import array
from pathlib import Path

import numpy as np

CHUNK = 8 << 20
MAX_LINE = 64 << 10  # a longer line is shown clipped: nobody reads 100 MB of one line
MAX_TAIL = 4 << 20  # tail reads at most this much from the end
CLIPPED = " … [{} more bytes]"


def clip(line: bytes) -> str:
    """A line for display: decoded, and clipped to MAX_LINE bytes with a note of the rest."""
    if len(line) <= MAX_LINE:
        return line.decode("utf-8", "replace")
    return line[:MAX_LINE].decode("utf-8", "replace") + CLIPPED.format(len(line) - MAX_LINE)


ERROR_LINE = re.compile(r": error: |^(?:[A-Za-z_][\w.]*)?(?:Error|Exception)\b[^\n]*:")
# after a traceback, its last line names the exception whatever its class is called
# (pyarrow.lib.ArrowInvalid: …, KeyboardInterrupt, _pickle.UnpicklingError: …)
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?::|$)")
TRACEBACK = "Traceback (most recent call last)"
WRAPPER_LINE = "[halo "  # the job wrapper's own lines: start, end, exit code
ERROR_CHARS = 300


def last_error(path: Path, lines: int = 50) -> str | None:
    """The last line among a log's last `lines` that says what went wrong (a stage's "NAME:
    error: ...", or a traceback's exception line), clipped; None where none does."""
    seen = tail(path, lines)
    traced = any(line.startswith(TRACEBACK) for line in seen)
    for line in reversed(seen):
        text = line.strip()
        if not text or text.startswith(WRAPPER_LINE):
            continue
        if ERROR_LINE.search(text) or (traced and line == text and EXCEPTION_LINE.match(text)):
            return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
    return None


PROGRESS = re.compile(r"(?:([a-z]+)\s+)?(\d+)\s*/\s*(\d+)")
LEFT = re.compile(r"about (\S+(?: \S+)?) of [a-z]+ left")


def progress(path: Path, lines: int = 5) -> tuple[str | None, str | None]:
    """What a running job's last log lines say of its progress and of the time left:
    ("epoch 3/6 · step 23/31", "4m10s") from train's "train: epoch 3/6 step 23/31 … · about
    4m10s of training left", ("3/16", None) from "brick 3/16"; (None, None) until one says."""
    for line in reversed(tail(path, lines)):
        found = PROGRESS.findall(line)
        if found:
            labelled = [f"{label} {done}/{total}" for label, done, total in found if label]
            left = LEFT.search(line)
            return (" · ".join(labelled) if labelled else "{1}/{2}".format(*found[-1])), (
                left.group(1) if left else None
            )
    return None, None


def tail(path: Path, n: int) -> list[str]:
    """The last `n` lines of a file, read backwards from its end in blocks (linear in what it
    reads, and never more than MAX_TAIL bytes: a 100 MB line shows as its clipped end)."""
    if n <= 0:
        return []
    blocks: list[bytes] = []
    newlines = 0
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = end = handle.tell()
            while position > 0 and newlines <= n and end - position < MAX_TAIL:
                step = min(1 << 16, position)
                position -= step
                handle.seek(position)
                block = handle.read(step)
                newlines += block.count(b"\n")
                blocks.append(block)
    except FileNotFoundError:
        return []
    data = b"".join(reversed(blocks))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if position > 0 and newlines <= n and lines:  # the first line read is only the end of one
        lines[0] = b"\xe2\x80\xa6" + lines[0][-(MAX_LINE - 3) :]  # "…" and the line's end
    return [clip(line) for line in lines[-n:]]


class LineIndex:
    """Line starts of a file: `offsets[i]` is where line i begins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets = array("Q", [0])
        self.indexed = 0  # bytes scanned so far
        self._inode: int | None = None

    def refresh(self, budget: int | None = None) -> str:
        """Index what was appended since the last call (at most `budget` bytes); return
        'same', 'grown', 'truncated' or 'rotated'."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return "same"
        event = "same"
        if self._inode is not None and stat.st_ino != self._inode:
            event = "rotated"
        elif stat.st_size < self.indexed:
            event = "truncated"
        if event != "same":
            self.offsets, self.indexed = array("Q", [0]), 0
        self._inode = stat.st_ino
        target = stat.st_size if budget is None else min(stat.st_size, self.indexed + budget)
        if target > self.indexed:
            with self.path.open("rb") as handle:
                handle.seek(self.indexed)
                while self.indexed < target:
                    chunk = handle.read(min(CHUNK, target - self.indexed))
                    if not chunk:
                        break
                    starts = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + self.indexed + 1
                    self.offsets.frombytes(starts.astype(np.uint64).tobytes())
                    self.indexed += len(chunk)
            event = "grown" if event == "same" else event
        return event

    @property
    def complete(self) -> bool:
        try:
            return self.indexed >= self.path.stat().st_size
        except FileNotFoundError:
            return True

    def __len__(self) -> int:
        """Lines known: complete ones, plus a last line still without its newline."""
        return len(self.offsets) - 1 + (1 if self.indexed > self.offsets[-1] else 0)

    def lines(self, start: int, stop: int) -> list[str]:
        """Lines [start, stop), read with one seek."""
        start, stop = max(0, start), min(stop, len(self))
        if start >= stop:
            return []
        first = self.offsets[start]
        last = self.offsets[stop] if stop < len(self.offsets) else self.indexed
        with self.path.open("rb") as handle:
            if last - first <= MAX_TAIL:
                handle.seek(first)
                parts = handle.read(last - first).split(b"\n")[: stop - start]
                return [clip(p) for p in parts]
            out = []  # some lines are huge: read each one only as far as it is shown
            for i in range(start, stop):
                begin = self.offsets[i]
                end = self.offsets[i + 1] - 1 if i + 1 < len(self.offsets) else self.indexed
                handle.seek(begin)
                head = handle.read(min(end - begin, MAX_LINE))
                out.append(
                    clip(head) + (CLIPPED.format(end - begin - MAX_LINE) if end - begin > MAX_LINE else "")
                )
            return out

    def matching(self, pattern: str, step: int = 4096) -> array:
        """Every line (its number) that matches `pattern` (a regex, case-insensitive)."""
        regex, found, position = re.compile(pattern, re.IGNORECASE), array("Q"), 0
        while position < len(self):
            block = self.lines(position, position + step)
            found.extend(position + i for i, line in enumerate(block) if regex.search(line))
            position += step
        return found

    def search(self, pattern: str, start: int, forward: bool = True) -> int | None:
        """The next line (from `start`, excluded) matching `pattern` (a regex, case-insensitive)."""
        regex = re.compile(pattern, re.IGNORECASE)
        step = 4096
        if forward:
            position = start + 1
            while position < len(self):
                for i, line in enumerate(self.lines(position, position + step)):
                    if regex.search(line):
                        return position + i
                position += step
        else:
            position = start
            while position > 0:
                low = max(0, position - step)
                block = self.lines(low, position)
                for i in range(len(block) - 1, -1, -1):
                    if regex.search(block[i]):
                        return low + i
                position = low
        return None
