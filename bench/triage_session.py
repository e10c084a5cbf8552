"""A scripted triage session: three scripted inspectors grade a run's triage stream through
the console (Textual's pilot pressing the keys a person would: a grade, which moves on, and
`n` to the next ungraded item where it does not), blind items mixed in; then the `triage`
stage prints each inspector's calibration and the export shows the consensus they weight.

    python bench/triage_session.py [--workspace halo-demo] [--run demo] [--items 250]
        [--blind-rate 0.2]

The inspectors are scripts, not people, and each looks only at the pixels it is shown:
"keen" grades by the asymmetric light around the galaxy (the stamp minus itself rotated by
180°, in an annulus 3–16 px out, against the sky's noise: A above 45, B above 30, X below),
"coin" grades A one time in three whatever it sees, "yes" grades everything A. A person's
figures come from grading in `halo` → 3 (`i` shows them). Grades go to the workspace's store
under these names; `--fresh` takes back the session's earlier grades first."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INSPECTORS = ("keen", "coin", "yes")


def asymmetry(stamp: np.ndarray) -> float:
    """Light that a 180° rotation does not cancel, near the galaxy, in sky-noise units."""
    image = stamp[0] + stamp[1]  # g + r: arcs are blue
    y, x = np.mgrid[: image.shape[0], : image.shape[1]] - (image.shape[0] - 1) / 2
    r = np.hypot(x, y)
    ring, sky = (r > 3) & (r < 16), image[r > 24]
    noise = 1.4826 * np.median(np.abs(sky - np.median(sky))) or 1.0
    residual = image - image[::-1, ::-1]
    return float(np.abs(residual[ring]).sum() / (noise * np.sqrt(2 * ring.sum())))


def decide(who: str, stamp: np.ndarray, rng: np.random.Generator) -> str:
    if who == "yes":
        return "a"
    if who == "coin":
        return "a" if rng.random() < 1 / 3 else "x"
    value = asymmetry(stamp)
    return "a" if value > 45 else "b" if value > 30 else "x"


async def grade_as(who: str, engine, path: Path, run: str, items: int, rate: float) -> float:
    """One inspector's pass over the first `items` of the stream; the seconds it took."""
    from halo_tui.app import HaloApp
    from halo_tui.components.stamp_tile import StampTile
    from halo_tui.screens.candidates import CandidatesScreen, ident

    os.environ["USER"] = who
    rng = np.random.default_rng(len(who))
    app = HaloApp(engine, blind_rate=rate)
    start = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        app.push_screen(CandidatesScreen(path, run))
        while not (isinstance(app.screen, CandidatesScreen) and app.screen.query(StampTile)):
            await pilot.pause(0.05)
        screen = app.screen
        for _ in range(min(items, len(screen.table))):
            mine = screen.consensus.get(ident(screen._current()))
            if mine is not None and who in mine.grades:
                await pilot.press("n")  # on to the next item not graded yet
            if screen.position >= items:
                break
            stamp = screen.table.stamps([int(screen.rows[screen.position])])[0]
            await pilot.press(decide(who, stamp, rng))
        await app.workers.wait_for_complete()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from core.layout import DEMO_DIR

    p.add_argument("--workspace", type=Path, default=Path(DEMO_DIR))
    p.add_argument("--run", default="demo")
    p.add_argument("--items", type=int, default=250)
    p.add_argument("--blind-rate", type=float, default=0.2)
    p.add_argument("--fresh", action="store_true", help="take back these inspectors' earlier grades")
    args = p.parse_args()
    from core import grades
    from core.engine import Engine
    from core.layout import candidates_file
    from core.workspace import Workspace
    from jobs.stages import triage

    workspace = Workspace.resolve(args.workspace)
    path = candidates_file(workspace.root, args.run)
    if not path.with_name("blinds.parquet").exists():
        raise SystemExit(f"{path.parent}: no blinds.parquet; run `halo stage score` on the run first")
    engine = Engine(workspace)
    if args.fresh:
        for who in INSPECTORS:
            while grades.undo(engine.store, args.run, who):
                pass
    for who in INSPECTORS:
        seconds = asyncio.run(grade_as(who, engine, path, args.run, args.items, args.blind_rate))
        print(f"{who}: graded the first {args.items} items in {seconds:.1f} s", flush=True)
    result = triage.run(workspace.root, run=args.run)
    graded = list(csv.DictReader(open(result["outputs"][0])))
    moved = sum(1 for r in graded if (float(r["consensus"]) >= 2) != (float(r["mean_grade"]) >= 2))
    print(
        f"{result['graded']} candidates graded; {result['consensus_at_least_B']} at a weighted consensus"
        f" >= B; the weighting changed that call for {moved}"
    )
    for name in result["outputs"]:
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
