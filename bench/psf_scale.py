"""The pixel-shape table of issue 24: every configuration of each shipped grid (geometry drawn as
the manifest draws it, a PSF FWHM drawn in DR10's range 0.9–1.7″ per arc), the arc convolved at
the pixel scale (before) and by the engines' two-scale convolution (after, at the supersampled
scale where the arc is), each against lenstronomy's own 10× rendering with its PSF applied at
10× over the whole kernel (jobs/lensing/reference.py): max |Δ| / peak per arc (median, 95th
percentile, worst), by grid and by PSF width; then after's worst against the converged
reference (30× for each arc more than 0.5 % off 10×: 10× is not converged for the smallest
sources) and the flux ratio to it.

    python bench/psf_scale.py [--workers 2] [--grids grid_small,grid_sota]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from jobs.lensing.engines import LenstronomyEngine
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.psf import bin_pixels, supersampled
from jobs.lensing.reference import rendered
from jobs.survey.layout import PIXSCALE

SIZE = 64
RECHECK = 0.005  # above this off 10x, the arc is checked against 30x too


def measure(args: tuple[dict, np.ndarray]) -> np.ndarray:
    """(n, 4): max |Δ| / peak before and after against 10×, after against the converged
    reference (30× where after is more than RECHECK off 10×: a 0.06″ source has 2.3 samples
    per R_eff at 10×, and 10× itself is then up to 1.3 % of the peak off 30×), and the flux
    ratio after / converged."""
    from scipy.signal import fftconvolve

    tasks, fwhm = args
    params = ArcParams.from_tasks(tasks, tasks["dx"], tasks["dy"])
    engine = LenstronomyEngine(SIZE)
    ss, half = params.supersample(), fine_half_width(params, SIZE)
    out = np.empty((len(params), 4))
    for i in range(len(params)):
        kernel = supersampled("moffat", fwhm[i], PIXSCALE)
        ref = rendered(params, i, fwhm[i])
        one = params.take(slice(i, i + 1))
        after = engine.arcs(one, np.ones((1, 1, 1)), [(kernel,)], ss[i : i + 1], half[i : i + 1])[0, 0]
        before = fftconvolve(
            engine.lensed(params, i, int(ss[i]), int(half[i])), bin_pixels(kernel, 3), mode="same"
        )
        peak = ref.max()
        off = np.abs(after - ref).max() / peak
        converged = ref if off <= RECHECK else rendered(params, i, fwhm[i], factor=30)
        out[i] = (
            np.abs(before - ref).max() / peak,
            off,
            np.abs(after - converged).max() / converged.max(),
            after.sum() / converged.sum(),
        )
    return out


def _row(label: str, values: np.ndarray) -> str:
    def q(v: np.ndarray) -> str:
        return f"{np.median(v):.2%} / {np.percentile(v, 95):.2%} / {v.max():.2%}"

    flux = values[:, 3]
    return (
        f"| {label} | {len(values)} | {q(values[:, 0])} | {q(values[:, 1])} | {values[:, 2].max():.2%} | "
        f"{flux.min():.4f}–{flux.max():.4f} |"
    )


def main() -> None:
    from core.config import load
    from jobs.stages.manifest import example_tasks, grid_configs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grids", default="grid_small,grid_sota")
    args = parser.parse_args()
    start = time.perf_counter()
    print(
        "| grid, PSF FWHM | arcs | before: max |Δ| / peak vs 10× (median / 95 % / worst) | after | "
        "after, worst vs converged | flux / converged |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for grid in args.grids.split(","):
        configs = np.array(grid_configs(load(Path("/nonexistent")).grids[grid]), float)
        tasks = example_tasks(configs, seed=24)
        fwhm = np.random.default_rng(24).uniform(0.9, 1.7, len(configs))
        chunks = np.array_split(np.arange(len(configs)), 8 * args.workers)
        with ProcessPoolExecutor(args.workers) as pool:
            values = np.concatenate(
                list(pool.map(measure, [({k: v[c] for k, v in tasks.items()}, fwhm[c]) for c in chunks]))
            )
        print(_row(f"{grid}, all", values))
        for low, high in ((0.9, 1.1), (1.1, 1.3), (1.3, 1.5), (1.5, 1.7)):
            chosen = (fwhm >= low) & (fwhm < high)
            print(_row(f"{grid}, {low:.1f}–{high:.1f}″", values[chosen]))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
