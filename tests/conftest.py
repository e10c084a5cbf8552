"""Shared fixtures: a workspace with a tiny test stage, and `halo` run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

STAGELIB = Path(__file__).parent / "stagelib"

SLEEPY_TOML = f"""
[stages.sleepy]
module = "sleepy"
description = "test stage: sleeps, then exits with --code"
pythonpath = ["{STAGELIB}"]
needs_variant = false

[stages.sleepy.params.seconds]
kind = "float"
[stages.sleepy.params.code]
kind = "int"
[stages.sleepy.params.stubborn]
kind = "bool"
[stages.sleepy.params.out]
kind = "path"

[stages.ghost]
module = "ghost_stage_not_written_yet"
description = "test stage whose module does not exist"
pythonpath = ["{STAGELIB}"]
needs_variant = false

[backends.local]
cancel_grace_seconds = 1.0
"""

HALO = str(Path(sys.executable).with_name("halo"))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace folder whose halo.toml declares the `sleepy` test stage."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "halo.toml").write_text(SLEEPY_TOML)
    for var in [v for v in os.environ if v.startswith("HALO_")]:
        monkeypatch.delenv(var)
    return root


@pytest.fixture
def engine(workspace: Path):
    from core.engine import Engine
    from core.workspace import Workspace

    eng = Engine(Workspace(workspace))
    yield eng
    for job in eng.store.live():  # leave no process behind
        eng.cancel(job.id)
    eng.store.close()


class Halo:
    """Runs the installed `halo` script in a workspace, as a user (or cron) would."""

    executable = HALO

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self, *args: str, timeout: float = 60, check: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
        env["HALO_WORKSPACE"] = str(self.root)
        proc = subprocess.run([HALO, *args], capture_output=True, text=True, timeout=timeout, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str, check: int = 0) -> object:
        return json.loads(self(*args, "--json", check=check).stdout)


@pytest.fixture
def halo(workspace: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    return Halo(workspace)


@pytest.fixture(scope="session")
def moto_server():
    """moto's server on 127.0.0.1 (S3, EMR), with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    return moto_server
