"""Fault suite, size: the jobs table stays a screenful on a big store (the table once took
9.5 s on 10,000 jobs), and no setting may be infinite. (Issue 11, item 17.)"""

from __future__ import annotations

import os
import subprocess

from core.states import JobState
from core.store import Store


def test_the_jobs_table_shows_the_newest_50_and_says_how_many_more(halo) -> None:
    store = Store(halo.root / ".halo" / "halo.db")
    for i in range(180):
        job = store.create("select", "v4_sota", {"i": i}, "local")
        store.transition(job.id, JobState.RUNNING, handle={"pid": 1, "start": 1, "exit_file": "/nonexistent"})
        store.transition(job.id, JobState.SUCCEEDED, exit_code=0)
    store.close()
    table = halo("jobs", "list", check=0)
    rows = [line for line in table.stdout.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert len(rows) == 50 and rows[0].split()[0] == "180"
    assert "130 older job(s) not shown: --limit N or --all" in table.stderr
    assert (
        len([ln for ln in halo("jobs", "list", "--all").stdout.splitlines() if ln.strip()[:1].isdigit()])
        == 180
    )
    assert len(halo.json("jobs", "list")) == 180  # scripts get every job


def test_all_of_10000_jobs_are_listed_a_row_a_line_newest_first(halo) -> None:
    """Issue 26, item 13: `jobs list --all` laid 10,000 rows out with Rich's Table (42 s);
    every job is still there, one aligned line each, the state in its own column
    (bench/jobs_list.py times it against that baseline)."""
    from bench.jobs_list import fill  # the benchmark's store: a failed job in seven

    fill(halo.root, 10000)
    lines = halo("jobs", "list", "--all", check=0).stdout.splitlines()
    assert lines[0].split() == ["id", "stage", "variant", "backend", "state", "started", "elapsed", "exit"]
    rows = [line.split() for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(10000, 0, -1))
    assert all(r[4] == ("failed" if (int(r[0]) - 1) % 7 == 0 else "succeeded") for r in rows)
    assert all(r[-2:] == ["1m03s", str(int((int(r[0]) - 1) % 7 == 0))] for r in rows)
    state = lines[0].index("state")
    assert {line[state : state + 9] for line in lines[1:]} <= {"succeeded", "failed   "}  # aligned


def test_an_infinite_or_nan_setting_is_refused(halo) -> None:
    for value in ("inf", "nan", "-1"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
        env |= {"HALO_WORKSPACE": str(halo.root), "HALO_LOCAL_CANCEL_GRACE_SECONDS": value}
        done = subprocess.run(
            [halo.executable, "config", "check"], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 2 and "HALO_LOCAL_CANCEL_GRACE_SECONDS" in done.stderr, (value, done.stderr)
        assert "Traceback" not in done.stderr
    toml = halo.root / "halo.toml"
    toml.write_text(toml.read_text() + "\n[presets.demo_cpu]\nlr = nan\n")
    done = halo("config", "check", check=2)
    assert "presets.demo_cpu.lr" in done.stderr
