"""Visual grades of candidates, per inspector, in the workspace store (table `grades`).

Grades: A (definite), B (probable), C (possible), X (not a lens), and "unsure". Each grade is
a new row (the history is kept); an inspector's current grade of a candidate is their latest
row not undone. A spread of 2 or more points (A=3, B=2, C=1, X=0) is a disagreement.

Blind items (`blind` = "lens": a simulated lens from the test stamps; "not_lens": a known
non-lens) are graded in the same stream, indistinguishable, and measure each inspector: the
completeness (simulated lenses called A or B) and the false-positive rate (non-lenses called
A or B), counted in galaxies with intervals. The consensus on a real candidate is the mean of
its inspectors' points weighted by their skill on the blinds (Youden's J, Laplace-smoothed,
floored at WEIGHT_FLOOR): equal weights, the plain mean, until blinds are graded. Blind
grades never enter the candidates' consensus or export."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import figures
from core.errors import UsageError
from core.intervals import binomial
from core.safe_io import atomic_write
from core.store import Store

GRADES = ("A", "B", "C", "X", "unsure")
POINTS = {"A": 3, "B": 2, "C": 1, "X": 0}
DISAGREEMENT = 2
BLIND_TRUTHS = ("lens", "not_lens")  # what a blind item is (the store's CHECK says the same)
CALLS_LENS = ("A", "B")  # the grades that call a blind item a lens
WEIGHT_FLOOR = 0.05  # an inspector no better than chance still counts, a little
# a graded item: (brickname, objid) for a candidate, (brickname, objid, truth) for a blind item
GradeKey = tuple[str, int] | tuple[str, int, str]


@dataclass(frozen=True)
class Consensus:
    grades: dict[str, str]  # inspector -> current grade
    score: float | None  # mean points over graded (not unsure) inspectors, weighted by skill
    disagreement: bool
    mean: float | None = None  # the unweighted mean


def grade(
    store: Store,
    run: str,
    brickname: str,
    objid: int,
    inspector: str,
    value: str,
    note: str | None = None,
    blind: str | None = None,
    *,
    note_only: bool = False,
) -> None:
    """Record a grade (with a note) of a candidate, or of a blind item (`blind`: its truth);
    `note_only`: a note on its own, which never counts as a grade (`note`)."""
    if value not in GRADES:
        raise UsageError(f"grade {value!r} is not one of {', '.join(GRADES)}")
    if blind is not None and blind not in BLIND_TRUTHS:
        raise UsageError(f"blind item {blind!r} is not one of {', '.join(BLIND_TRUTHS)}")
    with store.write() as db:
        db.execute(
            "INSERT INTO grades (run, brickname, objid, inspector, grade, note, created, blind, note_only)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run, brickname, int(objid), inspector, value, note, time.time(), blind, int(note_only)),
        )


def note(
    store: Store, run: str, brickname: str, objid: int, inspector: str, text: str, blind: str | None = None
) -> None:
    """Record a note on a candidate (or blind item): a note is never a grade, so an ungraded
    candidate stays ungraded and a graded one keeps its grade; `undo` takes it back alone."""
    grade(store, run, brickname, objid, inspector, "unsure", text, blind, note_only=True)


@dataclass(frozen=True)
class Undone:
    """What an undo took back: a grade (`grade`), or a note (`note`; `grade` is then None)."""

    brickname: str
    objid: int
    grade: str | None
    note: str | None
    now: str | None  # the inspector's grade of that candidate after the undo
    blind: str | None = None  # a blind item's truth (never shown: the item stays blind)

    def describe(self, label: str | None = None) -> str:
        """`undid the grade A on #14 (1499p022:1); now ungraded`: `label` is how the inspector
        knows the candidate (its number in the stream), else its brick and objid alone."""
        where = f"{label} ({self.brickname}:{self.objid})" if label else f"{self.brickname}:{self.objid}"
        took = f"the note {self.note!r}" if self.grade is None else f"the grade {self.grade}"
        return f"undid {took} on {where}; " + (f"your grade is {self.now}" if self.now else "now ungraded")


def undo(store: Store, run: str, inspector: str) -> Undone | None:
    """Undo the inspector's latest action in this run (a grade, or a note); return it."""
    with store.write() as db:
        row = db.execute(
            "SELECT id, brickname, objid, grade, note, blind, note_only FROM grades"
            " WHERE run = ? AND inspector = ? AND undone = 0 ORDER BY id DESC LIMIT 1",
            (run, inspector),
        ).fetchone()
        if row is None:
            return None
        db.execute("UPDATE grades SET undone = 1 WHERE id = ?", (row["id"],))
        now = db.execute(
            "SELECT grade FROM grades WHERE run = ? AND inspector = ? AND brickname = ? AND objid = ?"
            " AND blind IS ? AND undone = 0 AND note_only = 0 ORDER BY id DESC LIMIT 1",
            (run, inspector, row["brickname"], row["objid"], row["blind"]),
        ).fetchone()
    took, after = (None if row["note_only"] else row["grade"]), (now["grade"] if now else None)
    return Undone(row["brickname"], row["objid"], took, row["note"], after, row["blind"])


