"""Arc rendering in stamps/s per core: both engines against lenstronomy's own adaptive mode
on the same tasks, the same fine square and the same supersampling, measured in the same run.

The fair baseline is what a user of lenstronomy would pick for the same arcs: `ImageModel`
with `compute_mode="adaptive"` (ss × ss sub-pixels only inside the square where the images
fall, given as `supersampled_indexes`) and the PSF applied at the supersampled scale over the
same core as the engines' (`supersampling_convolution`, `supersampling_kernel_size`), one call
per band, the models' construction not timed. Also shown: the same with the PSF at the pixel
scale (`supersampling_convolution=False`, the engines' numerics before issue 24: faster, up
to 6 % of the peak off). The engines' first pass (the batched engine's torch.compile, done
only for a call of COMPILE_MIN_TASKS arcs or more; its graphs are cached on disk, so a second
process's first pass is shorter) is reported apart from the warm rate.

Tasks: grid_sota's configurations with geometry drawn as the manifest draws it, 64x64, g r z, a
Moffat per band of FWHM 1.0–1.6″; `--source structured` gives each a bulge and clumps
(jobs/lensing/sources.py). With `--stage`, the whole inject stage (cutouts, engine, noise,
lattice, parquet, audit) on a mock survey, one process, for each engine.

    python bench/inject.py [--tasks 200] [--baseline-tasks 24] [--device cpu|cuda]
        [--source sersic|structured] [--stage]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from jobs.lensing import sources
from jobs.lensing.convolution import core_half
from jobs.lensing.engines import LenstronomyEngine, engine
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.psf import RADIUS_FWHM, bin_pixels, supersampled
from jobs.lensing.psf import kernel as kernel_at
from jobs.lensing.reference import image_data
from jobs.survey.layout import PIXSCALE

SIZE = 64


def tasks(n: int, source: str, seed: int = 1) -> tuple[ArcParams, np.ndarray, list, np.ndarray]:
    """The tasks' parameters, fluxes (n, components, bands), kernels and FWHMs (n, bands)."""
    from core.config import SourceModel, load
    from jobs.stages.manifest import example_tasks, grid_configs

    configs = np.array(grid_configs(load(Path("/nonexistent")).grids["grid_sota"]), dtype=float)
    rng = np.random.default_rng(seed)
    columns = example_tasks(configs[rng.integers(0, len(configs), n)], seed)
    spec = SourceModel(mode="population", morphology="structured" if source == "structured" else "sersic")
    columns.update(sources.draw(spec, np.full(n, 10.0), np.zeros(n), rng, columns))
    params = ArcParams.from_tasks(columns, columns["dx"], columns["dy"])
    fwhm = np.round(rng.uniform(1.0, 1.6, (n, 3)), 2)
    cache: dict[float, np.ndarray] = {}
    kernels = [tuple(cache.setdefault(f, supersampled("moffat", f, PIXSCALE)) for f in row) for row in fwhm]
    return params, sources.fluxes(columns), kernels, fwhm


def adaptive_rate(
    params: ArcParams, fluxes: np.ndarray, fwhm: np.ndarray, ss: np.ndarray, half: np.ndarray, sharp: bool
) -> float:
    """Stamps/s of lenstronomy's adaptive `ImageModel.image`, one call per band (module doc)."""
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    from jobs.lensing.params import fine_mask

    lens, light = LensModel(["SIE", "SHEAR"]), LightModel(["SERSIC_ELLIPSE"] * params.components)
    data = image_data(SIZE)
    models: dict[tuple, object] = {}
    seconds = 0.0
    for i in range(len(params)):
        kl, ks = params.lenstronomy_kwargs(i)
        for b in range(3):
            key = (float(fwhm[i, b]), int(ss[i]), int(half[i]))
            if key not in models:
                if sharp:
                    models.clear()  # a kernel at ss is large: one model at a time
                factor = key[1] if sharp else 1
                pixels = int(np.ceil(RADIUS_FWHM["moffat"] * key[0] / PIXSCALE))
                # sampled at ss over whole pixels, as lenstronomy's kernel degrading expects
                kernel = kernel_at(
                    "moffat", key[0], PIXSCALE, 3.5, factor, half=factor * pixels + (factor - 1) // 2
                )
                numerics = {
                    "supersampling_factor": key[1],
                    "compute_mode": "adaptive",
                    "supersampled_indexes": fine_mask(SIZE, key[2]),
                    "supersampling_convolution": sharp,
                }
                if sharp:  # the engines' core: where the PSF exceeds 0.5 % of its peak
                    pixel = bin_pixels(supersampled("moffat", key[0], PIXSCALE), 3)
                    numerics["supersampling_kernel_size"] = 2 * core_half(pixel) + 1
                models[key] = ImageModel(
                    data,
                    PSF("PIXEL", kernel_point_source=kernel, point_source_supersampling_factor=factor),
                    lens_model_class=lens,
                    source_model_class=light,
                    kwargs_numerics=numerics,
                )
            band = [{**kw, "amp": kw["amp"] * fluxes[i, c, b]} for c, kw in enumerate(ks)]
            start = time.perf_counter()
            models[key].image(kl, band)
            seconds += time.perf_counter() - start
    return len(params) / seconds


