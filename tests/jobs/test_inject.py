"""inject: the stage against lenstronomy itself, fluxes, controls, flags, runners, resuming."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from core.layout import coadd_cache_dir, stamps_dir
from core.stamps import decode, stamp_meta
from jobs.lensing.injection import InjectSettings, inject_batch
from jobs.lensing.params import supersample_for
from jobs.lensing.psf import moffat_kernel
from jobs.lensing.shapes import lenstronomy_e1e2
from jobs.stages import inject, manifest
from jobs.survey.coadd_reader import CoaddReader, cutout
from jobs.survey.layout import PIXSCALE, coadd_path


def _manifest(ws: Path) -> pa.Table:
    return pq.read_table(manifest.manifest_dir(ws, "v4_sota", "grid_sota") / "manifest.parquet")


def _stamps(folder: Path) -> tuple[dict, np.ndarray]:
    table = pq.read_table(sorted(folder.rglob("*.parquet"))).sort_by("task_id")
    return table.to_pydict(), decode(table.column("stamp"), stamp_meta(table.schema))


def _settings(ws: Path, **kw) -> InjectSettings:
    return InjectSettings(cache=str(coadd_cache_dir(ws)), **kw)


def _positives(ws: Path, n: int) -> list[dict]:
    rows = [r for r in _manifest(ws).to_pylist() if not r["is_control"]]
    return sorted(rows, key=lambda r: (-r["theta_e_arcsec"], r["task_id"]))[:n]


def _by_hand(row: dict, dx: float, dy: float, ss: int) -> np.ndarray:
    """The task's r-band arc written out in lenstronomy's own terms: a regular grid at `ss`
    over the whole stamp, the band's Moffat as a PIXEL PSF sampled at `ss` and convolved there
    whole (`supersampling_kernel_size`: lenstronomy's default core of 5 pixels is 2-4 % off)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    e1, e2 = lenstronomy_e1e2(row["lens_q"], row["lens_theta"])
    q_src = (1 - row["src_e"]) / (1 + row["src_e"])
    se1, se2 = lenstronomy_e1e2(q_src, row["src_phi"])
    kl = [
        {"theta_E": row["theta_e_arcsec"], "e1": e1, "e2": e2, "center_x": dx, "center_y": dy},
        {
            "gamma1": row["shear"] * np.cos(2 * row["shear_phi"]),
            "gamma2": row["shear"] * np.sin(2 * row["shear_phi"]),
            "ra_0": dx,
            "dec_0": dy,
        },
    ]
    ks = {
        "R_sersic": row["src_reff_arcsec"],
        "n_sersic": 1.0,
        "e1": se1,
        "e2": se2,
        "center_x": dx + row["src_x_arcsec"],
        "center_y": dy + row["src_y_arcsec"],
    }
    flux_r = row["flux_r"] * 10 ** (-0.4 * row["src_dmag"])  # the seed's grid: relative to the lens
    amp = flux_r / LightModel(["SERSIC_ELLIPSE"]).total_flux([{**ks, "amp": 1.0}])[0]
    data = ImageData(
        np.zeros((64, 64)),
        ra_at_xy_0=-32 * PIXSCALE,
        dec_at_xy_0=-32 * PIXSCALE,
        transform_pix2angle=np.eye(2) * PIXSCALE,
    )
    fwhm = round(row["psfsize_r"], 3)
    psf = PSF(
        "PIXEL",
        kernel_point_source=moffat_kernel(fwhm, 3.5, PIXSCALE, ss),
        point_source_supersampling_factor=ss,
    )
    model = ImageModel(
        data,
        psf,
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["SERSIC_ELLIPSE"]),
        kwargs_numerics={
            "supersampling_factor": ss,
            "supersampling_convolution": True,
            "supersampling_kernel_size": moffat_kernel(fwhm, 3.5, PIXSCALE).shape[0],
        },
    )
    return model.image(kl, [{**ks, "amp": amp}])


