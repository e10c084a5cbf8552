"""Fault suite, processes: a job is its whole process group, so killing its wrapper alone
neither ends the job nor lets a duplicate run beside it. (Issue 11, item 12.)"""

from __future__ import annotations

import os
import signal
import time


def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_killing_the_wrapper_alone_leaves_the_job_running_until_its_stage_ends(halo) -> None:
    halo("stage", "sleepy", "--seconds", "4", check=0)
    log = halo.root / ".halo" / "logs" / "1.log"
    _until(lambda: log.exists() and "sleepy: start" in log.read_text())
    wrapper = halo.json("jobs", "show", "1")["handle"]["pid"]
    os.kill(wrapper, signal.SIGKILL)
    _until(
        lambda: (
            not os.path.exists(f"/proc/{wrapper}") or "Z" in open(f"/proc/{wrapper}/stat").read().split()[2]
        )
    )
    assert halo.json("jobs", "show", "1")["state"] == "running"  # the stage sleeps on
    refused = halo("stage", "sleepy", "--seconds", "4", check=2)
    assert "already" in refused.stderr  # no duplicate beside it
    _until(lambda: halo.json("jobs", "show", "1")["state"] != "running", timeout=60)
    ended = halo.json("jobs", "show", "1")
    assert ended["state"] == "failed" and "exit code" in ended["failure"]


def test_cancel_never_signals_a_later_session_that_reused_the_job_s_number() -> None:
    """Issue 26, item 2: with the wrapper gone and its PID reused by a later session leader
    (`setsid`), cancel took that session's processes for the job's and killed them. A job's
    processes carry its mark (HALO_JOB_UID); an unmarked group is left alone."""
    import subprocess

    from core.backends import local

    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # leads its own group
    try:
        handle = {"pid": stranger.pid, "start": 0, "exit_file": "/nonexistent", "uid": "job-that-ended"}
        assert not local.alive(handle)  # its group is not the job's
        local.cancel(handle, grace=0.2)
        assert stranger.poll() is None  # still running: nothing was signalled
    finally:
        stranger.kill()
        stranger.wait()
    env = dict(os.environ, **{local.JOB_MARK: "job-7"})  # a job's own stage, its wrapper gone
    marked = subprocess.Popen(["sleep", "60"], start_new_session=True, env=env)
    try:
        handle = {"pid": marked.pid, "start": 0, "exit_file": "/nonexistent", "uid": "job-7"}
        assert local.alive(handle)
        local.cancel(handle, grace=5)
        assert marked.wait(timeout=10) == -signal.SIGTERM
    finally:
        marked.kill()
