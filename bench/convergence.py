"""The convergence table of issue 12: each shipped grid's configurations (geometry drawn as
the manifest draws it), rendered at supersampling 1 (the seed's default), 3, and the default
(per task from the source's size), against a 10x reference over the whole stamp: the range of
the μ ratio, the share of arcs whose flux is off by more than 10 % and by more than 1 %, and
the range of the arc_mag_r error.

    python bench/convergence.py [--per-config 1]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from jobs.lensing.engines import LenstronomyEngine
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.reference import image_data

SIZE = 64


def grid_tasks(grid: str, per_config: int, seed: int = 3) -> dict[str, np.ndarray]:
    from core.config import load
    from jobs.stages.manifest import example_tasks, grid_configs

    configs = np.array(grid_configs(load(Path("/nonexistent")).grids[grid]), float)
    return example_tasks(np.repeat(configs, per_config, axis=0), seed)


def _regular(params: ArcParams, i: int, supersample: int) -> float:
    """μ of lenstronomy's own regular grid at `supersample` over the whole stamp, no PSF."""
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    data = image_data(SIZE)
    model = ImageModel(
        data,
        PSF("NONE"),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["SERSIC_ELLIPSE"] * params.components),
        kwargs_numerics={"supersampling_factor": supersample},
    )
    return float(model.image(*params.lenstronomy_kwargs(i)).sum())


def magnifications(tasks: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 4): μ at supersampling 1, 3, the engines' default, and the 10x whole-stamp reference."""
    params = ArcParams.from_tasks(tasks, tasks["dx"], tasks["dy"])
    engine = LenstronomyEngine(SIZE)
    auto, half = params.supersample(), fine_half_width(params, SIZE)
    out = np.empty((len(params), 4))
    for i in range(len(params)):
        out[i] = [
            _regular(params, i, 1),
            engine.lensed(params, i, 3, int(half[i])).sum(),
            engine.lensed(params, i, int(auto[i]), int(half[i])).sum(),
            _regular(params, i, 10),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-config", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print("| grid | supersampling | μ ratio (setting / 10x) | arcs off by > 10 % | > 1 % | arc_mag_r error |")
    print("| --- | --- | --- | --- | --- | --- |")
    for grid in ("grid_small", "grid_sota"):
        tasks = grid_tasks(grid, args.per_config)
        chunks = np.array_split(np.arange(len(tasks["theta_e_arcsec"])), 4 * args.workers)
        with ProcessPoolExecutor(args.workers) as pool:
            mu = np.concatenate(
                list(pool.map(magnifications, [{k: v[c] for k, v in tasks.items()} for c in chunks]))
            )
        smallest = tasks["src_reff_arcsec"] == tasks["src_reff_arcsec"].min()
        for subset, name in ((slice(None), "all"), (smallest, f"R_eff {tasks['src_reff_arcsec'].min():g}″")):
            for column, label in ((0, "1 (the seed's default)"), (1, "3"), (2, "default: per task")):
                ratio = mu[subset, column] / mu[subset, 3]
                dmag = -2.5 * np.log10(ratio)
                print(
                    f"| {grid}, {name} ({len(ratio)} arcs) | {label} | {ratio.min():.3f}–{ratio.max():.3f} | "
                    f"{np.mean(np.abs(ratio - 1) > 0.10):.0%} | {np.mean(np.abs(ratio - 1) > 0.01):.0%} | "
                    f"{dmag.min():+.3f} to {dmag.max():+.3f} mag |"
                )


if __name__ == "__main__":
    main()
