"""Judge each source model with the realism gate (issue 24): on a workspace with a mock survey
(the demo's, `make demo` first), train one run per source model on the same galaxies, evaluate
each on the same test split, and compare them: the realism probes' AUCs against the same real
(planted) lenses, injection completeness on each run's own injections, and real-lens recall.

The planted lenses' sources come from the mock survey's own generator (spiral discs with
clumps and a bulge, jobs/mock/planted_sources.py), which no injection source model can
import (a contract test): the gate measures how close each model gets to sources it has never
seen, not whether it copies them.

Each step is a `halo stage … --wait` (the engine's jobs, as a user runs them), each run named
`src_<grid>`; the demo's own run (grid_sota: Sérsic sources relative to the lens) is compared
too where it is there, and real COSMOS galaxies (grids/cosmos_dr10.toml) where the workspace
holds the sample. Steps already done are skipped (the stages' own freshness checks).

    python bench/source_models.py [--workspace halo-demo] [--grids structured_sota,sersic_sized,…]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

# beside the demo's grid_sota (Sérsic, relative to the lens): structured sources of the same
# brightness and size, then sources of the literature's sizes, smooth and structured (the
# population grids, fainter arcs, with --grids population_dr10,structured_dr10)
GRIDS = ("structured_sota", "sersic_sized", "structured_sized")
COSMOS = Path("cosmos/COSMOS_25.2_training_sample/real_galaxy_catalog_25.2.fits")  # grids/cosmos_dr10.toml's


def halo(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [
        sys.executable,
        "-c",
        "from halo_tui.cli import main; main()",
        *args,
        "--workspace",
        str(workspace),
    ]
    return subprocess.run(argv, text=True, capture_output=True, check=False)


def step(workspace: Path, stage: str, grid: str, *extra: str) -> None:
    start = time.perf_counter()
    done = halo(workspace, "stage", stage, "--variant", "v4_sota", "--grid", grid, *extra, "--wait")
    print(f"  {stage} {grid}: exit {done.returncode} ({time.perf_counter() - start:.0f} s)", flush=True)
    if done.returncode != 0:
        sys.exit(f"{stage} {grid} failed:\n{done.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("halo-demo"))
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--preset", default="demo_cpu")
    args = parser.parse_args()
    ws = args.workspace
    if not (ws / "survey" / "_stage.json").exists():
        sys.exit(f"{ws}: no mock survey there (run `make demo` or `halo demo` first)")
    toml = (ws / "halo.toml").read_text() if (ws / "halo.toml").exists() else ""
    grids = args.grids.split(",")
    if (ws / COSMOS).is_file() and "cosmos_dr10" not in grids:  # real galaxies too, where they are there
        grids.append("cosmos_dr10")
    shipped = {p.stem for p in (Path(__file__).resolve().parents[1] / "config" / "grids").glob("*.toml")}
    for grid in grids:
        if grid not in shipped and f"[grids.{grid}]" not in toml:
            known = ", ".join(sorted(shipped))
            sys.exit(f"--grids: no grid {grid!r} (shipped: {known}; or a [grids.{grid}] table in halo.toml)")
        if f"[grids.{grid}]" not in toml:  # the shipped 200,000 tasks a split would take hours
            sys.exit(f"{ws}/halo.toml: add [grids.{grid}] n_total_per_split = 2000 to size it for the demo")
    runs = []
    for grid in grids:
        run = f"src_{grid}"
        print(f"{grid}:", flush=True)
        for stage in ("manifest", "coadds"):
            step(ws, stage, grid)
        step(ws, "inject", grid, "--engine", "batched")  # structured sources: ~5x the lenstronomy engine
        step(ws, "train", grid, "--preset", args.preset, "--run", run)
        step(ws, "eval", grid, "--run", run)
        runs.append(run)
    if (ws / "data" / "runs" / "demo" / "eval").exists():
        runs.insert(0, "demo")
    table = halo(ws, "runs", "compare", *runs, "--markdown")
    print(table.stdout or table.stderr)


if __name__ == "__main__":
    main()
