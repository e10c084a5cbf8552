"""One round of the loop on the demo: scripted inspectors grade the demo run's candidates from
the truth the mock survey knows, `retrain` makes a child run from those grades, and the parent
and child are compared on the same test split.

Two inspectors ("truth-a", "truth-b") grade every candidate the console would show them (the
run's `candidates.parquet`): a galaxy the mock survey planted a lens in A, every other galaxy X
— what a careful team would conclude, not what a model says. They grade through the store as
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
    """Every candidate graded by both inspectors: A where the mock planted a lens, else X."""
    import pyarrow.parquet as pq

    from core import grades
    from core.workspace import Workspace

    planted = pq.read_table(workspace / "truth" / "planted.parquet").to_pylist()
    lenses = {(r["brickname"], int(r["objid"])) for r in planted if r["kind"] == "lens"}
    candidates = pq.read_table(
        workspace / "data" / "candidates" / run / "candidates.parquet", columns=["brickname", "objid"]
    ).to_pylist()
    store = Workspace(workspace).store
    counts = {"A": 0, "X": 0}
    for row in candidates:
        key = (row["brickname"], int(row["objid"]))
        value = "A" if key in lenses else "X"
        counts[value] += 1
        for who in INSPECTORS:
            grades.grade(store, run, key[0], key[1], who, value)
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
    total = sum(counts.values())
    print(f"graded {total} candidates twice: {counts['A']} A (planted lenses), {counts['X']} X")
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