def version(store: Store, run: str) -> tuple[int, int]:
    """A cheap mark of the run's grades (latest row, rows undone): it changes whenever any
    inspector grades, notes or undoes, so a console can tell without reading them all."""
    row = store.db.execute(
        "SELECT COALESCE(MAX(id), 0), COALESCE(SUM(undone), 0) FROM grades WHERE run = ?", (run,)
    ).fetchone()
    return int(row[0]), int(row[1])


_BLIND = {False: "blind IS NULL", True: "blind IS NOT NULL"}


def _latest(store: Store, run: str, blinds: bool) -> dict[GradeKey, dict[str, str]]:
    """{key: {inspector: current grade}}; key (brickname, objid), or with the truth for blinds."""
    rows = store.db.execute(
        "SELECT brickname, objid, blind, inspector, grade FROM grades"
        f" WHERE run = ? AND undone = 0 AND note_only = 0 AND {_BLIND[blinds]} ORDER BY id",
        (run,),
    )
    latest: dict[GradeKey, dict[str, str]] = {}
    for row in rows:
        key = _key(row["brickname"], row["objid"], row["blind"] if blinds else None)
        latest.setdefault(key, {})[row["inspector"]] = row["grade"]
    return latest


def _key(brickname: str, objid: int, blind: str | None) -> GradeKey:
    """An item's key: with its truth where it is a blind item."""
    return (brickname, objid) if blind is None else (brickname, objid, blind)


def current(store: Store, run: str, blinds: bool = False) -> dict[GradeKey, Consensus]:
    """Every graded candidate of the run, keyed (brickname, objid), with its inspectors' current
    grades and the consensus weighted by their calibration; with `blinds`, the blind items
    instead, keyed (brickname, objid, truth)."""
    blind = _latest(store, run, blinds=True)
    return _consensus(blind if blinds else _latest(store, run, blinds=False), _calibrate(blind))


def current_all(store: Store, run: str) -> dict[GradeKey, Consensus]:
    """`current` of the candidates and of the blind items together (each key tells which),
    the blind grades read once for both."""
    blind = _latest(store, run, blinds=True)
    calibrated = _calibrate(blind)
    return _consensus(_latest(store, run, blinds=False), calibrated) | _consensus(blind, calibrated)


def _consensus(
    latest: dict[GradeKey, dict[str, str]], calibrated: dict[str, Calibration]
) -> dict[GradeKey, Consensus]:
    weights = {who: c.weight for who, c in calibrated.items()}
    out = {}
    for key, by in latest.items():
        graded = {i: POINTS[g] for i, g in by.items() if g in POINTS}
        points = list(graded.values())
        mean = sum(points) / len(points) if points else None
        w = {i: weights.get(i, WEIGHT_FLOOR) for i in graded}
        score = sum(w[i] * p for i, p in graded.items()) / sum(w.values()) if points else None
        spread = bool(points) and max(points) - min(points) >= DISAGREEMENT
        out[key] = Consensus(by, score, spread, mean)
    return out


