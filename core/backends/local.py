"""The local backend: a job is a detached process group, tracked by PID and start time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import jobresult
from core.backends.base import Backend
from core.errors import IllegalTransition, UsageError
from core.logs import last_error
from core.safe_io import open_append, private_dir
from core.states import JobState

if TYPE_CHECKING:
    from core.stages import Stage
    from core.store import Job

# A job still queued this long after it was recorded lost its launcher before it started.
QUEUED_TIMEOUT_S = 60.0

# Popen objects of the jobs this process started, so that finished ones are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Probe:
    """What a look at a job's process found."""

    alive: bool
    exit_code: int | None = None  # from the exit file, once the job has ended


JOB_MARK = "HALO_JOB_UID"  # in every process of a job's group: what makes a process the job's


def launch(
    argv: list[str], log_path: Path, exit_path: Path, cwd: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Start `argv` detached under the wrapper; return the handle to find it again."""
    private_dir(log_path.parent)
    exit_path.unlink(missing_ok=True)  # a planted link is removed, never written through
    with os.fdopen(open_append(log_path), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "core.wrapper", str(exit_path), "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    handle = {"pid": proc.pid, "start": process_start(proc.pid), "exit_file": str(exit_path)}
    return handle | ({"uid": env[JOB_MARK]} if JOB_MARK in env else {})


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (guards against PID reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; it only waits to be reaped
        return None
    return int(fields[19])


def alive(handle: dict[str, Any]) -> bool:
    """Whether the job still runs: its wrapper (same PID and start time), or anything else
    in the process group the wrapper leads (a stage whose wrapper alone was killed runs on,
    and is still the job)."""
    pid = handle["pid"]
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
    elif (start := process_start(pid)) is not None and start == handle.get("start"):
        return True
    return bool(group_members(pid, handle.get("start"), handle.get("uid")))


def group_members(pgid: int, since: int | None, uid: str | None = None) -> list[int]:
    """The live processes of process group `pgid` started no earlier than `since` (clock
    ticks since boot) and, with `uid`, carrying the job's mark (JOB_MARK=uid) in their
    environment: the job's, never a later session leader that reused the number and the
    processes of its group."""
    found: list[int] = []
    mark = f"{JOB_MARK}={uid}".encode() if uid else None
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid and (since is None or int(fields[19]) >= since):
            if mark is None or mark in _environ(name):
                found.append(int(name))
    return found


def _environ(pid: str) -> list[bytes]:
    """A process's environment entries (none where it cannot be read: not ours)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def read_exit(handle: dict[str, Any]) -> int | None:
    try:
        with open(handle["exit_file"], encoding="utf-8") as fh:
            return int(json.load(fh)["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def probe(handle: dict[str, Any]) -> Probe:
    code = read_exit(handle)
    if code is not None:
        alive(handle)  # reap it if it is our child
        return Probe(alive=False, exit_code=code)
    if alive(handle):
        return Probe(alive=True)
    return Probe(alive=False, exit_code=read_exit(handle))  # it may have just written it


def cancel(handle: dict[str, Any], grace: float) -> None:
    """SIGTERM the job's process group, then SIGKILL it after `grace` seconds; where the
    wrapper is gone and its number was reused, only the processes that carry the job's mark."""
    if not alive(handle):
        return
    _signal_job(handle, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(handle):
            return
        time.sleep(0.05)
    _signal_job(handle, signal.SIGKILL)
    for _ in range(100):
        if not alive(handle):
            return
        time.sleep(0.02)


def _signal_job(handle: dict[str, Any], signum: int) -> None:
    """`signum` to the job's process group while its wrapper (same start) leads it; else, and
    for a handle with the job's mark, to each marked member alone (the group's number may
    now be another session's)."""
    pid = handle["pid"]
    wrapper = (start := process_start(pid)) is not None and start == handle.get("start")
    if wrapper or not handle.get("uid"):
        try:
            os.killpg(pid, signum)  # the wrapper leads its own session and group
        except ProcessLookupError:
            pass
        return
    for member in group_members(pid, handle.get("start"), handle["uid"]):
        try:
            os.kill(member, signum)
        except ProcessLookupError:
            pass


class LocalBackend(Backend):
    """Jobs as detached process groups on this machine, under core/wrapper.py, which records
    the exit code; the stage's summary comes back through core/jobresult.py."""

    name = "local"

    def launch(self, job: Job, stage: Stage, variant: str | None, params: dict[str, Any]) -> Job:
        argv = stage.argv(self.workspace.root, variant, params)
        log_path = self.log_path(job.id)
        try:
            handle = launch(
                argv, log_path, self.exit_path(job.id), self.workspace.root, self._env(job, stage)
            )
        except OSError as err:
            return self.store.transition(
                job.id, JobState.FAILED, failure=f"could not start: {err}", argv=argv
            )
        return self.store.transition(
            job.id, JobState.RUNNING, handle=handle, argv=argv, log_path=str(log_path)
        )

    def _env(self, job: Job, stage: Stage) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HALO_JOB_ID=str(job.id),
            **{JOB_MARK: job.uid},
            HALO_WORKSPACE=str(self.workspace.root),
            PYTHONUNBUFFERED="1",
        )
        env[jobresult.ENV_VAR] = str(self.result_path(job.id))
        if stage.pythonpath:
            paths = [str(self.workspace.root / p) for p in stage.pythonpath]
            env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env

    def poll(self, jobs: list[Job], patient: bool = True) -> list[Job]:
        out = []
        for job in jobs:
            try:
                out.append(self._reconcile(job))
            except IllegalTransition:  # another process recorded its end first (a cancel)
                out.append(self.store.get(job.id))
        return out

    def _reconcile(self, job: Job) -> Job:
        """A job, against its process group and exit file."""
        if job.state is JobState.QUEUED:
            if job.handle is None and time.time() - job.created > QUEUED_TIMEOUT_S:
                return self.store.transition(
                    job.id, JobState.FAILED, failure="lost: its launcher ended before it started"
                )
            return job
        if job.handle is None:
            return self.store.transition(job.id, JobState.FAILED, failure="lost: no process handle recorded")
        found = probe(job.handle)
        if found.alive:
            return job
        if found.exit_code is None:
            return self._finish(
                job, JobState.FAILED, None, "lost: the process ended without recording an exit code"
            )
        if found.exit_code == 0:
            return self._finish(job, JobState.SUCCEEDED, 0, None)
        reason = exit_reason(found.exit_code)
        said = last_error(self.log_path(job.id))  # what the stage said, not only its exit code
        return self._finish(job, JobState.FAILED, found.exit_code, f"{reason}: {said}" if said else reason)

    def _finish(self, job: Job, state: JobState, code: int | None, failure: str | None) -> Job:
        outputs, summary = jobresult.read(self.result_path(job.id))
        fields: dict[str, Any] = {
            "exit_code": code,
            "failure": failure,
            "outputs": outputs,
            "summary": summary,
        }
        try:
            fields["ended"] = self.exit_path(job.id).stat().st_mtime
        except OSError:
            pass
        return self.store.transition(job.id, state, **fields)

    def cancel(self, job: Job) -> Job:
        """Record the job cancelled, then SIGTERM it (SIGKILL after the grace period), then
        add its exit code and outputs. Recorded first: another console watching the same
        workspace, seeing the process end, must find it cancelled, not "killed by SIGTERM"."""
        try:
            job = self.store.transition(job.id, JobState.CANCELLED, failure="cancelled by the user")
        except IllegalTransition:
            ended = self.store.get(job.id)  # it ended on its own a moment ago
            raise UsageError(f"job {job.id} has already ended ({ended.state})") from None
        if job.handle is not None:
            cancel(job.handle, self.workspace.config.backends.local.cancel_grace_seconds)
        code = read_exit(job.handle) if job.handle else None
        outputs, summary = jobresult.read(self.result_path(job.id))
        return self.store.update(job.id, exit_code=code, outputs=outputs, summary=summary)

    def fetch_logs(self, job: Job) -> bool:
        return self.log_path(job.id).exists()  # the job writes it as it runs


def exit_reason(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
