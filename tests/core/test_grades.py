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
    grades.note(store, "r", "1499p022", 1, "alice", "arc to the NE")
    assert grades.notes(store, "r") == {("1499p022", 1): ["alice: arc to the NE"]}
    undone = grades.undo(store, "r", "alice")
    assert undone.describe() == "undid the note 'arc to the NE' on 1499p022:1; your grade is A"
    assert grades.notes(store, "r") == {} and grades.current(store, "r")[("1499p022", 1)].grades == {
        "alice": "A"
    }
    said = grades.undo(store, "r", "alice").describe("#3")
    assert said == "undid the grade A on #3 (1499p022:1); now ungraded"
    with pytest.raises(UsageError, match="not one of"):
        grades.grade(store, "r", "1499p022", 3, "alice", "maybe")


def test_a_note_on_an_ungraded_candidate_is_no_grade(tmp_path: Path) -> None:
    """Issue 22 item 7: a note on an ungraded candidate recorded a grade (`unsure`), and the
    graded count went up."""
    store = Store(tmp_path / "halo.db")
    grades.note(store, "r", "1499p022", 1, "alice", "odd colour")
    assert grades.current(store, "r") == {} and grades.current_all(store, "r") == {}
    assert grades.notes(store, "r") == {("1499p022", 1): ["alice: odd colour"]}
    grades.grade(store, "r", "1499p022", 1, "alice", "B")
    grades.note(store, "r", "1499p022", 1, "alice", "arc NE")
    assert grades.current(store, "r")[("1499p022", 1)].grades == {"alice": "B"}
    undone = grades.undo(store, "r", "alice")  # the note alone goes
    assert (undone.grade, undone.note, undone.now) == (None, "arc NE", "B")
    assert grades.notes(store, "r") == {("1499p022", 1): ["alice: odd colour"]}


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


def _calibrate(store: Store) -> None:
    """alice finds 9 of 10 simulated lenses and calls none of 8 non-lenses a lens; bob calls
    everything A."""
    for objid in range(10):
        grades.grade(store, "r", "0001p000", objid, "alice", "B" if objid < 9 else "X", blind="lens")
        grades.grade(store, "r", "0001p000", objid, "bob", "A", blind="lens")
    for objid in range(10, 18):
        grades.grade(store, "r", "0001p000", objid, "alice", "X", blind="not_lens")
        grades.grade(store, "r", "0001p000", objid, "bob", "A", blind="not_lens")
    grades.grade(store, "r", "0001p000", 18, "alice", "unsure", blind="lens")


def test_blind_items_measure_each_inspector_with_intervals(tmp_path: Path) -> None:
    from scipy.stats import beta

    store = Store(tmp_path / "halo.db")
    _calibrate(store)
    figures = grades.calibration(store, "r")
    alice, bob = figures["alice"], figures["bob"]
    assert (alice.sims, alice.found, alice.duds, alice.false, alice.unsure) == (10, 9, 8, 0, 1)
    assert (bob.sims, bob.found, bob.duds, bob.false) == (10, 10, 8, 8)
    completeness = alice.completeness()
    # Clopper-Pearson, each blind item its own galaxy
    assert completeness["lo"] == pytest.approx(beta.ppf(0.025, 9, 2)) and completeness["n_independent"] == 10
    assert completeness["hi"] == pytest.approx(beta.ppf(0.975, 10, 1))
    assert alice.fpr()["upper"] == pytest.approx(1 - 0.05 ** (1 / 8))  # none called: an upper bound
    assert alice.line() == "alice  completeness 9/10 90% (55–100%) · FPR 0/8 < 31% · weight 0.73"
    assert alice.weight == pytest.approx(10 / 12 - 1 / 10) and bob.weight == grades.WEIGHT_FLOOR
    # blind grades are never candidates: not in the consensus table, the notes or the disagreements
    assert grades.current(store, "r") == {} and len(grades.current(store, "r", blinds=True)) == 19


def test_the_consensus_weights_inspectors_by_their_calibration(tmp_path: Path) -> None:
    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "alice", "X")
    grades.grade(store, "r", "1499p022", 1, "bob", "A")
    before = grades.current(store, "r")[("1499p022", 1)]
    assert before.score == pytest.approx(1.5) and before.mean == 1.5  # no blind graded: equal weights
    _calibrate(store)
    after = grades.current(store, "r")[("1499p022", 1)]
    w_alice, w_bob = 10 / 12 - 1 / 10, grades.WEIGHT_FLOOR
    assert after.score == pytest.approx(3 * w_bob / (w_alice + w_bob)) and after.mean == 1.5
    assert after.disagreement


