"""The job store: one SQLite database per workspace (WAL mode), versioned by migrations."""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import StoreError, UsageError
from core.safe_io import create_private, private_dir, refuse_link
from core.states import JobState, check_transition

# Each entry upgrades the schema by one version (PRAGMA user_version). Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        uid         TEXT NOT NULL UNIQUE,
        stage       TEXT NOT NULL,
        variant     TEXT,
        params      TEXT NOT NULL DEFAULT '{}',
        fingerprint TEXT NOT NULL,
        backend     TEXT NOT NULL,
        handle      TEXT,
        state       TEXT NOT NULL,
        created     REAL NOT NULL,
        started     REAL,
        ended       REAL,
        exit_code   INTEGER,
        failure     TEXT,
        log_path    TEXT,
        outputs     TEXT NOT NULL DEFAULT '[]',
        summary     TEXT,
        argv        TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE INDEX jobs_fingerprint ON jobs(fingerprint, state);
    """,
    """
    CREATE TABLE grades (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run         TEXT NOT NULL,
        brickname   TEXT NOT NULL,
        objid       INTEGER NOT NULL,
        inspector   TEXT NOT NULL,
        grade       TEXT NOT NULL CHECK (grade IN ('A', 'B', 'C', 'X', 'unsure')),
        note        TEXT,
        created     REAL NOT NULL,
        undone      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX grades_candidate ON grades(run, brickname, objid);
    """,
    """
    ALTER TABLE grades ADD COLUMN blind TEXT CHECK (blind IS NULL OR blind IN ('lens', 'not_lens'));
    """,
    # a note on its own: it never counts as a grade (its `grade` column is a placeholder)
    """
    ALTER TABLE grades ADD COLUMN note_only INTEGER NOT NULL DEFAULT 0;
    """,
)

_JSON_FIELDS = ("params", "handle", "outputs", "summary", "argv")


def _busy_seconds(raw: str | None) -> float:
    """How long a command waits for another process's write to the store (15 launches at
    once, 4 graders): `$HALO_STORE_WAIT` seconds (0.1–3600), else 30."""
    try:
        value = float(raw or "30")
    except ValueError:
        return 30.0
    return value if 0.1 <= value <= 3600 else 30.0


BUSY_SECONDS = _busy_seconds(os.environ.get("HALO_STORE_WAIT"))


@dataclass
class Job:
    """One launch of a stage, as recorded in the store."""

    id: int
    uid: str
    stage: str
    variant: str | None
    params: dict[str, Any]
    fingerprint: str
    backend: str
    handle: dict[str, Any] | None
    state: JobState
    created: float
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    failure: str | None = None
    log_path: str | None = None
    outputs: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float | None:
        """Seconds run so far (or in all, once ended)."""
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["state"] = self.state.value
        return data


_FIELD_NAMES = tuple(f.name for f in fields(Job))
# One JSON object per row, with the same keys and values as Job.to_dict() (the log path made
# by `_job`'s rule, from the one bound parameter: this store's logs folder with its "/").
_JSON_OBJECT = "json_object({})".format(
    ", ".join(
        f"'{n}', json({n})"
        if n in _JSON_FIELDS
        else "'log_path', CASE WHEN log_path IS NULL THEN NULL ELSE ? || id || '.log' END"
        if n == "log_path"
        else f"'{n}', {n}"
        for n in _FIELD_NAMES
    )
)


def fingerprint(stage: str, variant: str | None, params: dict[str, Any]) -> str:
    """What makes two launches the same job: stage, variant and parameters."""
    return json.dumps([stage, variant, params], sort_keys=True, separators=(",", ":"))


class DuplicateJob(UsageError):
    """A launch of a job that is already queued or running."""

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"job {job.id} ({job.stage}, same variant and parameters) is already {job.state}; "
            "use --force to launch another"
        )
        self.job = job


def unusable(err: sqlite3.DatabaseError, path: Path | str = ".halo/halo.db") -> StoreError:
    """What a store that SQLite could not use means to a user, in one line: locked by another
    process for longer than the busy timeout, or not a database (damaged, or another file)."""
    if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
        return StoreError(
            f"{path}: locked by another process for {BUSY_SECONDS:g} s (a long write, or a program"
            " holding it open); nothing was changed: try again once it is done"
        )
    name = getattr(err, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):  # the disk, not the store
        return StoreError(
            f"{path}: the disk refused it ({err}: full, over a quota or a file-size limit, or"
            " failing); nothing was changed: free some space and try again"
        )
    return StoreError(
        f"{path}: not a usable halo store ({err}); nothing was changed: move it aside and halo"
        " starts a new one (the jobs and grades it held stay in the moved file)"
    )


class _Connection(sqlite3.Connection):
    """A connection the store can keep a weak reference to (the base class takes none)."""


class Store:
    """Access to `<workspace>/.halo/halo.db`. Safe to share between processes and threads:
    each thread gets a connection of its own (one connection used by two threads at once
    interleaves their transactions, and has crashed the interpreter); a thread's connection
    closes when the thread ends."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        refuse_link(path)  # a link planted to a database elsewhere: never opened, never written
        if not path.exists():
            create_private(path)  # 0600, and never a planted link
        self.path = path
        self.logs = path.parent / "logs"  # core.layout.logs_dir: a job's log is <id>.log there
        self._local = threading.local()
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        try:
            self._wal()
            if self.version > len(MIGRATIONS):  # its tables may mean what this code does not know
                raise StoreError(
                    f"{path}: made by a newer halo (store version {self.version}; this one knows"
                    f" {len(MIGRATIONS)}): use that halo here, or move the file aside to start a new store"
                )
            self._migrate()
            self._number_after_earlier_jobs()
        except sqlite3.DatabaseError as err:
            self.close()
            raise unusable(err, path) from None
        except StoreError:
            self.close()
            raise

    def _number_after_earlier_jobs(self) -> None:
        """A new store beside an earlier one's job files (a damaged store moved aside, as its
        message advises) numbers its jobs after theirs: job N's log, exit code and result are
        never another job's, and the moved store's jobs keep theirs."""
        if self.logs.is_symlink() or not self.logs.is_dir():
            return
        if self._db.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is not None:
            return  # a store in use numbers on from its own jobs
        numbers = (name.split(".", 1)[0] for name in os.listdir(self.logs))
        highest = max((int(n) for n in numbers if n.isdigit()), default=0)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        if highest > (row[0] if row else 0):
            with self._write() as db:
                db.execute("DELETE FROM sqlite_sequence WHERE name = 'jobs'")
                db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (highest,))

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path,
                timeout=BUSY_SECONDS,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            self._open.add(db)
        return db

    def _wal(self) -> None:
        """Switch to WAL once, when the database is new. Setting the journal mode ignores the
        busy timeout, so asking again while other processes write would fail with 'locked'."""
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        for _ in range(100):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05)
        self._db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        """Close every thread's connection."""
        for db in list(self._open):
            db.close()
        self._local = threading.local()

    @property
    def version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        if self.version >= len(MIGRATIONS):
            return
        with self._write():
            for number in range(self.version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the workspace's other tables (core.grades)."""
        return self._db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction for the workspace's other tables."""
        with self._write() as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (BEGIN IMMEDIATE)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading -----------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"no job {job_id} in this workspace")
        return _job(row, self.logs)

    def list(
        self,
        states: Iterable[JobState] | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally filtered by state and stage."""
        sql, args = _select("*", states, stage, limit)
        return [_job(row, self.logs) for row in self._db.execute(sql, args)]

    def list_json(
        self,
        states: Iterable[JobState] | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[str]:  # `list` here is the method above
        """As `list`, each job as the JSON of `Job.to_dict()`, built by SQLite (fast for 10,000s)."""
        sql, args = _select(_JSON_OBJECT, states, stage, limit)
        return [row[0] for row in self._db.execute(sql, [f"{self.logs}/", *args])]

    def count(self, states: Iterable[JobState] | None = None, stage: str | None = None) -> int:
        """How many jobs `list` would give without a limit."""
        sql, args = _select("COUNT(*)", states, stage, None)
        return int(self._db.execute(sql.replace(" ORDER BY id DESC", ""), args).fetchone()[0])

    def live(self) -> builtins.list[Job]:
        return self.list(states=[JobState.QUEUED, JobState.RUNNING])

    # -- writing -----------------------------------------------------------------------

    def create(
        self,
        stage: str,
        variant: str | None,
        params: dict[str, Any],
        backend: str,
        force: bool = False,
    ) -> Job:
        """Record a new queued job; refuse a duplicate of a live one unless `force`."""
        fp = fingerprint(stage, variant, params)
        with self._write() as db:
            if not force:
                row = db.execute(
                    "SELECT * FROM jobs WHERE fingerprint = ? AND state IN (?, ?) LIMIT 1",
                    (fp, JobState.QUEUED.value, JobState.RUNNING.value),
                ).fetchone()
                if row is not None:
                    raise DuplicateJob(_job(row, self.logs))
            cur = db.execute(
                "INSERT INTO jobs (uid, stage, variant, params, fingerprint, backend, state, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    os.urandom(6).hex(),
                    stage,
                    variant,
                    json.dumps(params, sort_keys=True),
                    fp,
                    backend,
                    JobState.QUEUED.value,
                    time.time(),
                ),
            )
            job_id = cur.lastrowid
        assert job_id is not None  # an INSERT's row id
        return self.get(job_id)

    def update(self, job_id: int, **fields: Any) -> Job:
        """Set fields other than the state (handle, log path, argv, outputs…)."""
        if "state" in fields:
            raise ValueError("use transition() to change a job's state")
        if fields:
            with self._write() as db:
                _update(db, job_id, fields)
        return self.get(job_id)

    def transition(self, job_id: int, new: JobState, **fields: Any) -> Job:
        """Move a job to `new` (checked by the state machine) and set `fields` with it.

        Ending states stamp `ended`, `running` stamps `started`, unless given."""
        with self._write() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UsageError(f"no job {job_id} in this workspace")
            new = check_transition(row["state"], new)
            now = time.time()
            if new is JobState.RUNNING:
                fields.setdefault("started", now)
            if new.terminal:
                fields.setdefault("ended", now)
            _update(db, job_id, {**fields, "state": new.value})
        return self.get(job_id)


def _select(
    columns: str, states: Iterable[JobState] | None, stage: str | None, limit: int | None
) -> tuple[str, list[Any]]:
    sql = f"SELECT {columns} FROM jobs WHERE 1=1"
    args: list[Any] = []
    if states is not None:
        names = [str(s) for s in states]
        sql += f" AND state IN ({','.join('?' * len(names))})"
        args += names
    if stage is not None:
        sql += " AND stage = ?"
        args.append(stage)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, args


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


_COLUMNS = frozenset(
    "uid stage variant params fingerprint backend handle state created started ended "
    "exit_code failure log_path outputs summary argv".split()
)


def _update(db: sqlite3.Connection, job_id: int, fields: dict[str, Any]) -> None:
    columns = list(fields)
    unknown = set(columns) - _COLUMNS
    if unknown:
        raise ValueError(f"not job fields: {sorted(unknown)}")
    values = [json.dumps(fields[c]) if c in _JSON_FIELDS else fields[c] for c in columns]
    assignments = ", ".join(f"{c} = ?" for c in columns)
    db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))


def _job(row: sqlite3.Row, logs: Path) -> Job:
    """A row as a Job; its log is `<id>.log` in this store's `logs` folder whatever path was
    recorded (a copy of a workspace, `cp -a`, shows its own logs, never the original's)."""
    data = dict(row)
    if data["log_path"] is not None:
        data["log_path"] = str(logs / f"{data['id']}.log")
    for name in _JSON_FIELDS:
        if data[name] is not None:
            data[name] = json.loads(data[name])
    data["state"] = JobState(data["state"])
    return Job(**data)
