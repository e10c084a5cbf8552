"""Fault suite, huge logs: a 20 MB single-line log (100 MB took 222 s, and froze the console
for 118 s) is tailed by reading a bounded block from its end, its line clipped for display,
in a worker, so the console shows its end at once. (Issue 11, item 14.)"""

from __future__ import annotations

from pathlib import Path

from core import logs
from core.logs import MAX_LINE, MAX_TAIL, LineIndex, tail


def _one_line(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        block = b"x" * (1 << 20)
        for _ in range(size >> 20):
            out.write(block)
        out.write(b"THE END\n")
    return path


def test_tail_of_a_huge_single_line_reads_a_bounded_block(tmp_path: Path, monkeypatch) -> None:
    path = _one_line(tmp_path / "one.log", 20 << 20)
    read = []
    real_open = Path.open

    def counting_open(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        original = handle.read

        def counted(size=-1):
            data = original(size)
            read.append(len(data))
            return data

        handle.read = counted
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    lines = tail(path, 50)
    assert sum(read) <= MAX_TAIL + (1 << 16)  # not the whole 20 MB
    assert len(lines) == 1 and lines[0].startswith("…") and lines[0].endswith("THE END")
    assert len(lines[0]) <= MAX_LINE + 100


def test_the_index_shows_a_huge_line_clipped(tmp_path: Path) -> None:
    path = _one_line(tmp_path / "one.log", 8 << 20)
    with path.open("ab") as out:
        out.write(b"a short line\n")
    index = LineIndex(path)
    index.refresh()
    first, second = index.lines(0, 2)
    assert len(first) < MAX_LINE + 100 and "more bytes]" in first and second == "a short line"
    assert logs.clip(b"y" * 10) == "y" * 10


async def test_the_log_screen_opens_a_huge_single_line_log_at_once(
    engine, tmp_path: Path, log_screen_rows
) -> None:
    path = _one_line(tmp_path / "one.log", 20 << 20)
    (text,) = await log_screen_rows(engine, path, 1)
    assert text.strip() and set(text.strip()) <= set("x…") | set(" [more bytes0123456789]THEND")
