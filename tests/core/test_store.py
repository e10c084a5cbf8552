import sqlite3
import threading
from pathlib import Path

import pytest

from core.errors import IllegalTransition, UsageError
from core.states import JobState
from core.store import MIGRATIONS, DuplicateJob, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / ".halo" / "halo.db")
    yield s
    s.close()


def test_new_store_is_wal_and_fully_migrated(store: Store, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / ".halo" / "halo.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.version == len(MIGRATIONS)
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    assert {
        "stage",
        "variant",
        "params",
        "backend",
        "handle",
        "state",
        "created",
        "started",
        "ended",
        "exit_code",
        "failure",
        "log_path",
        "outputs",
    } <= columns


def test_reopening_keeps_jobs_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "halo.db"
    first = Store(path)
    job = first.create("select", "v4_sota", {"force": False}, "local")
    first.close()
    again = Store(path)
    assert again.get(job.id).params == {"force": False}
    assert again.version == len(MIGRATIONS)


def test_a_job_goes_through_its_life_with_timestamps(store: Store) -> None:
    job = store.create("manifest", "v4_sota", {"grid": "grid_sota"}, "local")
    assert job.state is JobState.QUEUED and job.started is None
    job = store.transition(job.id, JobState.RUNNING, handle={"pid": 1, "start": 2})
    assert job.started is not None and job.handle == {"pid": 1, "start": 2}
    job = store.transition(job.id, JobState.FAILED, exit_code=3, failure="exited with code 3", outputs=["a"])
    assert (job.exit_code, job.failure, job.outputs) == (3, "exited with code 3", ["a"])
    assert job.ended >= job.started


def test_illegal_transitions_are_refused_and_change_nothing(store: Store) -> None:
    job = store.create("select", None, {}, "local")
    store.transition(job.id, JobState.RUNNING)
    store.transition(job.id, JobState.SUCCEEDED, exit_code=0)
    with pytest.raises(IllegalTransition):
        store.transition(job.id, JobState.RUNNING)
    with pytest.raises(IllegalTransition):
        store.transition(job.id, JobState.CANCELLED)
    assert store.get(job.id).state is JobState.SUCCEEDED
    with pytest.raises(ValueError):
        store.update(job.id, state="running")
    with pytest.raises(ValueError):
        store.update(job.id, **{"state = 'running' --": 1})


def test_duplicate_of_a_live_job_is_refused_unless_forced(store: Store) -> None:
    job = store.create("select", "v4_sota", {"force": False}, "local")
    with pytest.raises(DuplicateJob, match=f"job {job.id}"):
        store.create("select", "v4_sota", {"force": False}, "local")
    assert store.create("select", "v4_sota", {"force": False}, "local", force=True).id != job.id
    # different parameters or variant are different jobs
    store.create("select", "v3_color_relaxed", {"force": False}, "local")
    store.create("select", "v4_sota", {"force": True}, "local")


def test_an_ended_job_does_not_block_a_new_launch(store: Store) -> None:
    job = store.create("select", "v4_sota", {}, "local")
    store.transition(job.id, JobState.CANCELLED)
    assert store.create("select", "v4_sota", {}, "local").id == job.id + 1


def test_concurrent_launches_of_one_job_record_it_once(tmp_path: Path) -> None:
    path = tmp_path / "halo.db"
    Store(path).close()
    outcomes: list[str] = []

    def launch() -> None:
        s = Store(path)
        try:
            s.create("inject", "v4_sota", {"runner": "local"}, "local")
            outcomes.append("created")
        except DuplicateJob:
            outcomes.append("refused")
        s.close()

    threads = [threading.Thread(target=launch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 7
    assert len(Store(path).list()) == 1


def test_list_filters_and_orders_newest_first(store: Store) -> None:
    ids = [store.create("select", f"v{i}", {}, "local").id for i in range(5)]
    store.transition(ids[1], JobState.RUNNING)
    assert [j.id for j in store.list()] == ids[::-1]
    assert [j.id for j in store.list(states=[JobState.RUNNING])] == [ids[1]]
    assert [j.id for j in store.list(limit=2)] == ids[:2:-1][:2]
    assert store.list(stage="train") == []
    with pytest.raises(UsageError, match="no job 999"):
        store.get(999)


def test_list_json_matches_the_job_records(store: Store) -> None:
    import json

    job = store.create("train", "v4_sota", {"preset": "demo_cpu", "resume": True}, "local")
    store.transition(job.id, JobState.RUNNING, handle={"pid": 12, "start": 34, "exit_file": "x"})
    store.transition(
        job.id,
        JobState.FAILED,
        exit_code=-9,
        failure='said "no"',
        outputs=["a", "b"],
        summary={"auroc": None},
    )
    store.create("select", None, {}, "local")
    from_sql = [json.loads(text) for text in store.list_json()]
    from_py = [j.to_dict() for j in store.list()]
    assert len(from_sql) == 2
    for sql_row, py_row in zip(from_sql, from_py, strict=True):
        assert sql_row.keys() == py_row.keys()
        for key, value in py_row.items():
            assert sql_row[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert store.list_json(states=[JobState.QUEUED]) == [json.dumps(from_sql[0], separators=(",", ":"))]
