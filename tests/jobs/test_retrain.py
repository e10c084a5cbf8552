"""One round of the loop (issue 25 parts 3-4): a run's grades become a child run's labels —
consensus A/B real positives, consensus X hard negatives, the evaluation split's galaxies set
aside — the child is trained from the parent's weights with its lineage kept, both are
evaluated on the same test split and compared, and the child re-scores the parent sample;
launches that could only fail are refused before they start, and unchanged grades are up to
date."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core import grades
from core.engine import Engine
from core.errors import UsageError
from core.states import JobState
from core.workspace import Workspace
from jobs.learn import training
from jobs.stages import retrain, score, train

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_retrain")


@pytest.fixture(scope="module")
def graded_ws(stamps_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the stamps workspace with a trained, scored run `tiny` (not yet graded)."""
    root = tmp_path_factory.mktemp("round") / "ws"
    shutil.copytree(stamps_ws, root, ignore=shutil.ignore_patterns(".halo", "runs", "candidates", "rounds"))
    train.run(root, "v4_sota", preset="test_cpu", run="tiny", epochs=1)  # a parent to grade
    score.run(root, "v4_sota", run="tiny", keep_stamps=40)
    return root


def _launch(ws: Path, **params: str) -> None:
    Engine(Workspace(ws)).validate("retrain", None, dict(params), None)


def _grade_from_truth(ws: Path) -> dict[str, int]:
    """Two inspectors grade every candidate as the mock survey knows it: its planted lenses
    A, every other galaxy X."""
    table = pq.read_table(ws / "data/candidates/tiny/candidates.parquet").to_pylist()
    store = Workspace(ws).store
    splits = {"A": [], "X": []}
    for row in table:
        value = "A" if row["known_lens"] else "X"
        splits[value].append(row["split"])
        for who in ("ann", "bob"):
            grades.grade(store, "tiny", row["brickname"], int(row["objid"]), who, value)
    return {k: sum(s != "test" for s in v) for k, v in splits.items()} | {
        "test": sum(s == "test" for v in splits.values() for s in v)
    }


def test_a_round_that_could_only_fail_is_refused_before_launch(graded_ws: Path) -> None:
    with pytest.raises(UsageError, match="has not been trained"):
        _launch(graded_ws, from_run="nope", run="child")
    with pytest.raises(UsageError, match="stage 'retrain' takes no --variant"):  # the parent's it is
        Engine(Workspace(graded_ws)).validate("retrain", "v4_sota", {"from_run": "tiny", "run": "c"}, None)
    with pytest.raises(UsageError, match="run 'tiny' has no grades; grade its candidates"):
        _launch(graded_ws, from_run="tiny", run="child")
    store = Workspace(graded_ws).store
    grades.note(store, "tiny", "1759p060", 1, "ann", "a note is no grade")
    with pytest.raises(UsageError, match="run 'tiny' has no grades; grade its candidates"):
        _launch(graded_ws, from_run="tiny", run="child")
    grades.grade(store, "other", "1759p060", 1, "ann", "A")
    try:
        with pytest.raises(UsageError, match="grades exist for other"):  # another run's grades
            _launch(graded_ws, from_run="tiny", run="child")
        first = pq.read_table(graded_ws / "data/candidates/tiny/candidates.parquet").to_pylist()[0]
        grades.grade(store, "tiny", first["brickname"], int(first["objid"]), "ann", "X")
        with pytest.raises(UsageError, match="too few labels to help"):
            _launch(graded_ws, from_run="tiny", run="child")
        with pytest.raises(UsageError, match="a name of its own"):
            _launch(graded_ws, from_run="tiny", run="tiny")
        taken = graded_ws / "data/runs/taken"
        taken.mkdir(parents=True)
        (taken / "best.pt").write_bytes(b"")
        with pytest.raises(UsageError, match="'taken' exists and is no earlier round of 'tiny'"):
            _launch(graded_ws, from_run="tiny", run="taken")  # a round never replaces another run
        shutil.rmtree(taken)
        job = store.create("train", "v4_sota", {"run": "tiny"}, "local")
        store.transition(job.id, JobState.RUNNING)
        try:
            with pytest.raises(UsageError, match="still training"):
                _launch(graded_ws, from_run="tiny", run="child")
        finally:
            store.transition(job.id, JobState.CANCELLED)
    finally:
        store.db.execute("DELETE FROM grades")
        store.db.commit()


