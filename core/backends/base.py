"""The Backend interface: what the engine asks of any place a job runs.

The engine records a job in the store, then hands it to its backend to launch, poll, cancel
and bring its logs home; a backend moves its jobs through the store's state machine itself.
No caller tests a backend's name: what differs is a property (`remote`, `late_logs`) or a
method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.layout import job_file

if TYPE_CHECKING:
    from core.stages import Stage
    from core.store import Job, Store
    from core.workspace import Workspace


class Backend(ABC):
    """One place jobs run."""

    name: ClassVar[str]
    remote: ClassVar[bool] = False  # looked at over a network: a local-only refresh skips it
    # Where its logs come from when they are not written as the job runs (None: they are).
    late_logs: ClassVar[str | None] = None

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @property
    def store(self) -> Store:
        """The workspace's job store, opened (and created) on first use, never by a refusal."""
        return self.workspace.store

    # -- the job's files in the workspace ---------------------------------------------------

    def log_path(self, job_id: int) -> Path:
        return job_file(self.workspace.root, job_id, "log")

    def exit_path(self, job_id: int) -> Path:
        return job_file(self.workspace.root, job_id, "exit")

    def result_path(self, job_id: int) -> Path:
        return job_file(self.workspace.root, job_id, "result.json")

    # -- what each backend does -------------------------------------------------------------

    def check(self, stage: Stage) -> None:  # noqa: B027 - most backends run every stage
        """Refuse (UsageError) a stage this backend cannot run, before anything is recorded."""

    @abstractmethod
    def launch(self, job: Job, stage: Stage, variant: str | None, params: dict[str, Any]) -> Job:
        """Start the recorded `job`; return it as the store has it now."""

    @abstractmethod
    def poll(self, jobs: list[Job], patient: bool = True) -> list[Job]:
        """Reconcile live `jobs` with what they are doing; BackendUnreachable if it cannot
        look (`patient`: retry as long as the backend asks; else one quick look)."""

    @abstractmethod
    def cancel(self, job: Job) -> Job:
        """Stop a live job and record it cancelled."""

    @abstractmethod
    def fetch_logs(self, job: Job) -> bool:
        """Bring the job's log up to date at its log path; False while there is none."""

    def waiting_for_logs(self, job: Job) -> str:
        """What to tell a user while the job's log has not arrived."""
        return f"job {job.id} has no log yet"

    @property
    def poll_seconds(self) -> float:
        """How often a follower looks again."""
        return 0.2
