"""The demo: the pipeline `halo demo` runs on the embedded mini-DR10 survey (each step a stage
launched as an engine job, in order), the survey's size, and the workspace settings it starts
with. The console's CLI runs it (halo_tui/cli/demo.py); the options themselves are the stages'
own, declared in core/stages.py."""

from __future__ import annotations

from typing import Any

# 32 bricks with 85 LRGs each: ~340 independent control galaxies in the test split, so that
# tpr@fpr1e-2 is measurable (it needs 100) with an interval worth printing
SURVEY = {"bricks": 32, "lrgs_per_brick": 85}
VARIANT, GRID, PRESET, RUN = "v4_sota", "grid_sota", "demo_cpu", "demo"
STEPS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("demo", None, SURVEY),
    ("select", VARIANT, {}),
    ("manifest", VARIANT, {"grid": GRID}),
    ("coadds", VARIANT, {"grid": GRID}),
    ("inject", VARIANT, {"grid": GRID}),
    ("train", VARIANT, {"grid": GRID, "preset": PRESET, "run": RUN}),
    ("eval", VARIANT, {"grid": GRID, "run": RUN}),
    ("score", VARIANT, {"grid": GRID, "run": RUN}),
)


# The grids the demo workspace sizes for its survey: the seed's, and the source models that
# bench/source_models.py compares (structured, larger, drawn from a population).
GRIDS = (
    "grid_sota",
    "grid_small",
    "structured_sota",
    "sersic_sized",
    "structured_sized",
    "population_dr10",
    "structured_dr10",
)
WORKSPACE_TOML = """\
# Dark Halo Scope demo workspace. Anything here overrides or adds to the shipped config
# (`halo config show` lists it all). The demo keeps the shipped grids but draws fewer tasks,
# so that the whole pipeline runs in minutes on a laptop.
""" + "".join(f"\n[grids.{name}]\nn_total_per_split = 2000\n" for name in GRIDS)
