"""PSF kernels as normalised images: Gaussian and Moffat (DR10-like wings).

FWHM in arcsec (as `psfsize_<band>`); a kernel is sampled at `pixscale / supersample`.
`supersampled` gives the engines' kernels: sampled at CONVOLUTION_FACTOR sub-pixels per pixel
side over a whole number of pixels, centred on the middle sub-pixel of the middle pixel, so
that `bin_pixels` of it is the pixel-scale kernel (jobs/lensing/convolution.py)."""

from __future__ import annotations

import numpy as np


def _grid(half: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    axis = np.arange(-half, half + 1) * step
    return np.meshgrid(axis, axis)


def gaussian_kernel(
    fwhm: float, pixscale: float, supersample: int = 1, radius_fwhm: float = 3.0, half: int | None = None
) -> np.ndarray:
    """A Gaussian PSF of the given FWHM, normalised to sum 1 (`half` samples each side)."""
    step = pixscale / supersample
    half = int(np.ceil(radius_fwhm * fwhm / step)) if half is None else half
    x, y = _grid(half, step)
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    kernel = np.exp(-(x**2 + y**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def moffat_kernel(
    fwhm: float,
    beta: float,
    pixscale: float,
    supersample: int = 1,
    radius_fwhm: float = 5.0,
    half: int | None = None,
) -> np.ndarray:
    """A Moffat PSF, (1 + r²/α²)^-β with α = FWHM / (2 √(2^(1/β) − 1)), normalised to sum 1.

    Its power-law wings are what a Gaussian misses (the seed's known weakness). Each pixel is
    integrated on a 3x3 sub-grid so a narrow core is not under-sampled."""
    if beta <= 1.0:
        raise ValueError("Moffat beta must be > 1")
    step = pixscale / supersample
    half = int(np.ceil(radius_fwhm * fwhm / step)) if half is None else half
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    sub = (np.arange(3) - 1) * step / 3.0
    x, y = _grid(half, step)
    kernel = np.zeros_like(x)
    for dx in sub:
        for dy in sub:
            kernel += (1.0 + ((x + dx) ** 2 + (y + dy) ** 2) / alpha**2) ** (-beta)
    return kernel / kernel.sum()


RADIUS_FWHM = {"gaussian": 3.0, "moffat": 5.0}  # how far a kernel reaches


def kernel(
    model: str, fwhm: float, pixscale: float, beta: float = 3.5, supersample: int = 1, half: int | None = None
) -> np.ndarray:
    if model == "gaussian":
        return gaussian_kernel(fwhm, pixscale, supersample, RADIUS_FWHM[model], half)
    if model == "moffat":
        return moffat_kernel(fwhm, beta, pixscale, supersample, RADIUS_FWHM[model], half)
    raise ValueError(f"unknown PSF model {model!r} (gaussian or moffat)")


def supersampled(model: str, fwhm: float, pixscale: float, beta: float = 3.5, factor: int = 3) -> np.ndarray:
    """The PSF at `factor` (odd) sub-pixels per pixel side, over 2H + 1 whole pixels, H the
    pixels its model reaches: (factor (2H + 1))², summing to 1."""
    if factor % 2 != 1:
        raise ValueError(f"the supersampling factor must be odd, not {factor}")
    pixels = int(np.ceil(RADIUS_FWHM.get(model, 5.0) * fwhm / pixscale))
    return kernel(model, fwhm, pixscale, beta, factor, half=factor * pixels + factor // 2)


def bin_pixels(image: np.ndarray, factor: int) -> np.ndarray:
    """Sum factor × factor blocks of the last two axes (their sizes multiples of factor)."""
    *lead, h, w = image.shape
    return image.reshape(*lead, h // factor, factor, w // factor, factor).sum(axis=(-3, -1))


def noise_equivalent_area(psf: np.ndarray) -> float:
    """Pixels of a point source's noise-equivalent area, 1 / Σ p² (for a normalised PSF)."""
    return float(1.0 / np.sum(psf**2))


# -- a pixelised PSF from a file ------------------------------------------------------------


def read_pixelised(path: str) -> tuple[np.ndarray, float]:
    """A PSF image and its sampling (pixels of 0.262″ per sample) from a FITS file: a PSFEx
    model (a `PSF_DATA` table, or legacypipe's merged per-exposure table with lower-case
    `psf_mask` / `psf_samp` columns, its first row: the constant term, the PSF at the
    polynomial's reference position, sampled at `PSF_SAMP`), or the first image HDU
    (`PSF_SAMP` in its header, 1 if absent); `path` local or s3://. Raises ValueError naming what is wrong."""
    import io

    from astropy.io import fits

    from core import storage
    from core.errors import HaloError

    try:
        source = io.BytesIO(storage.read_bytes(path)) if storage.is_s3(path) else path
    except HaloError as err:
        raise ValueError(str(err)) from None
    try:
        with fits.open(source, memmap=False) as hdus:
            image, sampling = None, None
            for hdu in hdus:  # PSFEx's PSF_DATA, or legacypipe's merged table (lower-case, a row per CCD)
                names = {n.lower(): n for n in hdu.columns.names} if isinstance(hdu, fits.BinTableHDU) else {}
                if "psf_mask" in names and len(hdu.data):
                    mask = np.asarray(hdu.data[names["psf_mask"]][0], dtype=float)
                    image = mask[0] if mask.ndim == 3 else mask
                    sampling = float(
                        hdu.data[names["psf_samp"]][0]
                        if "psf_samp" in names
                        else hdu.header.get("PSF_SAMP", 1.0)
                    )
                    break
            if image is None:
                found = next(
                    (h for h in hdus if h.is_image and h.data is not None and h.data.ndim == 2), None
                )
                if found is None:
                    raise ValueError("no PSF_DATA table and no 2-D image HDU")
                image, sampling = (
                    np.asarray(found.data, dtype=float),
                    float(found.header.get("PSF_SAMP", 1.0)),
                )
    except OSError as err:
        raise ValueError(f"not a readable FITS file ({err})") from None
    if image.shape[0] != image.shape[1] or image.shape[0] % 2 != 1:
        raise ValueError(f"the PSF image must be square with an odd side, not {image.shape}")
    if not np.isfinite(image).all() or image.sum() <= 0 or not 0 < sampling <= 4:
        raise ValueError("the PSF image holds non-finite values, no light, or PSF_SAMP outside (0, 4]")
    return image / image.sum(), sampling


def measured_fwhm(image: np.ndarray, sampling: float, pixscale: float) -> float:
    """The FWHM (″) of a PSF image: the diameter of the circle whose area is that of the light
    above half the peak, measured on the image resampled 8× finer (cubic)."""
    from scipy.ndimage import zoom

    fine = zoom(image, 8, order=3)
    step = sampling * pixscale * (image.shape[0] - 1) / (fine.shape[0] - 1)  # zoom maps corner to corner
    area = (fine >= 0.5 * fine.max()).sum() * step**2
    return float(2 * np.sqrt(area / np.pi))


def pixelised_kernel(
    image: np.ndarray, sampling: float, fwhm: float, pixscale: float, factor: int = 3
) -> np.ndarray:
    """The file's PSF stretched to `fwhm` (its shape kept: wings, asymmetry) and sampled at
    `factor` sub-pixels per pixel side over whole pixels (as `supersampled`), summing to 1."""
    from scipy.ndimage import map_coordinates

    stretch = fwhm / measured_fwhm(image, sampling, pixscale)
    reach = (image.shape[0] // 2) * sampling * stretch  # pixels
    pixels = int(np.ceil(reach))
    half = factor * pixels + factor // 2
    axis = np.arange(-half, half + 1) / factor  # pixels
    centre = image.shape[0] // 2
    u = axis / (sampling * stretch) + centre
    yy, xx = np.meshgrid(u, u, indexing="ij")
    kernel = np.clip(map_coordinates(image, [yy, xx], order=3, mode="constant", cval=0.0), 0, None)
    return kernel / kernel.sum()
