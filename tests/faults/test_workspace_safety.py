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
    logs = halo.root / ".halo" / "logs"
    logs.mkdir(parents=True)
    (logs / "1.log").symlink_to(outside / "log")
    done = halo("stage", "sleepy", "--seconds", "0", "--wait", "--json")
    job = halo.json("jobs", "show", "1")
    assert done.returncode == 1 and job["state"] == "failed" and "will not write through it" in job["failure"]
    assert _untouched(outside)
    # the next job's exit and result files: planted links are replaced, never written through
    for name, target in (("2.exit.tmp", "exit"), ("2.result.json.tmp", "result"), ("2.exit", "exit-final")):
        (logs / name).symlink_to(outside / target)
    done = halo("stage", "sleepy", "--seconds", "0", "--wait")
    assert done.returncode == 0, done.stderr
    assert _untouched(outside)
    assert not (logs / "2.exit").is_symlink() and '"exit_code": 0' in (logs / "2.exit").read_text()


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
