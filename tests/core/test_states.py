import pytest

from core.errors import IllegalTransition
from core.states import JobState, check_transition

ALLOWED = {
    ("queued", "running"),
    ("queued", "failed"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
}


@pytest.mark.parametrize("old", list(JobState))
@pytest.mark.parametrize("new", list(JobState))
def test_only_the_documented_transitions_are_allowed(old: JobState, new: JobState) -> None:
    if (old.value, new.value) in ALLOWED:
        assert check_transition(old, new) is new
    else:
        with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
            check_transition(old, new)


def test_terminal_states_are_final() -> None:
    assert {s for s in JobState if s.terminal} == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    assert {s for s in JobState if s.live} == {JobState.QUEUED, JobState.RUNNING}
