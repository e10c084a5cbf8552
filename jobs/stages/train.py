"""The train stage's command line (`python -m jobs.stages.train`): the training itself is
jobs/learn/training.py (a round trains through it too); with --nproc N the stage runs again
under torchrun, N processes (one per GPU; gloo on CPU).

    python -m jobs.stages.train --workspace DIR --variant V [--grid G] [--preset P] [--run NAME] [--resume]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jobs.learn.training import run
from jobs.runtime import stage as stage_runtime

ARGV_ENV = "HALO_TRAIN_ARGV"


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("train")
    if argv is None and ARGV_ENV in os.environ:  # a torchrun child: the arguments come by environment
        argv = json.loads(os.environ[ARGV_ENV])
    args = p.parse_args(argv)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _torchrun(args.nproc, sys.argv[1:] if argv is None else argv)
    return stage_runtime.main("train", run, args)


def _torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this stage under torchrun with `nproc` processes. The stage's own arguments
    travel in the environment: torchrun's parser would take `--run` for its `--run-path`."""
    env = {**os.environ, ARGV_ENV: json.dumps(argv)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "jobs.stages.train",
    ]
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
