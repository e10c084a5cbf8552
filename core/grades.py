"""Visual grades of candidates, per inspector, in the workspace store (table `grades`).

Grades: A (definite), B (probable), C (possible), X (not a lens), and "unsure". Each grade is
a new row (the history is kept); an inspector's current grade of a candidate is their latest
row not undone. Consensus is the mean of A=3, B=2, C=1, X=0 over the inspectors' current
grades ("unsure" does not count); a spread of 2 or more is a disagreement."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.store import Store

GRADES = ("A", "B", "C", "X", "unsure")
POINTS = {"A": 3, "B": 2, "C": 1, "X": 0}
DISAGREEMENT = 2


@dataclass(frozen=True)
class Consensus:
    grades: dict[str, str]  # inspector -> current grade
    score: float | None  # mean points over graded (not unsure) inspectors
    disagreement: bool


def grade(
    store: Store, run: str, brickname: str, objid: int, inspector: str, value: str, note: str | None = None
) -> None:
    if value not in GRADES:
        raise UsageError(f"grade {value!r} is not one of {', '.join(GRADES)}")
    with store.write() as db:
        db.execute(
            "INSERT INTO grades (run, brickname, objid, inspector, grade, note, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run, brickname, int(objid), inspector, value, note, time.time()),
        )


@dataclass(frozen=True)
class Undone:
    """What an undo took back: a grade, or a note (saved with the grade it was given under)."""

    brickname: str
    objid: int
    grade: str
    note: str | None
    now: str | None  # the inspector's grade of that candidate after the undo

    def describe(self) -> str:
        after = f"; your grade is {self.now}" if self.now else "; ungraded"
        took = f"the note {self.note!r}" if self.note else self.grade
        return f"undid {took} on {self.brickname}:{self.objid}{after}"


def undo(store: Store, run: str, inspector: str) -> Undone | None:
    """Undo the inspector's latest action in this run (a grade, or a note); return it."""
    with store.write() as db:
        row = db.execute(
            "SELECT id, brickname, objid, grade, note FROM grades"
            " WHERE run = ? AND inspector = ? AND undone = 0 ORDER BY id DESC LIMIT 1",
            (run, inspector),
        ).fetchone()
        if row is None:
            return None
        db.execute("UPDATE grades SET undone = 1 WHERE id = ?", (row["id"],))
        now = db.execute(
            "SELECT grade FROM grades WHERE run = ? AND inspector = ? AND brickname = ? AND objid = ?"
            " AND undone = 0 ORDER BY id DESC LIMIT 1",
            (run, inspector, row["brickname"], row["objid"]),
        ).fetchone()
    return Undone(row["brickname"], row["objid"], row["grade"], row["note"], now["grade"] if now else None)


def version(store: Store, run: str) -> tuple[int, int]:
    """A cheap mark of the run's grades (latest row, rows undone): it changes whenever any
    inspector grades, notes or undoes, so a console can tell without reading them all."""
    row = store.db.execute(
        "SELECT COALESCE(MAX(id), 0), COALESCE(SUM(undone), 0) FROM grades WHERE run = ?", (run,)
    ).fetchone()
    return int(row[0]), int(row[1])


def current(store: Store, run: str) -> dict[tuple[str, int], Consensus]:
    """Every graded candidate of the run with its inspectors' current grades and consensus."""
    rows = store.db.execute(
        "SELECT brickname, objid, inspector, grade FROM grades WHERE run = ? AND undone = 0 ORDER BY id",
        (run,),
    )
    latest: dict[tuple[str, int], dict[str, str]] = {}
    for row in rows:
        latest.setdefault((row["brickname"], row["objid"]), {})[row["inspector"]] = row["grade"]
    out = {}
    for key, by in latest.items():
        points = [POINTS[g] for g in by.values() if g in POINTS]
        score = sum(points) / len(points) if points else None
        out[key] = Consensus(by, score, bool(points) and max(points) - min(points) >= DISAGREEMENT)
    return out


def notes(store: Store, run: str) -> dict[tuple[str, int], list[str]]:
    rows = store.db.execute(
        "SELECT brickname, objid, inspector, note FROM grades"
        " WHERE run = ? AND undone = 0 AND note IS NOT NULL ORDER BY id",
        (run,),
    )
    out: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        out.setdefault((row["brickname"], row["objid"]), []).append(f"{row['inspector']}: {row['note']}")
    return out


HEADER = ("run", "rank", "brickname", "objid", "ra", "dec", "score", "consensus", "disagreement")


def export_csv(store: Store, run: str, path: Path, candidates: list[dict[str, Any]] | None = None) -> int:
    """One line per graded candidate, by rank: ids, position, score, consensus, disagreement,
    each inspector's grade, and the notes ("inspector: note", joined by " | ")."""
    table = current(store, run)
    written = notes(store, run)
    inspectors = sorted({i for c in table.values() for i in c.grades})
    extra = {(c["brickname"], c["objid"]): c for c in candidates or []}

    def by_rank(item: tuple[tuple[str, int], Consensus]) -> tuple[float, str, int]:
        rank = extra.get(item[0], {}).get("rank")
        return (float("inf") if rank is None else float(rank), *item[0])

    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow([*HEADER, *inspectors, "notes"])
        for (brick, objid), c in sorted(table.items(), key=by_rank):
            info = extra.get((brick, objid), {})
            out.writerow(
                [
                    run,
                    info.get("rank", ""),
                    brick,
                    objid,
                    info.get("ra", ""),
                    info.get("dec", ""),
                    info.get("score", ""),
                    "" if c.score is None else f"{c.score:.2f}",
                    int(c.disagreement),
                    *(c.grades.get(i, "") for i in inspectors),
                    " | ".join(written.get((brick, objid), [])),
                ]
            )
    return len(table)
