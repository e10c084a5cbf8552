"""Grades in the workspace store: consensus, disagreement, undo, and concurrent graders."""

import threading
from pathlib import Path

import pytest

from core import grades
from core.errors import UsageError
from core.store import Store


def test_consensus_disagreement_and_undo(tmp_path: Path) -> None:
    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "alice", "A")
    grades.grade(store, "r", "1499p022", 1, "bob", "C")
    grades.grade(store, "r", "1499p022", 2, "alice", "B")
    grades.grade(store, "r", "1499p022", 2, "bob", "unsure")
    grades.grade(store, "r", "1499p022", 2, "alice", "X")  # alice changes her mind
    now = grades.current(store, "r")
    assert now[("1499p022", 1)].score == 2.0 and now[("1499p022", 1)].disagreement
    assert (
        now[("1499p022", 2)].grades == {"alice": "X", "bob": "unsure"} and now[("1499p022", 2)].score == 0.0
    )
    undone = grades.undo(store, "r", "alice")
    assert (undone.brickname, undone.objid, undone.grade, undone.now) == ("1499p022", 2, "X", "B")
    assert grades.current(store, "r")[("1499p022", 2)].grades["alice"] == "B"
    assert grades.undo(store, "r", "carol") is None


def test_undoing_a_note_says_so_and_keeps_the_grade(tmp_path: Path) -> None:
    """Bug 8 of issue 14: undo after a note said "undid A" while the A stayed."""
    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "alice", "A")
    grades.grade(store, "r", "1499p022", 1, "alice", "A", note="arc to the NE")
    assert grades.notes(store, "r") == {("1499p022", 1): ["alice: arc to the NE"]}
    undone = grades.undo(store, "r", "alice")
    assert undone.describe() == "undid the note 'arc to the NE' on 1499p022:1; your grade is A"
    assert grades.notes(store, "r") == {} and grades.current(store, "r")[("1499p022", 1)].grades == {
        "alice": "A"
    }
    assert grades.undo(store, "r", "alice").describe() == "undid A on 1499p022:1; ungraded"
    with pytest.raises(UsageError, match="not one of"):
        grades.grade(store, "r", "1499p022", 3, "alice", "maybe")


def test_concurrent_graders_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "halo.db"
    Store(path).close()

    def grader(name: str) -> None:
        store = Store(path)  # each its own connection, as two consoles would have
        for objid in range(150):
            grades.grade(store, "r", "1499p022", objid, name, "ABCX"[objid % 4])
        store.close()

    threads = [threading.Thread(target=grader, args=(n,)) for n in ("alice", "bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now = grades.current(Store(path), "r")
    assert len(now) == 150 and all(set(c.grades) == {"alice", "bob", "carol"} for c in now.values())
