"""Fault suite, a remote backend away: while an EMR job is live and AWS cannot be reached,
local work goes on (exit 0, a warning); only commands about that EMR job exit 3.
(Issue 11, item 15.)"""

from __future__ import annotations

import os
import subprocess

import pytest

from core.store import Store


def _env(root) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "AWS_"))}
    env |= {
        "HALO_WORKSPACE": str(root),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: AWS is unreachable
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "2",  # a watch of the EMR job gives up after 2 tries, not 10 (~22 s)
    }
    return env


@pytest.mark.slow
def test_local_work_does_not_wait_on_an_unreachable_emr(halo) -> None:
    store = Store(halo.root / ".halo" / "halo.db")
    job = store.create("inject", "v4_sota", {}, "emr")
    handle = {"cluster": "j-2AXXXXXXGAPLF", "step": "s-1", "name": "halo:x:1:inject", "log_uri": "s3://l/"}
    store.update(job.id, handle=handle)  # queued: the step is PENDING
    store.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [halo.executable, *args], capture_output=True, text=True, env=_env(halo.root), timeout=120
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    listed = run("jobs", "list")
    assert listed.returncode == 0 and "inject" in listed.stdout
    assert "warning: EMR list_steps failed" in listed.stderr and "shown as last seen" in listed.stderr
    assert run("jobs", "list", "--json").returncode == 0
    assert run("stages").returncode == 0
    launched = run("stage", "sleepy", "--seconds", "0", "--wait")
    assert launched.returncode == 0, launched.stderr
    assert run("jobs", "watch", "2").returncode == 0  # a local job: no remote look at all
    watched = run("jobs", "watch", str(job.id), "--interval", "0.1")
    assert watched.returncode == 3 and "EMR" in watched.stderr  # about the EMR job itself


def test_looks_answer_with_what_the_store_knows_when_emr_hangs(halo) -> None:
    """Issue 26, item 6: an endpoint that accepts connections and never answers held `jobs
    list` 17.5 s and `jobs show` of an EMR job past 150 s (patient retries). Looks now ask AWS
    once, briefly, and show the job as last seen with a warning (exit 0)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:  # takes every connection, answers none
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    store = Store(halo.root / ".halo" / "halo.db")
    job = store.create("inject", "v4_sota", {}, "emr")
    handle = {"cluster": "j-2AXXXXXXGAPLF", "step": "s-1", "name": "halo:x:1:inject", "log_uri": "s3://l/"}
    store.update(job.id, handle=handle)
    store.close()
    env = _env(halo.root) | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.getsockname()[1]}"}
    try:
        for args in (("jobs", "list"), ("jobs", "show", str(job.id))):
            done = subprocess.run(  # the timeout only keeps a hang from holding the suite
                [halo.executable, *args], capture_output=True, text=True, env=env, timeout=60
            )
            assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
            assert "inject" in done.stdout and "shown as last seen" in done.stderr
    finally:
        server.close()
        for conn in held:
            conn.close()
