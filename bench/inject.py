"""End-to-end stamps/s of the inject stage (local runner, one process) as a ratio to the bare
lenstronomy image call on the same parameters, measured in the same run, at supersampling 1
and 3. Goal: at least 0.7 — the stage adds little beyond the physics.

Both sides render the same positives (every stamp needs an arc in g, r and z); the baseline
is three `ImageModel.image` calls a stamp on models built beforehand, kwargs prepared
beforehand: the physics alone. The stage's figure covers everything `jobs.inject.run` does:
reading the config, the manifest and the coadds, cutting stamps, rendering, statistics,
writing parquet. It is given twice: the first run in the process ("cold": it also pays the
imports and builds its lenstronomy models, a fixed cost that a survey-scale run amortises)
and a second run ("warm").

    python bench/inject.py [--rows 2000] [--bricks 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq


def prepare(root: Path, bricks: int, rows: int) -> Path:
    from jobs import coadds, manifest, mock_survey, select

    mock_survey.run(mock_survey.MockConfig(bricks=bricks, seed=2), root)
    (root / "halo.toml").write_text(f"[grids.grid_sota]\nn_total_per_split = {2 * rows // 3 + 2}\n")
    select.run(root, "v4_sota")
    manifest.run(root, "v4_sota", "grid_sota")
    coadds.run(root, "v4_sota", "grid_sota")
    path = manifest.manifest_dir(root, "v4_sota", "grid_sota") / "manifest.parquet"
    table = pq.read_table(path)
    positives = table.filter(pc.invert(table.column("is_control"))).slice(0, rows)
    pq.write_table(positives, path)
    return path


def bare_rate(rows: list[dict], supersample: int) -> float:
    """Stamps/s of three prebuilt `ImageModel.image` calls per stamp."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    from jobs.inject import ArcRenderer, InjectSettings
    from jobs.survey_layout import PIXSCALE

    lens, light = LensModel(["SIE", "SHEAR"]), LightModel(["SERSIC_ELLIPSE"])
    data = ImageData(
        np.zeros((64, 64)),
        ra_at_xy_0=-32 * PIXSCALE,
        dec_at_xy_0=-32 * PIXSCALE,
        transform_pix2angle=np.eye(2) * PIXSCALE,
    )
    models = {}
    calls = []
    kwargs_of = ArcRenderer(InjectSettings(cache="")).kwargs
    for row in rows:
        kwargs = kwargs_of(row, 0.0, 0.0)
        for band in "grz":
            fwhm = round(row[f"psfsize_{band}"], 3)
            if fwhm not in models:
                models[fwhm] = ImageModel(
                    data,
                    PSF("GAUSSIAN", fwhm=fwhm, pixel_size=PIXSCALE),
                    lens_model_class=lens,
                    source_model_class=light,
                    kwargs_numerics={"supersampling_factor": supersample},
                )
            calls.append((models[fwhm], kwargs))
    start = time.perf_counter()
    for model, (kl, ks) in calls:
        model.image(kl, ks)
    return len(rows) / (time.perf_counter() - start)


def stage_rate(root: Path, n: int, supersample: int) -> float:
    from jobs import inject

    start = time.perf_counter()
    summary = inject.run(root, "v4_sota", "grid_sota", workers=1, supersample=supersample, force=True)
    elapsed = time.perf_counter() - start
    assert summary["rows"] == n and summary["flagged"] == 0, summary
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--bricks", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="halo-bench-inject-"))
    try:
        path = prepare(root, args.bricks, args.rows)
        rows = pq.read_table(path).to_pylist()
        print(f"{len(rows)} positive stamps (64x64, g r z), Gaussian PSF, one process")
        for ss in (1, 3):
            bare = bare_rate(rows, ss)
            cold = stage_rate(root, len(rows), ss)
            warm = stage_rate(root, len(rows), ss)
            print(
                f"supersampling {ss}: bare lenstronomy {bare:7.1f} stamps/s | inject stage cold {cold:7.1f} "
                f"(ratio {cold / bare:.2f}), warm {warm:7.1f} stamps/s (ratio {warm / bare:.2f}; goal >= 0.7)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
