"""A pixelised PSF per band (issue 24): an image or a PSFEx model read from FITS, its shape kept
and stretched to each galaxy's psfsize, sampled as the engines need; bad files named."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from core.config import ConfigError, load
from core.layout import coadd_cache_dir, manifest_dir
from jobs.lensing.injection import InjectSettings, inject_batch
from jobs.lensing.psf import measured_fwhm, pixelised_kernel, read_pixelised, supersampled
from jobs.runtime import stage as stage_runtime
from jobs.stages import inject
from jobs.survey.layout import PIXSCALE


def _moffat_image(fwhm: float, sampling: float, q: float = 1.0) -> np.ndarray:
    """A Moffat (β 3.5) sampled every `sampling` pixels, elongated along x by 1/q."""
    half = int(np.ceil(5 * fwhm / (sampling * PIXSCALE)))
    axis = np.arange(-half, half + 1) * sampling * PIXSCALE
    x, y = np.meshgrid(axis, axis)
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / 3.5) - 1))
    image = (1 + ((x * np.sqrt(q)) ** 2 + (y / np.sqrt(q)) ** 2) / alpha**2) ** -3.5
    return image / image.sum()


def _write_image(path: Path, image: np.ndarray, sampling: float) -> Path:
    hdu = fits.PrimaryHDU(image.astype(np.float32))
    hdu.header["PSF_SAMP"] = sampling
    hdu.writeto(path)
    return path


def _write_psfex(path: Path, image: np.ndarray, sampling: float) -> Path:
    """PSFEx's layout: one row, PSF_MASK a cube of polynomial basis images (here degree 1 in x
    and y: the constant term first)."""
    rng = np.random.default_rng(0)
    cube = np.stack([image, rng.normal(0, 1e-3, image.shape), rng.normal(0, 1e-3, image.shape)])
    column = fits.Column(name="PSF_MASK", format=f"{cube.size}E", dim=str(cube.shape[::-1]), array=cube[None])
    table = fits.BinTableHDU.from_columns([column], name="PSF_DATA")
    table.header.update({"PSF_SAMP": sampling, "POLNAXIS": 2, "POLDEG1": 1, "PSFNAXIS": 3})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def _write_merged(path: Path, image: np.ndarray, sampling: float) -> Path:
    """legacypipe's merged per-exposure PSFEx table: lower-case columns, a row per CCD, the
    sampling a column."""
    rng = np.random.default_rng(1)
    cubes = np.stack([np.stack([image, rng.normal(0, 1e-3, image.shape)]) for _ in range(3)])
    columns = [
        fits.Column(name="ccdname", format="3A", array=["N4", "S1", "S2"]),
        fits.Column(name="psf_mask", format=f"{cubes[0].size}E", dim=str(cubes.shape[:0:-1]), array=cubes),
        fits.Column(name="psf_samp", format="E", array=np.full(3, sampling)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)
    return path


def _embed(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = max(a.shape[0], b.shape[0])
    out = []
    for k in (a, b):
        big = np.zeros((n, n))
        pad = (n - k.shape[0]) // 2
        big[pad : pad + k.shape[0], pad : pad + k.shape[0]] = k
        out.append(big)
    return out[0], out[1]


@pytest.mark.parametrize("writer", [_write_image, _write_psfex, _write_merged])
def test_a_pixelised_moffat_gives_the_moffats_kernel(tmp_path: Path, writer) -> None:
    """A Moffat written at half-pixel sampling, read back (an image HDU or a PSFEx model) and
    sampled at 3 sub-pixels a side: the analytic kernel to 1 % of its peak, its FWHM kept."""
    path = writer(tmp_path / "psf.fits", _moffat_image(1.2, 0.5), 0.5)
    image, sampling = read_pixelised(str(path))
    assert sampling == 0.5 and image.sum() == pytest.approx(1.0)
    assert measured_fwhm(image, sampling, PIXSCALE) == pytest.approx(1.2, rel=0.02)
    got, want = _embed(
        pixelised_kernel(image, sampling, 1.2, PIXSCALE), supersampled("moffat", 1.2, PIXSCALE)
    )
    assert np.abs(got - want).max() < 0.01 * want.max()
    assert got.shape[0] % 3 == 0 and (got.shape[0] // 3) % 2 == 1  # whole pixels about the centre


def test_the_shape_is_stretched_to_the_galaxys_psf_width_and_its_asymmetry_kept(tmp_path: Path) -> None:
    path = _write_image(tmp_path / "psf.fits", _moffat_image(1.0, 0.5, q=0.7), 0.5)
    image, sampling = read_pixelised(str(path))
    wide = pixelised_kernel(image, sampling, 1.5, PIXSCALE)
    assert measured_fwhm(wide, 1 / 3, PIXSCALE) == pytest.approx(1.5, rel=0.03)
    y, x = np.indices(wide.shape) - wide.shape[0] // 2
    assert (wide * x**2).sum() > 1.5 * (wide * y**2).sum()  # still longer along x


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not a readable FITS file"),
        (b"junk" * 100, "not a readable FITS file"),
        (np.ones((4, 4)), "square with an odd side"),
        (np.full((5, 5), np.nan), "non-finite"),
    ],
)
def test_a_bad_psf_file_is_refused_naming_it(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.fits"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        fits.PrimaryHDU(content).writeto(path)
    with pytest.raises(ValueError, match=message):
        read_pixelised(str(path))


def test_the_pixel_model_needs_a_file_per_band(tmp_path: Path) -> None:
    (tmp_path / "halo.toml").write_text(
        "[variants.v4_sota.injection]\npsf_model = 'pixel'\n"
        "[variants.v4_sota.injection.psf_files]\ng = 'g.fits'\n"
    )
    with pytest.raises(ConfigError, match="psf_files.r"):
        load(tmp_path)


def test_inject_renders_with_the_files_psf_and_refuses_a_missing_file(
    inject_ws: Path, tmp_path: Path
) -> None:
    """Through inject_batch: a file holding the default Moffat's shape gives the Moffat's arcs
    (to 1 % of their peak); the stage refuses a missing file in one line naming it."""
    path = _write_image(tmp_path / "moffat.fits", _moffat_image(1.0, 0.5), 0.5)
    table = pq.read_table(manifest_dir(inject_ws, "v4_sota", "grid_sota") / "manifest.parquet")
    rows = sorted((r for r in table.to_pylist() if not r["is_control"]), key=lambda r: -r["theta_e_arcsec"])[
        :4
    ]
    common = {"cache": str(coadd_cache_dir(inject_ws)), "arc_noise": False, "arc_pixels": "float"}
    moffat = inject_batch(pa.Table.from_pylist(rows, schema=table.schema), InjectSettings(**common))
    pixel = inject_batch(
        pa.Table.from_pylist(rows, schema=table.schema),
        InjectSettings(**common, psf_model="pixel", psf_files=(str(path),) * 3),
    )
    from core.stamps import decode, stamp_meta
    from jobs.survey.coadd_reader import CoaddReader

    a, b = (decode(t.column("stamp"), stamp_meta(t.schema)).astype(float) for t in (moffat, pixel))
    reader = CoaddReader(common["cache"], 64)
    for i, row in enumerate(rows):
        arc = a[i] - reader.cutout(row["brickname"], row["ra"], row["dec"]).stamp
        assert np.abs(a[i] - b[i]).max() < 0.01 * arc.max()
    assert all(pixel.column("ok").to_pylist())
    ws = tmp_path / "ws"
    shutil.copytree(manifest_dir(inject_ws, "v4_sota", "grid_sota"), manifest_dir(ws, "v4_sota", "grid_sota"))
    (ws / "halo.toml").write_text(
        "[variants.v4_sota.injection]\npsf_model = 'pixel'\n"
        "[variants.v4_sota.injection.psf_files]\ng = 'psf/g.fits'\nr = 'psf/r.fits'\nz = 'psf/z.fits'\n"
    )
    with pytest.raises(stage_runtime.StageError) as err:
        inject.run(ws, "v4_sota", grid="grid_sota")
    assert str(err.value).startswith(f"PSF file {ws / 'psf/g.fits'}: not a readable FITS file")
    assert "\n" not in str(err.value)
