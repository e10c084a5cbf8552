"""Fault suite, Ctrl-C: `halo stage … --wait` stops waiting at once wherever the interrupt
lands (launching, recording, waiting), exits 130 and leaves the job running. In a clean CI
run the interrupt once went unnoticed for 20 s. (Issue 11, item 18.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from core.errors import EXIT_INTERRUPTED


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.4])
def test_ctrl_c_while_waiting_stops_the_wait_and_not_the_job(halo, delay: float) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env["HALO_WORKSPACE"] = str(halo.root)
    proc = subprocess.Popen(
        [halo.executable, "stage", "sleepy", "--seconds", "30", "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = halo.root / ".halo" / "logs" / "1.log"
    deadline = time.monotonic() + 60
    while not log.exists():  # the launch has begun: the signal lands somewhere in it, or after
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED and "goes on" in err and "Traceback" not in err, err
    job = halo.json("jobs", "show", "1")
    assert job["state"] == "running"
    halo("jobs", "cancel", "1", check=0)
