"""Fault suite, the workspace's store (issue 26, item 5): a store that is damaged, locked by
another process or made by a newer halo is one line naming it and what to do, exit 2, with
nothing written — never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import HALO


def _halo(root: Path, *args: str, wait: str = "30") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env |= {"HALO_WORKSPACE": str(root), "HALO_STORE_WAIT": wait}
    return subprocess.run([HALO, *args], capture_output=True, text=True, env=env, timeout=120)


def _one_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr, done.stderr


def test_a_damaged_store_is_named_and_left_as_it_is(halo) -> None:
    assert halo("stage", "sleepy", "--wait").returncode == 0
    store = halo.root / ".halo" / "halo.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(os.urandom(8192))
    before = store.read_bytes()
    for args in (("jobs", "list"), ("stage", "sleepy", "--wait"), ("jobs", "list", "--json")):
        done = _halo(halo.root, *args)
        if "--json" in args:
            assert done.returncode == 2 and '"exit": 2' in done.stdout
            assert "not a usable halo store" in done.stdout
            continue
        _one_line(done, "halo.db: not a usable halo store")
        assert "move it aside" in done.stderr
    assert store.read_bytes() == before


def test_a_store_of_a_newer_halo_is_refused(halo) -> None:
    assert halo("stage", "sleepy", "--wait").returncode == 0
    store = halo.root / ".halo" / "halo.db"
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA user_version = 99")
    for args in (("jobs", "list"), ("stage", "sleepy", "--wait")):
        _one_line(_halo(halo.root, *args), "made by a newer halo (store version 99")
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1  # nothing launched


def test_a_store_another_process_holds_locked_is_one_line(halo) -> None:
    assert halo("stage", "sleepy", "--wait").returncode == 0
    holder = subprocess.Popen(  # holds an exclusive lock until told to let go
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None);"
            " db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); sys.stdin.readline()",
            str(halo.root / ".halo" / "halo.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"  # waits on the state, not a sleep
        looked = _halo(halo.root, "jobs", "list", wait="0.5")  # a look reads: WAL lets it
        assert looked.returncode == 0 and "sleepy" in looked.stdout
        done = _halo(halo.root, "stage", "sleepy", "--seconds", "0.1", "--wait", wait="0.5")
        _one_line(done, "halo.db: locked by another process for 0.5 s")
    finally:
        holder.communicate("\n", timeout=30)
    assert [j["id"] for j in halo.json("jobs", "list")] == [1]  # nothing was launched


def test_a_new_store_beside_a_moved_one_numbers_its_jobs_after_the_earlier_ones(halo) -> None:
    """A walk found it: after `mv .halo/halo.db` (as the damaged-store message advises) the new
    store numbered its jobs from 1 again, appending to job 1's log and overwriting its exit code
    and result, so the moved store's jobs pointed at another job's files."""
    for _ in range(2):
        halo("stage", "sleepy", "--seconds", "0", "--wait", check=0)
    store = halo.root / ".halo" / "halo.db"
    logs = halo.root / ".halo" / "logs"
    before = {p.name: p.read_bytes() for p in logs.iterdir()}
    store.rename(store.with_name("halo.db.moved"))
    halo("stage", "sleepy", "--seconds", "0", "--wait", check=0)
    (job,) = halo.json("jobs", "list")
    assert job["id"] == 3
    assert {name: (logs / name).read_bytes() for name in before} == before
