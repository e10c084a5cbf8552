"""Fault suite, the workspace's own files: no write follows a planted link out of the
workspace, and the store and logs are private whatever the umask. (Issue 11, items 5 and 9.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    for name in ("log", "exit", "result", "exit-final"):
        (folder / name).write_text("precious\n")
    return folder


def _untouched(outside: Path) -> bool:
    return all((outside / n).read_text() == "precious\n" for n in ("log", "exit", "result", "exit-final"))


def test_planted_links_in_the_logs_folder_never_write_outside(halo, outside: Path) -> None:
    """Links planted where the next job will write (a store in use numbers on from its own
    jobs; a new one after every job file there, so a link there is never its first job's)."""
    halo("stage", "sleepy", "--seconds", "0", "--wait", check=0)  # job 1: the store is in use
    logs = halo.root / ".halo" / "logs"
    (logs / "2.log").symlink_to(outside / "log")
    done = halo("stage", "sleepy", "--seconds", "0", "--wait", "--json")
    job = halo.json("jobs", "show", "2")
    assert done.returncode == 1 and job["state"] == "failed" and "will not write through it" in job["failure"]
    assert _untouched(outside)
    # the next job's exit and result files: planted links are replaced, never written through
    for name, target in (("3.exit.tmp", "exit"), ("3.result.json.tmp", "result"), ("3.exit", "exit-final")):
        (logs / name).symlink_to(outside / target)
    done = halo("stage", "sleepy", "--seconds", "0", "--wait")
    assert done.returncode == 0, done.stderr
    assert _untouched(outside)
    assert not (logs / "3.exit").is_symlink() and '"exit_code": 0' in (logs / "3.exit").read_text()


def test_a_store_or_a_log_that_is_a_link_is_neither_written_nor_read(halo, outside: Path) -> None:
    """Issue 26, item 3: a store planted as a link to a database elsewhere was opened and
    written (the no-follow create ran only when nothing was there), and `jobs logs` showed the
    file a planted log link points at."""
    import sqlite3

    victim = outside / "victim.db"
    sqlite3.connect(victim).execute("CREATE TABLE precious (x)").connection.commit()
    before = victim.read_bytes()
    (halo.root / ".halo").mkdir()
    (halo.root / ".halo" / "halo.db").symlink_to(victim)
    for args in (("jobs", "list"), ("stage", "sleepy", "--wait")):
        done = halo(*args, check=2)
        assert "halo.db: is a symbolic link" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert victim.read_bytes() == before and not (outside / "victim.db-wal").exists()
    (halo.root / ".halo" / "halo.db").unlink()
    assert halo("stage", "sleepy", "--wait").returncode == 0
    log = halo.root / ".halo" / "logs" / "1.log"
    log.unlink()
    log.symlink_to(outside / "log")  # the log swapped for a link to a file elsewhere
    done = halo("jobs", "logs", "1", check=2)
    assert "1.log: is a symbolic link" in done.stderr and "precious" not in done.stdout


def test_a_halo_folder_that_is_a_link_is_refused(halo, outside: Path) -> None:
    (halo.root / ".halo").symlink_to(outside, target_is_directory=True)
    done = halo("jobs", "list", check=2)
    assert "is a symbolic link" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["exit", "exit-final", "log", "result"]


def test_the_store_and_logs_are_private_whatever_the_umask(halo) -> None:
    old = os.umask(0o022)
    try:
        assert halo("stage", "sleepy", "--seconds", "0", "--wait").returncode == 0
    finally:
        os.umask(old)
    halo_dir = halo.root / ".halo"

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(halo_dir) == 0o700 and mode(halo_dir / "logs") == 0o700
    for path in (halo_dir / "halo.db", halo_dir / "logs" / "1.log", halo_dir / "logs" / "1.exit"):
        assert mode(path) == 0o600, (path, oct(mode(path)))


def test_a_copy_of_a_workspace_shows_its_own_logs(halo, tmp_path: Path) -> None:
    """Issue 26, item 12: the store kept each log's absolute path, so a `cp -a` copy showed
    (and followed) the original workspace's logs."""
    import shutil

    assert halo("stage", "sleepy", "--wait").returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(halo.root, copy, symlinks=True)
    (copy / ".halo" / "logs" / "1.log").write_text("the copy's own log\n")
    there = type(halo)(copy)  # the same runner, on the copy
    assert there.json("jobs", "show", "1")["log_path"] == str(copy / ".halo" / "logs" / "1.log")
    assert there.json("jobs", "list")[0]["log_path"] == str(copy / ".halo" / "logs" / "1.log")
    assert there("jobs", "logs", "1").stdout == "the copy's own log\n"
    assert "sleepy: done" in halo("jobs", "logs", "1").stdout  # the original's is its own


def test_a_read_only_workspace_is_one_line_naming_the_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 26, item 8: `-w` on a read-only mount was an OSError traceback, exit 1. The file
    system's refusal is one line naming the file and what halo needs, exit 2 (the mount is
    stood in for by the refusal itself: mounting needs privileges a test run may not have)."""
    import errno

    from halo_tui import cli

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    (tmp_path / "ws").mkdir()  # the mount's folder, there and read-only
    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.delenv("HALO_WORKSPACE", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["-w", str(tmp_path / "ws"), "stage", "demo", "--bricks", "1"])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'ws'}" in err and "Read-only file system: halo writes its store" in err