@pytest.mark.parametrize("engine", ["lenstronomy", "batched"])
def test_the_stages_arcs_equal_an_independent_lenstronomy_rendering(inject_ws: Path, engine: str) -> None:
    """Through inject_batch, float arcs and no noise, so that stamp − cutout is the arc: equal
    to lenstronomy's own rendering at the supersampling the stage chose, its PSF applied at
    that scale too, within 1 % of the peak in every pixel and 0.1 % in flux (the stage applies
    the PSF's core at 3 sub-pixels a side); the choice is the converged one (a 0.06″ source
    gets 18 sub-pixels a side)."""
    rows = _positives(inject_ws, 6)
    settings = _settings(inject_ws, arc_pixels="float", arc_noise=False, engine=engine)
    out = inject_batch(pa.Table.from_pylist(rows, schema=_manifest(inject_ws).schema), settings)
    table = pa.Table.from_batches([out])
    stamps = decode(table.column("stamp"), stamp_meta(table.schema))
    reader = CoaddReader(settings.cache, 64)
    for i, row in enumerate(rows):
        cut = reader.cutout(row["brickname"], row["ra"], row["dec"])
        ss = table.column("supersample")[i].as_py()
        assert ss == supersample_for(row["src_reff_arcsec"])
        expected = _by_hand(row, cut.dx, cut.dy, ss)
        arc = stamps[i, 1].astype(np.float64) - cut.stamp[1]
        assert np.abs(arc - expected).max() <= 0.01 * expected.max()
        assert table.column("mu")[i].as_py() == pytest.approx(
            expected.sum() / (row["flux_r"] * 10 ** (-0.4 * row["src_dmag"])), rel=1e-3
        )


def _fits_cutout(ws: Path, row: dict, band: str) -> np.ndarray:
    path = Path(str(coadd_cache_dir(ws))) / coadd_path(row["brickname"], "image", band)
    with fits.open(path) as hdus:
        wcs = WCS(hdus[1].header)
        x, y = wcs.all_world2pix(row["ra"], row["dec"], 0)
        x0, y0 = int(np.round(x)) - 32, int(np.round(y)) - 32
        return hdus[1].data[y0 : y0 + 64, x0 : x0 + 64]


def test_the_stage_writes_every_row_once_controls_bit_identical(inject_ws: Path) -> None:
    summary = inject.run(inject_ws, "v4_sota", grid="grid_sota", workers=2, rows_per_part=100)
    rows, stamps = _stamps(stamps_dir(inject_ws, "v4_sota", "grid_sota"))
    manifest_rows = _manifest(inject_ws)
    assert sorted(rows["task_id"]) == sorted(manifest_rows.column("task_id").to_pylist())
    n = manifest_rows.num_rows
    assert summary["rows"] == n and summary["ok"] == n and n > 100
    assert stamps.shape == (n, 3, 64, 64) and stamps.dtype == np.float32
    by_id = {r["task_id"]: r for r in manifest_rows.to_pylist()}
    controls = [i for i, c in enumerate(rows["is_control"]) if c][:5]
    positives = [i for i, c in enumerate(rows["is_control"]) if not c][:5]
    for i in controls:
        for b, band in enumerate("grz"):
            assert np.array_equal(stamps[i, b], _fits_cutout(inject_ws, by_id[rows["task_id"][i]], band))
        assert rows["arc_snr"][i] == 0 and rows["mu"][i] is None
    for i in positives:
        row = by_id[rows["task_id"][i]]
        cut = _fits_cutout(inject_ws, row, "r")
        assert (stamps[i, 1] - cut).sum() > 0 and rows["mu"][i] > 1 and rows["arc_snr"][i] > 0
        assert rows["src_mag_r"][i] == pytest.approx(22.5 - 2.5 * np.log10(row["flux_r"]) + row["src_dmag"])
        assert rows["theta_over_psf"][i] == pytest.approx(row["theta_e_arcsec"] / row["psfsize_r"])
        # the arc went in on the coadd's lattice with its photon noise: its flux within 2 %
        assert 10 ** (-0.4 * (rows["arc_mag_r"][i] - 22.5)) == pytest.approx(
            (stamps[i, 1] - cut).sum(), rel=0.02
        )


