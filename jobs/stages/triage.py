"""`triage` (visual grading, headless): export a run's grades — each inspector's current
grade, the consensus (weighted by the inspectors' calibration) and the disagreements — to CSV,
with each candidate's rank, position and score; blind items are never in it. Beside it,
`<name>.inspectors.csv`: each inspector's completeness and false-positive rate on the blind
items (simulated lenses and known non-lenses mixed into the stream), also printed and in the
job's result. The grading itself happens in the console (`halo` → 3).

    python -m jobs.stages.triage --workspace DIR --run NAME [--out FILE]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.runtime import stage as stage_runtime


def run(workspace: Path, *, run: str, out: str | None = None) -> dict[str, Any]:
    from core import grades
    from core.candidates import CandidateTable
    from core.layout import candidates_file, grades_csv
    from core.names import check_name
    from core.workspace import Workspace

    run_name = check_name("run", run)
    store = Workspace(workspace).store
    current = grades.current(store, run_name)
    path = candidates_file(workspace, run_name)
    if not current and not path.exists():  # a mistyped run: say so, write no empty CSVs
        raise stage_runtime.StageError(
            f"run {run_name!r} has no candidates ({path}) and no grades: nothing to export"
            f" (score it, `halo stage score --variant {_variant_of(workspace, run_name)} --run {run_name}`,"
            " then grade it in the console)"
        )
    rows = CandidateTable(path).rows_of(current) if path.exists() else []
    target = Path(out) if out else grades_csv(path, run_name)
    if not target.is_absolute():
        target = workspace / target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(
        "triage: exporting the grades as they stand now (never skipped: they change as people grade)",
        flush=True,
    )
    n = grades.export_csv(store, run_name, target, rows)
    calibration = grades.calibration(store, run_name)
    for figures in calibration.values():
        print(f"triage: {figures.line()}", flush=True)
    scores = [c.score for c in current.values() if c.score is not None]
    return {
        "outputs": [str(target), str(grades.calibration_path(target))],
        "run": run_name,
        "graded": n,
        "inspectors": sorted({i for c in current.values() for i in c.grades}),
        "disagreements": sum(1 for c in current.values() if c.disagreement),
        "consensus_at_least_B": sum(1 for s in scores if s >= 2.0),
        "calibration": [c.as_dict() for c in calibration.values()],
    }


def _variant_of(workspace: Path, run: str) -> str:
    """The variant a run was trained on (its run.json), for a command to copy; else V."""
    import json

    from core.layout import runs_dir

    try:
        return str(json.loads((runs_dir(workspace) / run / "run.json").read_text())["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return "V"


main = stage_runtime.entry("triage", run)


if __name__ == "__main__":
    raise SystemExit(main())
