"""Wall time of `halo jobs list --json` on a store of 10,000 jobs, as a ratio to
`python -c "import typer"` measured in the same run. Goal: under 3x.

    python bench/cli_start.py [--jobs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.states import JobState
from core.store import Store


def fill(root: Path, n: int) -> None:
    store = Store(root / ".halo" / "halo.db")
    stages = ("select", "manifest", "coadds", "inject", "train", "eval", "score")
    for i in range(n):
        job = store.create(stages[i % len(stages)], "v4_sota", {"i": i, "grid": "grid_sota"}, "local")
        store.transition(job.id, JobState.RUNNING, handle={"pid": 1, "start": 1, "exit_file": "/nonexistent"})
        store.transition(
            job.id,
            JobState.SUCCEEDED if i % 5 else JobState.FAILED,
            exit_code=0 if i % 5 else 1,
            outputs=[f"/data/out/{i}.parquet"],
        )
    store.close()


def timed(argv: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall time of `argv` over `repeat` runs (after one warm-up)."""
    times = []
    for run in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        if run:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    halo = str(Path(sys.executable).with_name("halo"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fill(root, args.jobs)
        env = {**os.environ, "HALO_WORKSPACE": str(root)}
        base = timed([sys.executable, "-c", "import typer"], env, args.repeat)
        listed = timed([halo, "jobs", "list", "--json"], env, args.repeat)
    print(f"python -c 'import typer':          {base * 1000:7.1f} ms (median of {args.repeat})")
    print(f"halo jobs list --json ({args.jobs} jobs): {listed * 1000:7.1f} ms (median of {args.repeat})")
    print(f"ratio: {listed / base:.2f}x (goal: under 3x)")


if __name__ == "__main__":
    main()
