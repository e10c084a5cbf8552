"""`halo jobs list --all` on a store of many jobs (issue 26, item 13: 42 s for 10,000): the
command as a user runs it (a process, piped), and beside it, in the same run, the baseline
of laying the same rows out with Rich's Table, which the command used before.

    python bench/jobs_list.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fill(root: Path, n: int) -> None:
    """`n` ended jobs in a new store under `root` (one in seven failed, exit code 1)."""
    from core.store import Store

    store = Store(root / ".halo" / "halo.db")
    with store.write() as db:
        db.executemany(
            "INSERT INTO jobs (uid, stage, variant, params, fingerprint, backend, state, created,"
            " started, ended, exit_code) VALUES (?, 'train', 'v4_sota', '{}', ?, 'local', ?, ?, ?, ?, ?)",
            [
                (
                    f"u{i}",
                    f"f{i}",
                    "succeeded" if i % 7 else "failed",
                    1.7e9 + i,
                    1.7e9 + i,
                    1.7e9 + i + 63,
                    int(i % 7 == 0),
                )
                for i in range(n)
            ],
        )
    store.close()


def rich_table(root: Path) -> float:
    """Seconds to lay the jobs out with rich.table.Table (the baseline), printed to a buffer."""
    from rich.console import Console
    from rich.table import Table

    from core.store import Store
    from halo_tui.format import duration, when

    start = time.perf_counter()
    table = Table(box=None)
    for name in ("id", "stage", "variant", "backend", "state", "started", "elapsed", "exit"):
        table.add_column(name)
    for job in Store(root / ".halo" / "halo.db").list():
        table.add_row(
            str(job.id),
            job.stage,
            job.variant,
            job.backend,
            str(job.state),
            when(job.started),
            duration(job.elapsed),
            str(job.exit_code),
        )
    Console(file=io.StringIO(), width=200).print(table)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        fill(root, args.jobs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")} | {"HALO_WORKSPACE": folder}
        start = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("halo")), "jobs", "list", "--all"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        command = time.perf_counter() - start
        lines = done.stdout.count("\n")
        baseline = rich_table(root)
    print(
        f"halo jobs list --all, {args.jobs:,} jobs: {command:.2f} s for {lines:,} lines (the whole command)"
    )
    print(f"baseline, Rich's Table over the same rows (layout alone): {baseline:.2f} s")
    print(f"ratio baseline / command: {baseline / command:.1f}x")


if __name__ == "__main__":
    main()
