"""One round of the loop on the demo: scripted inspectors grade the demo run's candidates from
the truth the mock survey knows, `retrain` makes a child run from those grades, and the parent
and child are compared on the same test split.

Two inspectors ("truth-a", "truth-b") grade every item the console's stream shows them (the
run's candidates, with its blind items mixed in): a galaxy the mock survey planted a lens in A,
every other galaxy X, a blind item by its truth — what a careful team would conclude, not what
a model says. They grade through the store as
the console does (core.grades), not through the keys (bench/triage_session.py times those).
Then `halo stage retrain --from-run demo --run demo-r2 --wait`, as a user launches it, and the
round's table.

    python bench/round.py [--workspace halo-demo] [--run demo] [--child demo-r2] [--epochs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INSPECTORS = ("truth-a", "truth-b")


def grade_from_truth(workspace: Path, run: str) -> dict[str, int]:
    """Both inspectors grade the stream the console shows them (the run's candidates with the
    workspace's blind items mixed in at its `[triage] blind_rate`): a candidate A where the mock
    planted a lens, else X; a blind item A if it is a simulated lens, else X (so each earns
    the calibration a careful inspector would)."""
    import pyarrow.parquet as pq

    from core import grades
    from core.candidates import CandidateTable, TriageStream, blinds_path
    from core.layout import candidates_file
    from core.workspace import Workspace

    planted = pq.read_table(workspace / "truth" / "planted.parquet").to_pylist()
    lenses = {(r["brickname"], int(r["objid"])) for r in planted if r["kind"] == "lens"}
    ws = Workspace(workspace)
    path = candidates_file(workspace, run)
    blinds = blinds_path(path)
    stream = TriageStream(
        CandidateTable(path),
        CandidateTable(blinds) if blinds.exists() else None,
        ws.config.triage.blind_rate,
        seed=run,
    )
    counts = {"A": 0, "X": 0, "blind": 0}
    for position in range(len(stream)):
        row = stream.row(position)
        key = (row["brickname"], int(row["objid"]))
        if row["blind"] is not None:
            value, counts["blind"] = ("A" if row["blind"] == "lens" else "X"), counts["blind"] + 1
        else:
            value = "A" if key in lenses else "X"
            counts[value] += 1
        for who in INSPECTORS:
            grades.grade(ws.store, run, key[0], key[1], who, value, blind=row["blind"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("halo-demo"))
    parser.add_argument("--run", default="demo")
    parser.add_argument("--child", default="demo-r2")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    ws = args.workspace
    if not (ws / "truth" / "planted.parquet").is_file():
        sys.exit(f"{ws}: no mock survey truth there (run `make demo` first)")
    if not (ws / "data" / "candidates" / args.run / "candidates.parquet").is_file():
        sys.exit(f"{ws}: run {args.run!r} has no candidates (run `halo stage score --run {args.run}` first)")
    counts = grade_from_truth(ws, args.run)
    print(
        f"graded the stream twice: {counts['A'] + counts['X']} candidates ({counts['A']} A, planted"
        f" lenses; {counts['X']} X) and {counts['blind']} blind items"
    )
    argv = [
        str(Path(sys.executable).with_name("halo")),
        "stage",
        "retrain",
        "--from-run",
        args.run,
        "--run",
        args.child,
        *(["--epochs", str(args.epochs)] if args.epochs else []),
        "-w",
        str(ws),
        "--wait",
    ]
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)
    print((ws / "data" / "rounds" / args.child / "report" / "compare.md").read_text())


if __name__ == "__main__":
    main()
