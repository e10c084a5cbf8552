"""The demo stage: the embedded mini-DR10 survey (jobs/mock/survey.py) written into the
workspace, launched through the engine like any stage (`halo demo`, `halo stage demo`).

    python -m jobs.stages.demo --workspace DIR [--bricks N] [--seed S] [--brick-px PX]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.mock.survey import MockConfig
from jobs.mock.survey import run as write_survey
from jobs.runtime import stage as stage_runtime

_DEFAULT = MockConfig()


def run(
    workspace: Path,
    *,
    bricks: int = _DEFAULT.bricks,
    seed: int = _DEFAULT.seed,
    brick_px: int = _DEFAULT.brick_px,
    no_images: bool = False,
    lrgs_per_brick: int = _DEFAULT.lrgs_per_brick,
    force: bool = False,
) -> dict[str, Any]:
    """Write the mock survey of `bricks` bricks into the workspace (`no_images`: catalogues only)."""
    cfg = MockConfig(
        bricks=bricks, seed=seed, brick_px=brick_px, images=not no_images, lrgs_per_brick=lrgs_per_brick
    )
    return write_survey(cfg, workspace, force)


main = stage_runtime.entry("demo", run)

if __name__ == "__main__":
    raise SystemExit(main())
