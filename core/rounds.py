"""One round of the loop: people's grades of a run's candidates as the next model's labels.

Each graded candidate's consensus (core.grades.current: every inspector's points, A=3 … X=0,
weighted by their calibration on the blind items) decides what it becomes:

- a **real positive** at a consensus of B or better (≥ POSITIVE), its tier the one the
  variant's `[training] tiers` give the rounded grade ("A" → confirmed, "B" → probable), so it
  weighs as a known lens of that tier does;
- a **hard negative** at a consensus that rounds to X (< NEGATIVE): real galaxies that people
  agreed are no lens, though the model scored them high;
- nothing otherwise (C, or only "unsure"): said, with its count.

Independence: a galaxy in the evaluation split (test: a region of sky) never trains, whatever
its grade; those labels are set aside and counted, so the child's test figures stay honest.
What `retrain` needs before launch (core.engine asks `check_retrain`): the parent run trained
and not training now, its grades, and at least MIN_POSITIVES positives and MIN_LABELS labels
outside the evaluation split. The snapshot (how many grades, the newest, a digest of the
labels) is the round's provenance and its freshness: unchanged grades, nothing to redo."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UsageError

POSITIVE = 1.5  # consensus ≥ this rounds to B or better
NEGATIVE = 0.5  # consensus < this rounds to X
EVALUATION_SPLIT = "test"
MIN_POSITIVES = 3
MIN_LABELS = 10


@dataclass(frozen=True)
class Label:
    brickname: str
    objid: int
    split: str
    label: int  # 1 a lens, 0 not
    grade: str  # the consensus rounded: A, B or X
    consensus: float
    inspectors: int


@dataclass
class Labels:
    """A run's grades as labels, and what was left out and why."""

    run: str
    used: list[Label] = field(default_factory=list)
    set_aside: int = 0  # labelled, but in the evaluation split
    ignored: dict[str, int] = field(default_factory=dict)  # reason -> galaxies
    inspectors: dict[str, float] = field(default_factory=dict)  # name -> consensus weight
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def positives(self) -> list[Label]:
        return [x for x in self.used if x.label == 1]

    @property
    def negatives(self) -> list[Label]:
        return [x for x in self.used if x.label == 0]

    def provenance(self) -> dict[str, Any]:
        """What run.json keeps of the round."""
        return {
            "parent": self.run,
            "grades": self.snapshot,
            "inspectors": self.inspectors,
            "used": {"positives": len(self.positives), "negatives": len(self.negatives)},
            "set_aside": {"evaluation split": self.set_aside},
            "ignored": self.ignored,
        }


def _rounded(score: float) -> str:
    return "A" if score >= 2.5 else "B" if score >= POSITIVE else "C" if score >= NEGATIVE else "X"


def labels(workspace: Path, run: str) -> Labels:
    """The run's candidates' grades as labels (module doc), each galaxy's split from the run's
    ranking (`candidates.scores.parquet`)."""
    import pyarrow.parquet as pq

    from core import grades
    from core.layout import candidates_file, scores_file
    from core.workspace import Workspace

    store = Workspace(workspace).store
    current = grades.current(store, run)
    out = Labels(run=run)
    out.inspectors = {who: round(c.weight, 4) for who, c in grades.calibration(store, run).items()}
    row = store.db.execute(
        "SELECT count(*) AS n, max(id) AS last, max(created) AS newest FROM grades"
        " WHERE run = ? AND blind IS NULL AND note_only = 0",
        (run,),
    ).fetchone()
    ranking = scores_file(candidates_file(workspace, run))
    split: dict[tuple[str, int], str] = {}
    if ranking.is_file() and current:
        bricks = sorted({str(key[0]) for key in current})  # the graded galaxies' bricks only
        table = pq.read_table(
            ranking, columns=["brickname", "objid", "split"], filters=[("brickname", "in", bricks)]
        ).to_pydict()
        split = {
            (b, int(o)): s for b, o, s in zip(table["brickname"], table["objid"], table["split"], strict=True)
        }
    ignored: dict[str, int] = {}
    for key, c in sorted(current.items()):  # candidates: (brickname, objid)
        brickname, objid = key[0], key[1]
        graded = [g for g in c.grades.values() if g in grades.POINTS]
        if c.score is None or not graded:
            ignored["only unsure"] = ignored.get("only unsure", 0) + 1
            continue
        grade = _rounded(c.score)
        if grade == "C":
            ignored["consensus C (possible)"] = ignored.get("consensus C (possible)", 0) + 1
            continue
        where = split.get((brickname, int(objid)))
        if where is None:
            ignored["not in the run's ranking"] = ignored.get("not in the run's ranking", 0) + 1
            continue
        if where == EVALUATION_SPLIT:
            out.set_aside += 1
            continue
        out.used.append(
            Label(brickname, int(objid), where, int(grade != "X"), grade, round(c.score, 4), len(graded))
        )
    out.ignored = ignored
    digest = hashlib.sha256(json.dumps([asdict(x) for x in out.used], sort_keys=True).encode()).hexdigest()
    out.snapshot = {
        "grades": int(row["n"]),
        "last_id": row["last"],
        "newest": row["newest"],
        "labels": digest,
    }
    return out