def consensus_x(store: Store, exclude_run: str | None = None, inspectors: int = 2) -> set[tuple[str, int]]:
    """Candidates (brickname, objid) of every run but `exclude_run` that at least `inspectors`
    people graded and whose weighted consensus rounds to X (below half a point): known
    non-lenses, by people's agreement."""
    runs = [r["run"] for r in store.db.execute("SELECT DISTINCT run FROM grades WHERE blind IS NULL")]
    out: set[tuple[str, int]] = set()
    for run in runs:
        if run == exclude_run:
            continue
        for key, c in current(store, run).items():
            graded = [g for g in c.grades.values() if g in POINTS]
            if len(graded) >= inspectors and c.score is not None and c.score < 0.5:
                out.add((str(key[0]), int(key[1])))
    return out


def notes(store: Store, run: str, blinds: bool | None = False) -> dict[GradeKey, list[str]]:
    """The notes on each candidate, keyed (brickname, objid): "inspector: note"; with `blinds`,
    on each blind item instead, keyed with its truth; with `blinds=None`, on both."""
    where = "" if blinds is None else f" AND {_BLIND[blinds]}"
    rows = store.db.execute(
        "SELECT brickname, objid, blind, inspector, note FROM grades"
        f" WHERE run = ? AND undone = 0 AND note IS NOT NULL{where} ORDER BY id",
        (run,),
    )
    out: dict[GradeKey, list[str]] = {}
    for row in rows:
        key = _key(row["brickname"], row["objid"], row["blind"])
        out.setdefault(key, []).append(f"{row['inspector']}: {row['note']}")
    return out