def engine_rate(renderer: object, params: ArcParams, fluxes, kernels, ss, half, repeat: int = 1) -> float:
    """Warm stamps/s of an engine (a first pass over the same tasks beforehand, not timed: the
    batched engine compiles there)."""
    renderer.arcs(params, fluxes, kernels, ss, half)
    start = time.perf_counter()
    for _ in range(repeat):
        renderer.arcs(params, fluxes, kernels, ss, half)
    return repeat * len(params) / (time.perf_counter() - start)


FIRST_PASS = """
import sys, time
sys.argv = ["bench"]
start = time.perf_counter()
from bench_inject import tasks, engine, fine_half_width, SIZE
params, fluxes, kernels, _ = tasks({n}, "{source}")
renderer = engine("batched", SIZE, "{device}")
renderer.arcs(params, fluxes, kernels, params.supersample(), fine_half_width(params, SIZE))
print(time.perf_counter() - start)
"""


def first_passes(source: str, device: str, n: int) -> tuple[float, float]:
    """Seconds of a new process's first `n` arcs with the batched engine (imports included):
    with an empty torch.compile cache, then with the cache the first left (as a stage's second
    run finds it)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    cache = tempfile.mkdtemp(prefix="halo-bench-inductor-")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(Path(__file__).parent)}
    code = FIRST_PASS.replace("bench_inject", "inject").format(source=source, device=device, n=n)
    try:
        out = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(done.stdout.strip().splitlines()[-1]))
        return out[0], out[1]
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def stage_rates(rows: int) -> None:
    import shutil
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from jobs.mock import survey as mock_survey
    from jobs.stages import coadds, inject, manifest, select

    root = Path(tempfile.mkdtemp(prefix="halo-bench-inject-"))
    try:
        mock_survey.run(mock_survey.MockConfig(bricks=4, seed=2), root)
        (root / "halo.toml").write_text(f"[grids.grid_sota]\nn_total_per_split = {2 * rows // 3 + 2}\n")
        select.run(root, "v4_sota")
        manifest.run(root, "v4_sota", grid="grid_sota")
        coadds.run(root, "v4_sota", grid="grid_sota")
        path = manifest.manifest_dir(root, "v4_sota", "grid_sota") / "manifest.parquet"
        table = pq.read_table(path)
        pq.write_table(table.filter(pc.invert(table.column("is_control"))).slice(0, rows), path)
        n = pq.read_metadata(path).num_rows
        for engine in ("lenstronomy", "batched"):
            start = time.perf_counter()
            summary = inject.run(root, "v4_sota", grid="grid_sota", workers=1, force=True, engine=engine)
            elapsed = time.perf_counter() - start
            print(
                f"inject stage, engine {engine}: {n / elapsed:7.1f} stamps/s ({summary['flagged']} flagged)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--source", choices=("sersic", "structured"), default="sersic")
    parser.add_argument("--baseline-tasks", type=int, default=24, help="tasks the PSF-at-ss baseline renders")
    parser.add_argument("--stage", action="store_true", help="also time the whole stage on a mock survey")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per core
    params, fluxes, kernels, fwhm = tasks(args.tasks, args.source)
    gpu = f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""
    print(
        f"{args.tasks} grid_sota arcs, {args.source} sources ({params.components} components at most), "
        f"64x64, g r z, Moffat PSFs; one core (torch threads 1), device {args.device}{gpu}, "
        f"cpu count {os.cpu_count()}"
    )
    half = fine_half_width(params, SIZE)
    repeat = 20 if args.device == "cuda" else 1
    for label, ss in (("3", np.full(len(params), 3)), ("default (per task)", params.supersample())):
        pixel = adaptive_rate(params, fluxes, fwhm, ss, half, sharp=False)
        few = slice(0, args.baseline_tasks)  # lenstronomy at ss with a kernel at ss: seconds a stamp
        fair = adaptive_rate(params.take(few), fluxes[few], fwhm[few], ss[few], half[few], sharp=True)
        lens = engine_rate(LenstronomyEngine(SIZE), params, fluxes, kernels, ss, half)
        batched = engine_rate(engine("batched", SIZE, args.device), params, fluxes, kernels, ss, half, repeat)
        print(
            f"supersampling {label} (median {int(np.median(ss))}): lenstronomy adaptive, PSF at ss "
            f"{fair:8.1f} stamps/s | PSF at the pixel scale {pixel:8.1f} ({pixel / fair:.2f}x) | "
            f"lenstronomy engine {lens:8.1f} ({lens / fair:.2f}x) | "
            f"batched {args.device} {batched:9.1f} ({batched / fair:.2f}x)"
        )
    from jobs.lensing.batched import COMPILE_MIN_TASKS

    for n in (16, COMPILE_MIN_TASKS):
        cold, cached = first_passes(args.source, args.device, n)
        how = "compiled" if n >= COMPILE_MIN_TASKS else "eager: too few to repay compiling"
        print(
            f"batched engine's first {n} arcs in a new process ({how}): {cold:.1f} s with an empty "
            f"torch.compile cache, {cached:.1f} s with the cache the first run left"
        )
    if args.stage:
        stage_rates(min(args.tasks, 600))


if __name__ == "__main__":
    main()
