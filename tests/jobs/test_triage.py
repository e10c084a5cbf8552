"""triage: the grades of a run exported headless, with consensus and disagreements."""

import csv
from pathlib import Path

import pytest

from core import grades
from core.workspace import Workspace


def test_triage_exports_grades_consensus_and_disagreements(halo) -> None:
    store = Workspace(halo.root).store
    grades.grade(store, "demo", "1499p022", 3, "alice", "A")
    grades.grade(store, "demo", "1499p022", 3, "bob", "X")
    grades.grade(store, "demo", "1499p022", 7, "alice", "B", note="faint arc to the NE")
    grades.grade(store, "demo", "1499p022", 7, "bob", "B")
    grades.grade(store, "demo", "1499p022", 9, "bob", "C")
    grades.undo(store, "demo", "bob")  # the C on 9 is taken back
    job = halo.json("stage", "triage", "--run", "demo", "--out", "exports/demo.csv", "--wait")
    assert job["state"] == "succeeded"
    summary = job["summary"]
    assert (summary["graded"], summary["disagreements"], summary["inspectors"]) == (2, 1, ["alice", "bob"])
    with (halo.root / "exports" / "demo.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_objid = {r["objid"]: r for r in rows}
    assert set(by_objid) == {"3", "7"}
    assert (by_objid["3"]["consensus"], by_objid["3"]["disagreement"]) == ("1.50", "1")
    assert (by_objid["7"]["consensus"], by_objid["7"]["alice"], by_objid["7"]["bob"]) == ("2.00", "B", "B")
    assert by_objid["7"]["notes"] == "alice: faint arc to the NE" and by_objid["3"]["notes"] == ""
    assert list(rows[0])[:2] == ["run", "rank"]  # bug 8 of issue 14: the README's rank column
    assert "is not a valid name" in halo("stage", "triage", "--run", "../hostile", check=2).stderr


def test_a_run_with_no_candidates_and_no_grades_is_refused_and_nothing_written(tmp_path: Path) -> None:
    """A walk found `halo stage triage --run x` (a mistyped run) exiting 0 with empty CSVs."""
    from jobs.runtime.stage import StageError
    from jobs.stages import triage

    with pytest.raises(StageError, match="run 'nope' has no candidates .* and no grades"):
        triage.run(tmp_path, run="nope")
    assert not (tmp_path / "data").exists()