def test_a_round_trains_a_child_on_the_grades_and_compares_it_with_its_parent(graded_ws: Path) -> None:
    counts = _grade_from_truth(graded_ws)
    assert counts["A"] >= 3 and counts["test"] > 0
    _launch(graded_ws, from_run="tiny", run="tiny-r2")  # enough now: accepted
    summary = retrain.run(graded_ws, from_run="tiny", run="tiny-r2", epochs=2)
    assert summary["parent"] == "tiny" and summary["init"] == "parent"
    assert summary["used"] == {"positives": counts["A"], "negatives": counts["X"]}
    assert summary["set_aside"] == {"evaluation split": counts["test"]}
    assert summary["grades"]["grades"] == 2 * (counts["A"] + counts["X"] + counts["test"])
    assert set(summary["inspectors"]) == {"ann", "bob"}
    (folder,) = (graded_ws / "data/rounds/tiny-r2").glob("graded-*")
    graded = pq.read_table(folder / "graded.parquet").to_pylist()
    assert len(graded) == summary["graded_rows"] == counts["A"] + counts["X"]
    assert all(r["split"] in ("train", "val") for r in graded)  # the evaluation region never trains
    assert {r["known_tier"] for r in graded if not r["is_control"]} == {"confirmed"}  # consensus A
    assert all(r["known_tier"] == "" for r in graded if r["is_control"])
    cutouts = pq.read_table(sorted((graded_ws / "data/cutouts/v3_color_relaxed").glob("part-*.parquet")))
    keys = zip(cutouts["brickname"].to_pylist(), cutouts["objid"].to_pylist(), strict=True)
    own = dict(zip(keys, cutouts["stamp"].to_pylist(), strict=True))
    assert all(r["stamp"] == own[(r["brickname"], r["objid"])] for r in graded)  # their own pixels
    stamps = pq.read_table(
        sorted((graded_ws / "data/stamps/v4_sota/grid_sota").glob("part-*.parquet")), columns=["task_id"]
    )
    assert min(r["task_id"] for r in graded) > int(np.max(stamps["task_id"].to_numpy()))
    info = json.loads((graded_ws / "data/runs/tiny-r2/run.json").read_text())
    assert info["lineage"]["parent"] == "tiny" and info["extra_stamps"][0].endswith("graded.parquet")
    assert info["init"].endswith("best.pt")
    compare = (graded_ws / "data/rounds/tiny-r2/report/compare.md").read_text().splitlines()
    assert "| Metric | tiny | tiny-r2 | Target |" in compare  # parent and child, one table
    assert any(line.startswith("| auroc |") and "> 0.99" in line for line in compare)  # the targets
    rows = {line.split("|")[1].strip() for line in compare if line.startswith("| ")}
    assert {"real_recall@fpr1e-2", "lookalike_fpr@fpr1e-2", "realism_auc", "tpr@fpr1e-2"} <= rows
    for run in ("tiny", "tiny-r2"):
        assert (graded_ws / f"data/runs/{run}/eval/eval-test.json").is_file()
    assert (graded_ws / "data/candidates/tiny-r2/candidates.parquet").is_file()  # re-scored
    again = retrain.run(graded_ws, from_run="tiny", run="tiny-r2", epochs=2)
    assert again["skipped"] is True  # unchanged grades: up to date
    engine = Engine(Workspace(graded_ws))  # and as a job, its own live job not taken for another
    job = engine.wait(
        engine.launch("retrain", params={"from_run": "tiny", "run": "tiny-r2", "epochs": "2"}).id
    )
    assert job.state == JobState.SUCCEEDED, job.failure
    assert "up to date" in Path(job.log_path).read_text()


def test_a_round_that_fails_leaves_the_earlier_child_and_the_stamps_it_names(
    graded_ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New grades, then the child's training fails: the child in place and the graded stamps
    its run.json names are as they were (the new round's are written beside them)."""
    from jobs.runtime.stage import StageError

    if not (graded_ws / "data/runs/tiny-r2/run.json").exists():
        _grade_from_truth(graded_ws)
        retrain.run(graded_ws, from_run="tiny", run="tiny-r2", epochs=2)
    run_json = graded_ws / "data/runs/tiny-r2/run.json"
    before = run_json.read_bytes()
    named = Path(json.loads(before)["extra_stamps"][0])
    stamps_before = named.read_bytes()
    table = pq.read_table(graded_ws / "data/candidates/tiny/candidates.parquet").to_pylist()
    row = next(r for r in table if r["split"] != "test" and not r["known_lens"])
    store = Workspace(graded_ws).store
    for who in ("ann", "bob"):  # a negative becomes a positive: the labels changed
        grades.grade(store, "tiny", row["brickname"], int(row["objid"]), who, "A")

    def fail(*args: object, **kwargs: object) -> None:
        raise StageError("training failed")

    monkeypatch.setattr(training, "run", fail)  # a round trains through the library
    try:
        with pytest.raises(StageError, match="training failed"):
            retrain.run(graded_ws, from_run="tiny", run="tiny-r2", epochs=2)
        assert run_json.read_bytes() == before and named.read_bytes() == stamps_before
        assert len(list(named.parent.parent.glob("graded-*"))) == 2  # the new round's, beside
    finally:
        for who in ("ann", "bob"):
            grades.grade(store, "tiny", row["brickname"], int(row["objid"]), who, "X")