def test_the_export_leaves_blind_items_out_and_reports_the_inspectors(tmp_path: Path) -> None:
    import csv

    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "alice", "A", note="arc")
    _calibrate(store)
    grades.grade(store, "r", "0001p000", 3, "alice", "B", note="a note on a blind item", blind="lens")
    target = tmp_path / "grades-r.csv"
    assert grades.export_csv(store, "r", target, [{"brickname": "1499p022", "objid": 1, "rank": 4}]) == 1
    rows = list(csv.DictReader(target.open()))
    assert [(r["rank"], r["objid"], r["notes"]) for r in rows] == [("4", "1", "alice: arc")]
    inspectors = {r["inspector"]: r for r in csv.DictReader(grades.calibration_path(target).open())}
    assert set(inspectors) == {"alice", "bob"}
    assert (inspectors["alice"]["found"], inspectors["alice"]["simulated_lenses"]) == ("9", "10")
    assert (inspectors["bob"]["called_lens"], inspectors["bob"]["fpr"]) == ("8", "1.0000")


def test_people_s_text_is_never_a_live_formula_in_the_csvs(tmp_path: Path) -> None:
    """Issue 26, item 11: an inspector named like a formula (from $USER) and notes starting
    with =, +, -, @ are shown by a spreadsheet, never run; numbers stay numbers."""
    import csv

    store = Store(tmp_path / "halo.db")
    hostile = '=cmd|" /C calc"!A0'
    grades.grade(store, "r", "1499p022", 1, hostile, "A", note="+1 looks real")
    grades.note(store, "r", "1499p022", 2, "@bob", "-arc?")  # the notes cell starts with his name
    grades.grade(store, "r", "1499p022", 2, "alice", "X", note="=1+1")
    target = tmp_path / "grades-r.csv"
    grades.export_csv(store, "r", target, [{"brickname": "1499p022", "objid": 1, "dec": -12.5}])
    rows = list(csv.reader(target.open()))
    assert "'" + hostile in rows[0] and "'@bob: -arc? | alice: =1+1" in rows[2]
    for value in (c for row in rows for c in row if c.startswith(grades.FORMULA_STARTS)):
        float(value)  # only numbers start so: a negative declination is no formula
    assert any(c.startswith("-12.5") for c in rows[1])
    (row,) = [r for r in csv.DictReader(grades.calibration_path(target).open()) if "calc" in r["inspector"]]
    assert row["inspector"] == "'" + hostile


def test_an_inspector_with_no_blind_graded_is_listed_unmeasured(tmp_path: Path) -> None:
    """The inspectors' CSV was a header alone until someone graded a blind item."""
    import csv

    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "carol", "A")
    target = tmp_path / "grades-r.csv"
    grades.export_csv(store, "r", target)
    (row,) = csv.DictReader(grades.calibration_path(target).open())
    assert (row["inspector"], row["simulated_lenses"], row["completeness"]) == ("carol", "0", "")
    assert float(row["weight"]) == grades.WEIGHT_FLOOR
    assert grades.calibration(store, "r")["carol"].line().endswith("0/0 not measured · weight 0.05")


def test_undoing_a_blind_grade_keeps_it_blind_and_takes_it_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "halo.db")
    grades.grade(store, "r", "1499p022", 1, "alice", "A")  # the same galaxy, as a candidate
    grades.grade(store, "r", "1499p022", 1, "alice", "X", blind="lens")
    undone = grades.undo(store, "r", "alice")
    assert (undone.blind, undone.now) == ("lens", None)  # the candidate's A is another item
    assert "lens" not in undone.describe() and undone.describe().endswith("now ungraded")
    assert grades.calibration(store, "r") == {"alice": grades.Calibration("alice")}  # no blind measured
    with pytest.raises(UsageError, match="blind item"):
        grades.grade(store, "r", "1499p022", 1, "alice", "X", blind="sim")


def test_an_older_workspace_keeps_its_grades(tmp_path: Path) -> None:
    """A store made before blind items (schema 2) gains the column; its grades are candidates'."""
    import sqlite3

    from core.store import MIGRATIONS, _statements

    path = tmp_path / "halo.db"
    db = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:2]):
        for statement in _statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number + 1}")
    db.execute(
        "INSERT INTO grades (run, brickname, objid, inspector, grade, created)"
        " VALUES ('r', 'b', 1, 'al', 'A', 0)"
    )
    db.commit()
    db.close()
    store = Store(path)
    assert store.version == len(MIGRATIONS)
    assert grades.current(store, "r")[("b", 1)].grades == {"al": "A"}


def test_one_store_shared_by_threads_keeps_their_transactions_apart(tmp_path: Path) -> None:
    """The console writes grades in one worker thread while others read: each thread has its
    own connection (one shared connection interleaved their transactions)."""
    store = Store(tmp_path / "halo.db")
    errors: list[BaseException] = []

    def grader(name: str) -> None:
        try:
            for objid in range(60):
                grades.grade(store, "r", "1499p022", objid, name, "A")
                grades.current(store, "r")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=grader, args=(f"i{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(c.grades) == 6 for c in grades.current(store, "r").values())
    store.close()
