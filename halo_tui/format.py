"""Plain formatting of times, durations and states, shared by the CLI and the console."""

from __future__ import annotations

import time
from typing import Any

STATE_STYLES = {
    "queued": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "magenta",
}


# a figure's colour says whether it meets its target (green) or not (red, and underlined: a
# mark that survives NO_COLOR and red-green colour blindness), none where it is unmeasured or
# has no target; ▲ beside it marks the better run on its row, whatever the target
TARGET_STYLES = {True: "green", False: "red underline", None: ""}


# characters a terminal acts on or that reorder what it shows: C0 and C1 controls, DEL, and
# the bidirectional formatting marks (U+202E shows "exe.txt" as "txt.exe")
_BIDI = frozenset((0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _hidden(code: int) -> bool:
    return code < 32 or 127 <= code < 160 or code in _BIDI


def visible(text: Any) -> str:
    """Text from files, logs or users made safe to show: control characters (an ESC that
    would retitle the terminal, a C1 CSI) and bidirectional marks become visible `\x1b`,
    `\u202e` escapes. Show it as a Rich `Text`, never as markup."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch in "\n\t" or not _hidden(code):
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}")
    return "".join(out)


_CONTROL_BYTES = None


def visible_bytes(data: bytes) -> bytes:
    """`visible` for raw log bytes on their way to a terminal (tabs and newlines kept): C0
    bytes and DEL, and the UTF-8 encodings of C1 controls and bidirectional marks."""
    import re

    global _CONTROL_BYTES
    if _CONTROL_BYTES is None:
        encoded = b"|".join(re.escape(chr(c).encode()) for c in sorted(_BIDI))
        _CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|" + encoded)

    def escape(match: Any) -> bytes:
        code = ord(match.group().decode())
        return (b"\\x%02x" if code < 256 else b"\\u%04x") % code

    return _CONTROL_BYTES.sub(escape, data)


def utf8_whole(data: bytes) -> int:
    """The length of the longest start of `data` that does not end inside a UTF-8 character
    (a read of a stream may cut one: the rest waits for the next read, so no escape is split)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # a continuation byte: its lead is further back
            continue
        if byte < 0xC0:  # ASCII or a stray byte: nothing pending
            return n
        need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return n if back >= need else n - back
    return n


def home_relative(path: Any) -> str:
    """A path as a person reads it: under the home folder, as `~/…`."""
    import os

    text, home = str(path), os.path.expanduser("~")
    return "~" + text[len(home) :] if home not in ("", "/") and (text + "/").startswith(home + "/") else text


def when(ts: float | None, short: bool = False) -> str:
    """A timestamp as local `YYYY-MM-DD HH:MM:SS`, or '-'; `short`: `HH:MM:SS` today, else
    `MM-DD HH:MM` (a table at 80 columns)."""
    if ts is None:
        return "-"
    local = time.localtime(ts)
    if not short:
        return time.strftime("%Y-%m-%d %H:%M:%S", local)
    today = time.localtime()[:3] == local[:3]
    return time.strftime("%H:%M:%S" if today else "%m-%d %H:%M", local)


def duration(seconds: float | None) -> str:
    """A duration as `4.2s`, `3m05s` or `2h07m`, or '-'."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def job_rows(job: Any) -> list[tuple[str, Any]]:
    """A job's details as (label, rich Text) rows, for `halo jobs show` and the console. Every
    value is Text, never markup: parameters, failure reasons (EMR's included) and paths come
    from users and remote services, and `[/x]` in them must show as typed."""
    import json

    from rich.text import Text

    from core.engine import cli_command

    rows = [
        ("job", f"{job.id} ({job.uid})"),
        ("stage", job.stage),
        ("variant", job.variant or "-"),
        ("backend", job.backend),
        ("state", None),
        ("created", when(job.created)),
        ("started", when(job.started)),
        ("ended", when(job.ended)),
        ("elapsed", duration(job.elapsed)),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("failure", job.failure or "-"),
        ("parameters", json.dumps(job.params, sort_keys=True)),
        ("command", cli_command(job)),
        ("log", job.log_path or "-"),
        ("outputs", "\n".join(job.outputs) or "-"),
    ]
    state = Text(str(job.state), style=STATE_STYLES[job.state])
    return [(label, state if value is None else Text(visible(value))) for label, value in rows]


def state_line(job: Any, suffix: str = "", with_stage: bool = False) -> Any:
    """ "job 7 failed after 3.2s: <reason>" as Text: the state in its colour, the reason as typed."""
    from rich.text import Text

    text = Text(f"job {job.id} " + (f"({job.stage}) " if with_stage else ""))
    text.append(str(job.state), style=STATE_STYLES[job.state])
    text.append(visible(suffix))
    if job.failure:
        text.append(f": {visible(job.failure)}")
    elif isinstance(job.summary, dict) and job.summary.get("skipped"):
        text.append(": its outputs were up to date, nothing redone (--force redoes it)")
    return text
