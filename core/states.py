"""The job state machine, enforced here and nowhere else."""

from __future__ import annotations

from enum import StrEnum

from core.errors import IllegalTransition


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def live(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_transition(old: JobState | str, new: JobState | str) -> JobState:
    """Return the new state if `old -> new` is allowed, else raise IllegalTransition."""
    old, new = JobState(old), JobState(new)
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"a job cannot go from {old} to {new}")
    return new