# -- inspector calibration on the blind items ----------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """One inspector on the blind items: simulated lenses graded and called lenses (A or B),
    known non-lenses graded and called lenses ("unsure" is neither)."""

    inspector: str
    sims: int = 0
    found: int = 0
    duds: int = 0
    false: int = 0
    unsure: int = 0

    @property
    def weight(self) -> float:
        """Youden's J (completeness − FPR), each Laplace-smoothed, floored at WEIGHT_FLOOR:
        0.05 with no blinds graded, near 1 for an inspector who finds every simulated lens
        and calls no non-lens one."""
        j = (self.found + 1) / (self.sims + 2) - (self.false + 1) / (self.duds + 2)
        return max(WEIGHT_FLOOR, j)

    def completeness(self) -> dict[str, Any]:
        return binomial(self.found, self.sims)  # each blind item its own galaxy

    def fpr(self) -> dict[str, Any]:
        return binomial(self.false, self.duds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inspector": self.inspector,
            "simulated_lenses": self.sims,
            "found": self.found,
            "completeness": self.completeness(),
            "known_non_lenses": self.duds,
            "called_lens": self.false,
            "fpr": self.fpr(),
            "unsure": self.unsure,
            "weight": round(self.weight, 4),
        }

    def line(self) -> str:
        """`alice  completeness 9/10 90% (55–100%) · FPR 0/8 < 31% · weight 0.80`"""
        return (
            f"{self.inspector}  completeness {format_rate(self.completeness())}"
            f" · FPR {format_rate(self.fpr())} · weight {self.weight:.2f}"
        )


def format_rate(r: dict[str, Any]) -> str:
    """`9/10 90% (55–100%)`, `0/8 < 31%` where none passed, `0/0 not measured`."""
    if not r["n"]:
        return "0/0 not measured"
    if "upper" in r:
        return f"0/{r['n']} < {100 * r['upper']:.0f}%"
    return f"{r['k']}/{r['n']} {100 * r['value']:.0f}% ({100 * r['lo']:.0f}–{100 * r['hi']:.0f}%)"


def calibration(store: Store, run: str) -> dict[str, Calibration]:
    """Each inspector who graded an item of the run (a candidate or a blind item), on the
    blind items: one who graded none of them has nothing measured and the floor weight (what
    the consensus gives them), listed all the same."""
    measured = _calibrate(_latest(store, run, blinds=True))
    everyone = {who for by in _latest(store, run, blinds=False).values() for who in by} | set(measured)
    return {who: measured.get(who, Calibration(who)) for who in sorted(everyone)}


def _calibrate(blind: dict[GradeKey, dict[str, str]]) -> dict[str, Calibration]:
    counts: dict[str, dict[str, int]] = {}
    for key, by in blind.items():
        truth = key[-1]
        for who, value in by.items():
            c = counts.setdefault(who, {"sims": 0, "found": 0, "duds": 0, "false": 0, "unsure": 0})
            if value not in POINTS:
                c["unsure"] += 1
            elif truth == "lens":
                c["sims"] += 1
                c["found"] += value in CALLS_LENS
            else:
                c["duds"] += 1
                c["false"] += value in CALLS_LENS
    return {who: Calibration(who, **c) for who, c in sorted(counts.items())}


HEADER = (
    "run",
    "rank",
    "brickname",
    "objid",
    "ra",
    "dec",
    "score",
    "consensus",
    "mean_grade",
    "disagreement",
)
CALIBRATION_HEADER = (
    "run",
    "inspector",
    "simulated_lenses",
    "found",
    "completeness",
    "completeness_lo",
    "completeness_hi",
    "known_non_lenses",
    "called_lens",
    "fpr",
    "fpr_lo",
    "fpr_hi",
    "unsure",
    "weight",
)


def calibration_path(grades_csv: Path) -> Path:
    """The per-inspector figures beside a grades CSV: `<name>.inspectors.csv`."""
    return grades_csv.with_name(f"{grades_csv.stem}.inspectors.csv")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts so


def cell(text: str) -> str:
    """People's text (an inspector's name, a note) as a CSV cell a spreadsheet shows and never
    runs: one starting like a formula gets a leading apostrophe (OWASP's advice)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def export_csv(store: Store, run: str, path: Path, candidates: list[dict[str, Any]] | None = None) -> int:
    """One line per graded candidate (blind items never), by rank: ids, position, score,
    consensus (weighted by the inspectors' calibration), the unweighted mean, disagreement,
    each inspector's grade, and the notes ("inspector: note", joined by " | "). Beside it,
    `calibration_path(path)`: each inspector's completeness and FPR on the blind items."""
    table = current(store, run)
    written = notes(store, run)
    inspectors = sorted({i for c in table.values() for i in c.grades})
    extra = {(c["brickname"], c["objid"]): c for c in candidates or []}

    def by_rank(item: tuple[GradeKey, Consensus]) -> tuple[float, str, int]:
        rank = extra.get(item[0][:2], {}).get("rank")
        return (float("inf") if rank is None else float(rank), item[0][0], item[0][1])

    handle = io.StringIO(newline="")
    out = csv.writer(handle)
    out.writerow([*HEADER, *map(cell, inspectors), "notes"])
    for key, c in sorted(table.items(), key=by_rank):  # candidates only: (brickname, objid)
        brick, objid = key[0], key[1]
        info = extra.get((brick, objid), {})
        out.writerow(
            [
                run,
                info.get("rank", ""),
                brick,
                objid,
                *(figures.degrees(info.get(k)) for k in ("ra", "dec")),
                "" if info.get("score") is None else figures.score(info["score"], 6),
                "" if c.score is None else f"{c.score:.2f}",
                "" if c.mean is None else f"{c.mean:.2f}",
                int(c.disagreement),
                *(c.grades.get(i, "") for i in inspectors),
                cell(" | ".join(written.get((brick, objid), []))),
            ]
        )
    atomic_write(path, handle.getvalue())
    export_calibration(store, run, calibration_path(path))
    return len(table)


def export_calibration(store: Store, run: str, path: Path) -> None:
    """Each inspector's figures on the blind items, one line each."""

    def cells(r: dict[str, Any]) -> list[Any]:
        return ["" if r.get(k) is None else f"{r[k]:.4f}" for k in ("value", "lo", "hi")]

    handle = io.StringIO(newline="")
    out = csv.writer(handle)
    out.writerow(CALIBRATION_HEADER)
    for c in calibration(store, run).values():
        out.writerow(
            [run, cell(c.inspector), c.sims, c.found, *cells(c.completeness()), c.duds, c.false]
            + [*cells(c.fpr()), c.unsure, f"{c.weight:.4f}"]
        )
    atomic_write(path, handle.getvalue())
