"""`triage` (visual grading, headless): export a run's grades — each inspector's current
grade, the consensus and the disagreements — to CSV, with each candidate's rank, position
and score. The grading itself happens in the console (`halo` → runs → g).

    python -m jobs.triage --workspace DIR --run NAME [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from jobs import stage_runtime


def run(workspace: Path, run_name: str, out: str | None = None) -> dict[str, Any]:
    from core import grades
    from core.candidates import CandidateTable, candidates_path
    from core.names import check_name
    from core.workspace import Workspace

    check_name("run", run_name)
    store = Workspace(workspace).store
    current = grades.current(store, run_name)
    rows = []
    path = candidates_path(workspace, run_name)
    if path.exists():
        table = CandidateTable(path)
        for brick, objid in current:
            key = table.key(brick, objid)
            found = np.flatnonzero(table.keys == key) if key is not None else []
            if len(found):
                rows.append(table.row(int(found[0])))
    target = Path(out) if out else path.parent / f"grades-{run_name}.csv"
    if not target.is_absolute():
        target = workspace / target
    target.parent.mkdir(parents=True, exist_ok=True)
    n = grades.export_csv(store, run_name, target, rows)
    scores = [c.score for c in current.values() if c.score is not None]
    return {
        "outputs": [str(target)],
        "run": run_name,
        "graded": n,
        "inspectors": sorted({i for c in current.values() for i in c.grades}),
        "disagreements": sum(1 for c in current.values() if c.disagreement),
        "consensus_at_least_B": sum(1 for s in scores if s >= 2.0),
    }


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser(
        "triage", "Export a run's grades, consensus and disagreements.", needs_variant=False
    )
    args = p.parse_args(argv)
    return stage_runtime.main("triage", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(args.workspace.resolve(), args.run, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
