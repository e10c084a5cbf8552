"""Arc rendering in stamps/s per core: the bare lenstronomy call, the stage's lenstronomy
engine and its batched caustics engine (PyTorch), measured in the same run on the same tasks,
as ratios to the bare call. Goal: batched on the CPU >= 3x the bare call at supersampling 3;
on a GPU (`--device cuda`) >= 100,000 stamps/s.

Tasks: grid_sota's configurations with drawn geometry (as the manifest draws them), 64x64,
g r z, a Moffat per band. The bare call is what a script without the engines would do: one
`ImageModel.image` per band on models built beforehand, supersampled over the whole stamp.
The engines render the same arcs (to 1e-3 of the peak, tests/jobs/test_lensing.py), each
pixel's sub-pixels inside the square where the source's images fall, pixel centres outside.
Rows: supersampling 3 for all (the issue's comparison); the same with the engines sampling
the whole stamp at 3, as the bare call does (the engines' own speed, without the fine square's
saving); and the default (per task from the source's size, 6-18 for grid_sota), where the bare
call is given the same per-task factor.
With `--stage`, the whole inject stage (cutouts, engine, noise, lattice, parquet, audit) on a
mock survey, one process, for each engine.

    python bench/inject.py [--tasks 400] [--device cpu|cuda] [--stage]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from jobs.lensing import ArcParams, LenstronomyEngine, engine, fine_half_width, supersample_for
from jobs.psf import moffat_kernel
from jobs.survey_layout import PIXSCALE

SIZE = 64


def tasks(n: int, seed: int = 1) -> tuple[ArcParams, np.ndarray, list[tuple[np.ndarray, ...]]]:
    from core.config import load
    from jobs.manifest import example_tasks, grid_configs

    configs = np.array(grid_configs(load(Path("/nonexistent")).grids["grid_sota"]), dtype=float)
    rng = np.random.default_rng(seed)
    columns = example_tasks(configs[rng.integers(0, len(configs), n)], seed)
    params = ArcParams.from_tasks(columns, columns["dx"], columns["dy"])
    fluxes = 10 ** (-0.4 * (rng.uniform(20.5, 23.0, (n, 3)) - 22.5))
    fwhm = np.round(rng.uniform(1.0, 1.6, (n, 3)), 2)
    cache: dict[float, np.ndarray] = {}
    kernels = [tuple(cache.setdefault(f, moffat_kernel(f, 3.5, PIXSCALE)) for f in row) for row in fwhm]
    return params, fluxes, kernels


def bare_rate(params: ArcParams, kernels: list, supersample: np.ndarray) -> float:
    """Stamps/s of three prebuilt `ImageModel.image` calls a stamp (one per band)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    lens, light = LensModel(["SIE", "SHEAR"]), LightModel(["SERSIC_ELLIPSE"])
    data = ImageData(
        np.zeros((SIZE, SIZE)),
        ra_at_xy_0=-(SIZE // 2) * PIXSCALE,
        dec_at_xy_0=-(SIZE // 2) * PIXSCALE,
        transform_pix2angle=np.eye(2) * PIXSCALE,
    )
    models: dict[tuple[int, int], object] = {}
    calls = []
    for i in range(len(params)):
        kwargs = params.lenstronomy_kwargs(i, amp=1.0)
        for kernel in kernels[i]:
            key = (id(kernel), int(supersample[i]))
            if key not in models:
                models[key] = ImageModel(
                    data,
                    PSF("PIXEL", kernel_point_source=kernel),
                    lens_model_class=lens,
                    source_model_class=light,
                    kwargs_numerics={"supersampling_factor": key[1], "supersampling_convolution": False},
                )
            calls.append((models[key], kwargs))
    start = time.perf_counter()
    for model, (kl, ks) in calls:
        model.image(kl, ks)
    return len(params) / (time.perf_counter() - start)


def engine_rate(
    renderer: object, params: ArcParams, fluxes, kernels, supersample, repeat: int = 1, half=None
) -> float:
    """Arcs/s of an engine; `half` None: each task's fine square (the stage's), else forced."""
    half = fine_half_width(params, SIZE) if half is None else half
    start = time.perf_counter()
    renderer.arcs(params, fluxes, kernels, supersample, half)  # warm: models built, torch.compile done
    print(f"  ({type(renderer).__name__}: first pass {time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    for _ in range(repeat):
        renderer.arcs(params, fluxes, kernels, supersample, half)
    return repeat * len(params) / (time.perf_counter() - start)


def stage_rates(rows: int) -> None:
    import shutil
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from jobs import coadds, inject, manifest, mock_survey, select

    root = Path(tempfile.mkdtemp(prefix="halo-bench-inject-"))
    try:
        mock_survey.run(mock_survey.MockConfig(bricks=4, seed=2), root)
        (root / "halo.toml").write_text(f"[grids.grid_sota]\nn_total_per_split = {2 * rows // 3 + 2}\n")
        select.run(root, "v4_sota")
        manifest.run(root, "v4_sota", "grid_sota")
        coadds.run(root, "v4_sota", "grid_sota")
        path = manifest.manifest_dir(root, "v4_sota", "grid_sota") / "manifest.parquet"
        table = pq.read_table(path)
        pq.write_table(table.filter(pc.invert(table.column("is_control"))).slice(0, rows), path)
        n = pq.read_metadata(path).num_rows
        for engine in ("lenstronomy", "batched"):
            start = time.perf_counter()
            summary = inject.run(root, "v4_sota", "grid_sota", workers=1, force=True, engine=engine)
            elapsed = time.perf_counter() - start
            print(
                f"inject stage, engine {engine}: {n / elapsed:7.1f} stamps/s ({summary['flagged']} flagged)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--stage", action="store_true", help="also time the whole stage on a mock survey")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per core
    params, fluxes, kernels = tasks(args.tasks)
    print(
        f"{args.tasks} grid_sota arcs (64x64, g r z, Moffat PSFs), one core (torch threads 1), "
        f"device {args.device}{' (' + torch.cuda.get_device_name() + ')' if args.device == 'cuda' else ''}, "
        f"cpu count {os.cpu_count()}"
    )
    auto = supersample_for(params.src_reff)
    three = np.full(len(params), 3)
    whole = np.full(len(params), SIZE // 2)
    repeat = 20 if args.device == "cuda" else 1
    for label, supersample, half in (
        ("3", three, None),
        ("3, whole stamp", three, whole),
        ("default (per task)", auto, None),
    ):
        bare = bare_rate(params, kernels, supersample)
        lens = engine_rate(LenstronomyEngine(SIZE), params, fluxes, kernels, supersample, half=half)
        batched = engine_rate(
            engine("batched", SIZE, args.device), params, fluxes, kernels, supersample, repeat, half=half
        )
        print(
            f"supersampling {label}: bare lenstronomy {bare:8.1f} stamps/s | lenstronomy engine {lens:8.1f} "
            f"({lens / bare:.2f}x) | batched {args.device} {batched:10.1f} ({batched / bare:.2f}x)"
        )
    if args.stage:
        stage_rates(min(args.tasks, 600))


if __name__ == "__main__":
    main()