def test_edge_stamps_and_corrupt_coadds_are_flagged_while_the_rest_goes_on(
    inject_ws: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(str(coadd_cache_dir(inject_ws)), cache)
    full = _manifest(inject_ws)
    rows = []
    for brick in sorted(set(full.column("brickname").to_pylist())):
        rows += [r for r in full.to_pylist() if r["brickname"] == brick][:20]
    table = pa.Table.from_pylist(rows, schema=full.schema)
    bricks = sorted({r["brickname"] for r in rows})
    broken = bricks[0]
    (cache / coadd_path(broken, "image", "z")).write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    good = next(r for r in rows if r["brickname"] != broken)
    header = fits.getheader(cache / coadd_path(good["brickname"], "image", "r"), 1)
    edge_ra, edge_dec = WCS(header).all_pix2world(5.0, 200.0, 0)
    edge_row = {**good, "ra": float(edge_ra), "dec": float(edge_dec), "task_id": 10**6}
    batch = inject_batch(
        pa.Table.from_pylist([*rows, edge_row], schema=table.schema), InjectSettings(cache=str(cache))
    )
    out = batch.to_pydict()
    reasons = dict(zip(out["task_id"], out["fail_reason"], strict=True))
    assert out["ok"][-1] is False and reasons[10**6].startswith("edge:")
    for r in rows:
        if r["brickname"] == broken:
            assert reasons[r["task_id"]].endswith(")") and "unreadable FITS" in reasons[r["task_id"]]
            assert coadd_path(broken, "image", "z") in reasons[r["task_id"]]
        else:
            assert reasons[r["task_id"]] is None
    assert batch.num_rows == len(rows) + 1


def test_a_killed_run_resumes_without_duplicates(inject_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    argv = [
        sys.executable,
        "-m",
        "jobs.stages.inject",
        "--workspace",
        str(ws),
        "--variant",
        "v4_sota",
        "--workers",
        "1",
        "--rows-per-part",
        "40",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    staging = stamps_dir(ws, "v4_sota", "grid_sota").parent / ".grid_sota.staging"
    deadline = time.monotonic() + 120
    while len(list(staging.glob("part-*.parquet"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(staging.glob("part-*.parquet")))
    assert 2 <= written < 9  # 360 rows in 9 partitions: killed part-way
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{written} already written" in done.stdout or f"{written + 1} already written" in done.stdout
    rows, _ = _stamps(stamps_dir(ws, "v4_sota", "grid_sota"))
    assert sorted(rows["task_id"]) == sorted(_manifest(ws).column("task_id").to_pylist())


def _java() -> bool:
    return shutil.which("java") is not None


@pytest.mark.skipif(not _java(), reason="the Spark runner needs Java")
@pytest.mark.xdist_group("spark")  # one Spark session (a JVM) for every in-process Spark test
@pytest.mark.slow
def test_the_spark_runner_gives_the_local_runners_stamps(inject_ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from jobs.stages.inject import inject_spark

    manifest_path = manifest.manifest_dir(inject_ws, "v4_sota", "grid_sota") / "manifest.parquet"
    small = tmp_path / "manifest.parquet"
    pq.write_table(pq.read_table(manifest_path).slice(0, 80), small)
    settings = _settings(inject_ws)
    inject_spark(str(small), settings, str(tmp_path / "spark"), "zstd", partitions=2)
    spark_rows, spark_stamps = _stamps(tmp_path / "spark")
    local = inject_batch(pq.read_table(small), settings)
    local_table = pa.Table.from_batches([local]).sort_by("task_id")
    local_stamps = decode(local_table.column("stamp"), stamp_meta(local_table.schema))
    assert spark_rows["task_id"] == local_table.column("task_id").to_pylist()
    assert np.allclose(spark_stamps, local_stamps, rtol=1e-6, atol=1e-7)
    assert np.allclose(np.array(spark_rows["arc_snr"]), local_table.column("arc_snr").to_numpy(), rtol=1e-6)
    meta = stamp_meta(pq.read_schema(sorted((tmp_path / "spark").glob("*.parquet"))[0]))
    assert meta["shape"] == [3, 64, 64] and meta["dtype"] == "float32"


def test_coadds_and_inject_through_the_engine(inject_ws: Path, halo) -> None:
    shutil.copytree(inject_ws / "survey", halo.root / "survey")
    shutil.copytree(inject_ws / "data" / "parent", halo.root / "data" / "parent")
    shutil.copytree(inject_ws / "data" / "manifest", halo.root / "data" / "manifest")
    (halo.root / "halo.toml").write_text(
        (halo.root / "halo.toml").read_text() + "\n[grids.grid_sota]\nn_total_per_split = 120\n"
    )
    got = halo.json("stage", "coadds", "--variant", "v4_sota", "--wait")
    assert got["state"] == "succeeded" and got["summary"]["files_fetched"] == 18
    job = halo.json("stage", "inject", "--variant", "v4_sota", "--runner", "local", "--wait")
    assert job["state"] == "succeeded"
    assert job["outputs"] == [str(stamps_dir(halo.root, "v4_sota", "grid_sota"))]
    n = _manifest(halo.root).num_rows
    assert job["summary"]["rows"] == n
    summary = json.loads((stamps_dir(halo.root, "v4_sota", "grid_sota") / "summary.json").read_text())
    assert summary["rows"] == n


def test_cutout_flags_and_pads_off_the_edge() -> None:
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    inside, ok, x0, y0 = cutout(image, 50.4, 50.6, 64)
    assert ok and (x0, y0) == (18, 19) and np.array_equal(inside, image[19:83, 18:82])
    edge, ok, x0, y0 = cutout(image, 3.0, 50.0, 64)
    assert not ok and (x0, y0) == (-29, 18)
    assert np.all(edge[:, :29] == 0) and np.array_equal(edge[:, 29:], image[18:82, 0:35])
