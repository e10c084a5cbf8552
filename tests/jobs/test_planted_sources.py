"""The mock survey's planted lenses: sources no injection model shares (out of the injector's
reach: tests/test_contracts.py), converged arcs, and the injector's photon noise."""

import numpy as np

from jobs.mock import planted_sources
from jobs.mock import survey as mock_survey
from jobs.survey.layout import PIXSCALE


def _lens(seed: int = 1) -> mock_survey.Source:
    cfg = mock_survey.MockConfig(bricks=1, seed=seed)
    brick = mock_survey.choose_bricks(cfg)[0]
    return next(s for s in mock_survey.draw_sources(cfg, brick, 0) if s.kind == "lens")


def test_a_planted_source_is_clumpy_and_bluer_outside() -> None:
    src = planted_sources.draw(np.random.default_rng(4), 0.0, 0.0)
    axis = np.linspace(-3.0, 3.0, 1201)
    x, y = np.meshgrid(axis, axis)
    step = axis[1] - axis[0]
    for band in ("g", "r", "z"):  # each band integrates to one, analytically normalised
        assert abs(src.surface_brightness(x, y, band).sum() * step**2 - 1) < 0.01
    r = np.hypot(x, y)

    def half_light(band: str) -> float:
        sb = src.surface_brightness(x, y, band).ravel()
        order = np.argsort(r.ravel())
        return float(r.ravel()[order][np.searchsorted(np.cumsum(sb[order]) / sb.sum(), 0.5)])

    assert half_light("g") > 1.1 * half_light("z")  # a colour gradient: bluer outskirts
    from scipy.ndimage import maximum_filter

    sb = src.surface_brightness(x, y, "g")
    peaks = (sb == maximum_filter(sb, size=9)) & (sb > 0.05 * sb.max())
    assert peaks.sum() >= 3  # clumps, not one smooth Sérsic peak


def test_planted_arcs_are_converged_and_hold_their_flux() -> None:
    src = _lens()
    fwhm = 1.4
    half = max(mock_survey._stamp_half(src, fwhm), mock_survey._arc_half(src, fwhm))
    arcs = mock_survey._arcs(src, half, mock_survey._arc_half(src, fwhm), 0.2, -0.3)
    # an independent rendering: the whole stamp at twice the sampling
    fine = planted_sources.samples_per_pixel(PIXSCALE) * 2
    n = (2 * half + 1) * fine
    axis = (np.arange(n) - (n - 1) / 2.0) / fine
    gx, gy = np.meshgrid((axis - 0.2) * PIXSCALE, (axis + 0.3) * PIXSCALE)
    from lenstronomy.LensModel.lens_model import LensModel

    bx, by = LensModel(["SIE", "SHEAR"]).ray_shooting(gx.ravel(), gy.ravel(), mock_survey._lens_kwargs(src))
    for band in ("g", "r", "z"):
        ref = src.extra["source"].surface_brightness(bx, by, band).reshape(n, n) * (PIXSCALE / fine) ** 2
        ref = ref.reshape(2 * half + 1, fine, 2 * half + 1, fine).sum(axis=(1, 3))
        assert abs(arcs[f"arc_{band}"].sum() / ref.sum() - 1) < 0.01
        assert np.abs(arcs[f"arc_{band}"] - ref).max() < 0.02 * ref.max()
        assert ref.sum() > 2.0  # magnified


def test_planted_light_carries_the_injectors_photon_noise() -> None:
    from jobs.lensing.injection import effective_gain
    from jobs.mock.survey import noise_sigma

    invvar = np.full((3, 8, 8), 400.0)
    arc = np.zeros((3, 8, 8))
    arc[:, 4, 4] = [0.5, 1.0, 2.0]
    sigma = noise_sigma(arc, invvar)
    gain = effective_gain(invvar, (22.04, 20.91, 18.46))
    assert np.allclose(sigma**2 - 1 / invvar, arc / gain)  # the injector's arc variance, exactly
    assert (sigma[:, 4, 4] > sigma[:, 0, 0] * 1.05).all()  # more noise at the arc than the sky's
