"""Log reading: the index, tail, growth, truncation, rotation and search."""

import os
from pathlib import Path

from core.logs import LineIndex, tail


def test_index_reads_only_the_asked_lines_and_follows_growth(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(10000)))
    index = LineIndex(log)
    assert index.refresh() == "grown" and len(index) == 10000
    assert index.lines(9998, 10005) == ["line 9998", "line 9999"]
    assert index.lines(0, 2) == ["line 0", "line 1"]
    with log.open("a") as out:
        out.write("line 10000\npartial")
    assert index.refresh() == "grown" and len(index) == 10002
    assert index.lines(10000, 10002) == ["line 10000", "partial"]
    with log.open("a") as out:
        out.write(" now whole\n")
    index.refresh()
    assert index.lines(10001, 10002) == ["partial now whole"] and len(index) == 10002
    assert index.refresh() == "same"


def test_truncation_and_rotation_reset_the_index(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("a\nb\nc\n")
    index = LineIndex(log)
    index.refresh()
    log.write_text("x\n")  # truncated in place
    assert index.refresh() == "truncated" and index.lines(0, 5) == ["x"]
    os.rename(log, tmp_path / "job.log.1")
    log.write_text("new 1\nnew 2\n")  # rotated: a new file at the same path
    assert index.refresh() == "rotated" and index.lines(0, 5) == ["new 1", "new 2"]


def test_tail_reads_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    with log.open("w") as out:
        for i in range(200000):
            out.write(f"{i:08d} " + "x" * 40 + "\n")
    assert tail(log, 3) == [f"{i:08d} " + "x" * 40 for i in (199997, 199998, 199999)]
    assert tail(tmp_path / "missing.log", 3) == []
    log.write_text("no newline at the end")
    assert tail(log, 2) == ["no newline at the end"]


def test_search_both_ways(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(("ERROR disk full\n" if i % 5000 == 4999 else f"ok {i}\n") for i in range(20000)))
    index = LineIndex(log)
    index.refresh()
    assert index.search("error", 0) == 4999
    assert index.search("error", 4999) == 9999
    assert index.search("error", 12000, forward=False) == 9999
    assert index.search("error", 19999) is None


def test_the_last_error_line_of_a_log(tmp_path: Path) -> None:
    from core.logs import last_error

    log = tmp_path / "job.log"
    log.write_text(
        "[halo t] start: python -m jobs.stages.train\nepoch 1\nTraceback (most recent call last):\n"
        '  File "train.py", line 3, in <module>\ntorch.OutOfMemoryError: CUDA out of memory\n'
        "[halo t] end: exit code 1\n"
    )
    assert last_error(log) == "torch.OutOfMemoryError: CUDA out of memory"
    log.write_text("eval: error: /w/data/runs/x: no checkpoint\n[halo t] end: exit code 1\n")
    assert last_error(log) == "eval: error: /w/data/runs/x: no checkpoint"
    log.write_text("[halo t] start\nall fine, then killed\n[halo t] end: exit code 9\n")
    assert last_error(log) is None and last_error(tmp_path / "missing.log") is None
    log.write_text(  # issue 26, item 7: an exception not named ...Error was "exited with code 1"
        'inject: 3 partitions\nTraceback (most recent call last):\n  File "x.py", line 1\n'
        "    ArrowInvalid(x)\npyarrow.lib.ArrowInvalid: Parquet magic bytes not found in footer\n"
        "[halo t] end: exit code 1\n"
    )
    assert last_error(log) == "pyarrow.lib.ArrowInvalid: Parquet magic bytes not found in footer"
    log.write_text("Note: nothing wrong here\nall good\n[halo t] end: exit code 0\n")  # no traceback
    assert last_error(log) is None
    log.write_text("score: error: " + "x" * 1000 + "\n")
    assert len(last_error(log)) == 300 and last_error(log).endswith("…")