def check_retrain(workspace: Path, params: dict[str, Any], job: int | None = None) -> None:
    """Refuse a `retrain` launch that could only fail or would replace another run, in one line
    naming what is wrong: the parent untrained or training now, the child an existing run that
    is no earlier round of this parent (or training now), no grades of the parent, too few
    labels to help. `job`: the retrain job doing the checking (itself live), not counted."""
    from core import grades
    from core.layout import run_checkpoint, runs_dir
    from core.workspace import Workspace

    parent, child = params.get("from_run"), params.get("run")
    if not parent:
        raise UsageError("retrain needs --from-run (the run whose candidates were graded)")
    if child == parent:
        raise UsageError(f"the child run needs a name of its own, not its parent's ({parent})")
    where = runs_dir(workspace) / parent
    if run_checkpoint(where) is None:
        raise UsageError(f"run {parent!r} has not been trained (no checkpoint in {where})")
    if child and run_checkpoint(runs_dir(workspace) / child) is not None:
        if lineage_parent(workspace, child) != parent:
            raise UsageError(
                f"run {child!r} exists and is no earlier round of {parent!r}: name the child anew"
                " (a round never replaces another run)"
            )
    store = Workspace(workspace).store
    for live in store.live():
        running = (live.params or {}).get("run")
        if live.id != job and live.stage in ("train", "retrain") and running in (parent, child):
            what = "is still training" if running == parent else "is being trained"
            raise UsageError(f"run {running!r} {what} (job {live.id}): retrain once that ends")
    if not grades.current(store, parent):
        query = (
            "SELECT DISTINCT run FROM grades WHERE blind IS NULL AND note_only = 0 AND run != ? ORDER BY run"
        )
        others = [r["run"] for r in store.db.execute(query, (parent,))]
        hint = f"grades exist for {', '.join(others)}" if others else "grade its candidates first (halo → 3)"
        raise UsageError(f"run {parent!r} has no grades; {hint}")
    found = labels(workspace, parent)
    if len(found.positives) < MIN_POSITIVES or len(found.used) < MIN_LABELS:
        raise UsageError(
            f"run {parent!r}: too few labels to help outside the {EVALUATION_SPLIT} split"
            f" (positives {len(found.positives)}, negatives {len(found.negatives)}; at least"
            f" {MIN_POSITIVES} positives and {MIN_LABELS} labels; {found.set_aside} set aside in it)"
        )


def lineage(workspace: Path, run: str) -> dict[str, Any] | None:
    """The round a run was trained in (its run.json's `lineage`: parent, labels, init), or None."""
    from core.layout import runs_dir

    try:
        info = json.loads((runs_dir(workspace) / run / "run.json").read_text())
    except (OSError, ValueError):
        return None
    found = info.get("lineage") if isinstance(info, dict) else None
    return found if isinstance(found, dict) and found.get("parent") else None


def lineage_parent(workspace: Path, run: str) -> str | None:
    """The parent a run was trained from in a round, or None."""
    return (lineage(workspace, run) or {}).get("parent")
