"""The mock survey has DR10's files, columns, units and WCS, and images that agree with them."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from core.schemas import TRACTOR_COLUMNS, TRACTOR_TYPES, depth_to_mag5
from jobs.lensing.psf import moffat_kernel, noise_equivalent_area
from jobs.mock.survey import GRADES, MockConfig, choose_bricks, run, write_brick
from jobs.survey.layout import BANDS, PIXSCALE, brick_at, coadd_path, tractor_path


def _bricks(ws: Path) -> list[str]:
    return sorted(
        p.name.removeprefix("tractor-").removesuffix(".fits") for p in (ws / "survey/tractor").rglob("*.fits")
    )


def test_catalogue_columns_types_and_units_are_dr10s(mock_ws: Path) -> None:
    bricks = _bricks(mock_ws)
    assert len(bricks) == 3
    for brick in bricks:
        with fits.open(mock_ws / "survey" / tractor_path(brick)) as hdus:
            table = hdus[1]
            names = [c.name for c in table.columns]
            assert names == [name for name, _, _ in TRACTOR_COLUMNS]
            tform = {
                "int16": "I",
                "int32": "J",
                "float32": "E",
                "float64": "D",
                "bool": "L",
                "U8": "8A",
                "U3": "3A",
            }
            for i, (name, dtype, unit) in enumerate(TRACTOR_COLUMNS, start=1):
                assert table.header[f"TFORM{i}"] == tform[dtype], name
                assert table.header.get(f"TUNIT{i}", "") == unit, name
            data = table.data
            assert set(np.char.strip(data["type"].astype(str))) <= set(TRACTOR_TYPES)
            assert set(data["brickname"].astype(str)) == {brick}
            assert len(set(data["objid"])) == len(data)
            assert brick_at(float(np.median(data["ra"])), float(np.median(data["dec"]))).name == brick
            lrg_like = data["type"].astype(str) == "DEV"
            assert np.all(data["shape_r"][lrg_like] > 0)
            assert np.all(data["type"].astype(str)[data["shape_r"] == 0] == "PSF")


def test_images_are_compressed_with_a_valid_tan_wcs(mock_ws: Path) -> None:
    for brick in _bricks(mock_ws):
        cat = fits.getdata(mock_ws / "survey" / tractor_path(brick), 1)
        centre = brick_at(float(np.median(cat["ra"])), float(np.median(cat["dec"])))
        for band in BANDS:
            for kind in ("image", "invvar"):
                with fits.open(mock_ws / "survey" / coadd_path(brick, kind, band)) as hdus:
                    assert isinstance(hdus[1], fits.CompImageHDU)
                    wcs = WCS(hdus[1].header)
                    shape = hdus[1].data.shape
            assert wcs.wcs.ctype[0] == "RA---TAN" and wcs.wcs.ctype[1] == "DEC--TAN"
            assert np.allclose(proj_plane_pixel_scales(wcs) * 3600, PIXSCALE)
            ra_c, dec_c = wcs.all_pix2world((shape[1] - 1) / 2, (shape[0] - 1) / 2, 0)
            assert abs(ra_c - centre.ra) < 1e-9 and abs(dec_c - centre.dec) < 1e-9
            x, y = wcs.all_world2pix(cat["ra"], cat["dec"], 0)
            assert np.allclose(x, cat["bx"], atol=1e-3) and np.allclose(y, cat["by"], atol=1e-3)


def test_pixel_noise_matches_invvar(tmp_path: Path) -> None:
    cfg = MockConfig(
        bricks=1,
        seed=11,
        brick_px=400,
        lrgs_per_brick=4,
        galaxies_per_brick=6,
        stars_per_brick=3,
        spirals_per_brick=0,
        rings_per_brick=0,
        mergers_per_brick=0,
        edgeons_per_brick=0,
        lenses_per_brick=0,
    )
    (tmp_path / "survey").mkdir()
    write_brick(cfg, choose_bricks(cfg)[0], 1, tmp_path / "survey")
    brick = _bricks(tmp_path)[0]
    cat = fits.getdata(tmp_path / "survey" / tractor_path(brick), 1)
    yy, xx = np.mgrid[0:400, 0:400]
    free = np.ones((400, 400), bool)
    for x, y in zip(cat["bx"], cat["by"], strict=True):
        free &= (xx - x) ** 2 + (yy - y) ** 2 > 40**2
    assert free.sum() > 20000
    for band in BANDS:
        image = fits.getdata(tmp_path / "survey" / coadd_path(brick, "image", band), 1)
        invvar = fits.getdata(tmp_path / "survey" / coadd_path(brick, "invvar", band), 1)
        chi = image[free] * np.sqrt(invvar[free])
        assert abs(chi.mean()) < 0.03, band
        assert 0.96 < chi.std() < 1.04, band


def test_psfsize_and_depths_agree_with_the_images(mock_ws: Path) -> None:
    for brick in _bricks(mock_ws):
        cat = fits.getdata(mock_ws / "survey" / tractor_path(brick), 1)
        for band in BANDS:
            header = fits.getheader(mock_ws / "survey" / coadd_path(brick, "image", band), 1)
            invvar = fits.getdata(mock_ws / "survey" / coadd_path(brick, "invvar", band), 1)
            assert np.allclose(cat[f"psfsize_{band}"], header["PSF_FWHM"], rtol=1e-6)
            assert 0.9 < header["PSF_FWHM"] < 1.9
            nea = noise_equivalent_area(moffat_kernel(header["PSF_FWHM"], header["PSF_BETA"], PIXSCALE))
            ix, iy = np.round(cat["bx"]).astype(int), np.round(cat["by"]).astype(int)
            assert np.allclose(cat[f"psfdepth_{band}"], invvar[iy, ix] / nea, rtol=1e-3)
            assert np.all(cat[f"galdepth_{band}"] < cat[f"psfdepth_{band}"])
            mag5 = depth_to_mag5(cat[f"psfdepth_{band}"])
            lo, hi = {"g": (23.7, 25.1), "r": (23.1, 24.5), "z": (22.3, 23.7)}[band]
            assert np.all((mag5 > lo) & (mag5 < hi)), band


def test_the_survey_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        root = tmp_path / name
        run(MockConfig(bricks=1, seed=seed, brick_px=128), root)
        brick = _bricks(root)[0]
        outs.append(
            (
                fits.getdata(root / "survey" / tractor_path(brick), 1),
                fits.getdata(root / "survey" / coadd_path(brick, "image", "r"), 1),
            )
        )
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert not np.array_equal(outs[0][1], outs[2][1])


def test_planted_lenses_are_recorded_apart_and_show_an_arc(mock_ws: Path) -> None:
    truth = pq.read_table(mock_ws / "truth" / "planted.parquet").to_pylist()
    assert not (mock_ws / "survey" / "truth").exists()
    kinds = {row["kind"] for row in truth}
    assert kinds == {"lens", "spiral", "ring", "merger", "edgeon"}
    lenses = [row for row in truth if row["kind"] == "lens"]
    assert lenses and all(row["theta_e_arcsec"] > 1.0 and row["mu"] > 1.5 for row in lenses)
    for lens in lenses:
        brick = lens["brickname"]
        cat = fits.getdata(mock_ws / "survey" / tractor_path(brick), 1)
        x, y = cat["bx"][lens["objid"]], cat["by"][lens["objid"]]
        assert abs(cat["ra"][lens["objid"]] - lens["ra"]) < 1e-9
        image = fits.getdata(mock_ws / "survey" / coadd_path(brick, "image", "g"), 1)
        invvar = fits.getdata(mock_ws / "survey" / coadd_path(brick, "invvar", "g"), 1)
        yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
        r = np.hypot(xx - x, yy - y) * PIXSCALE
        ring = np.abs(r - lens["theta_e_arcsec"]) < 0.4
        snr = image[ring].sum() / np.sqrt((1 / invvar[ring]).sum())
        assert snr > 10  # the blue arc stands out in g, where the red lens is faint


@pytest.mark.parametrize("fwhm", [1.0, 1.6])
def test_moffat_kernel_is_normalised_with_the_right_fwhm(fwhm: float) -> None:
    k = moffat_kernel(fwhm, 3.5, PIXSCALE, supersample=5)
    assert abs(k.sum() - 1) < 1e-12
    row = k[k.shape[0] // 2]
    above = np.flatnonzero(row >= row.max() / 2)
    width = (above[-1] - above[0] + 1) * PIXSCALE / 5
    assert abs(width - fwhm) < 0.1


def test_lookalikes_and_planted_lenses_are_written_as_catalogues(mock_ws: Path) -> None:
    from core.layout import known_lenses_path, lookalikes_path
    from jobs.survey.catalogs import read_positions

    truth = pq.read_table(mock_ws / "truth" / "planted.parquet").to_pylist()
    looks = read_positions(lookalikes_path(mock_ws))
    assert sorted(set(looks["population"])) == ["edge-on disk", "merger", "ring", "spiral"]
    assert len(looks["ra"]) == sum(1 for t in truth if t["kind"] != "lens")
    lenses = read_positions(known_lenses_path(mock_ws))
    planted = [t for t in truth if t["kind"] == "lens"]
    assert np.allclose(sorted(lenses["ra"]), sorted(t["ra"] for t in planted))
    assert all("planted" in r for r in lenses["reference"])
    by_ra = {round(t["ra"], 9): t["grade"] for t in planted}
    assert [by_ra[round(r, 9)] for r in lenses["ra"]] == list(lenses["grade"])  # each lens its own grade
    assert set(lenses["grade"]) <= set(GRADES)
