"""The PSF applied at the supersampled scale where the arc is, at the pixel scale elsewhere.

Convolving pixel-binned light misplaces what lies off a pixel's centre: against a 10×
rendering convolved at 10×, arcs convolved at the pixel scale were off by up to 6 % of their
peak. Here, as lenstronomy's adaptive convolution does, a stamp is convolved in two scales:

    out = image ∗ K  −  fine₁ ∗ K_core  +  bin(fine_f ∗ K_f,core)

- image: the pixel-scale light (its fine square binned), K the PSF at the pixel scale (the
  f × f binning of K_f, the PSF at f = CONVOLUTION_FACTOR sub-pixels per pixel side);
- fine_f: the fine square's light at f sub-pixels per side, fine₁ its binning;
- K_f,core: K_f's core, the central square of pixels out to where it falls below CORE_LEVEL of
  its peak (about 2 FWHM for a Moffat of β = 3.5), K_core its binning.

So the fine square's light meets the PSF's core at the sub-pixel scale and its wings, which
vary slowly, at the pixel scale (a core of 1 FWHM or less is worse than none: the two scales
disagree at its edge, where the PSF is still steep; 2 FWHM is as good as the whole kernel);
light outside the fine square (less than 0.1 % of the source's) meets the whole PSF at the
pixel scale. Flux is kept exactly: K_core sums as K_f,core. jobs/lensing/batched.py does the
same on PyTorch, batched."""

from __future__ import annotations

import numpy as np

from jobs.lensing.params import CONVOLUTION_FACTOR
from jobs.lensing.psf import bin_pixels

CORE_LEVEL = 0.005  # the PSF's core: where it exceeds this fraction of its peak


def core_half(pixel: np.ndarray) -> int:
    """Pixels each side of the centre out to which a pixel-scale kernel (the last two axes)
    exceeds CORE_LEVEL of its peak, anywhere in the batch."""
    half = pixel.shape[-1] // 2
    peak = pixel.max(axis=(-2, -1), keepdims=True)
    above = (pixel >= CORE_LEVEL * peak).reshape(-1, *pixel.shape[-2:]).any(axis=0)
    rows, cols = np.nonzero(above)
    return int(max(np.abs(rows - half).max(), np.abs(cols - half).max()))


def parts(
    kernel: np.ndarray, factor: int = CONVOLUTION_FACTOR, core: int | None = None
) -> tuple[np.ndarray, ...]:
    """(K, K_f,core, K_core) of a supersampled kernel (psf.supersampled), the core `core`
    pixels each side (default: core_half)."""
    pixel = bin_pixels(kernel, factor)
    half = pixel.shape[-1] // 2
    hc = min(core_half(pixel) if core is None else core, half)
    lo = factor * (half - hc)
    fine_core = kernel[..., lo : lo + factor * (2 * hc + 1), lo : lo + factor * (2 * hc + 1)]
    return pixel, fine_core, pixel[..., half - hc : half + hc + 1, half - hc : half + hc + 1]


def convolve(
    image: np.ndarray,
    fine: np.ndarray,
    lo: int,
    kernel: np.ndarray,
    factor: int = CONVOLUTION_FACTOR,
    core: int | None = None,
) -> np.ndarray:
    """The stamp `image` (size, size) convolved with `kernel` (psf.supersampled), its square
    of pixels [lo, lo + w)² given at `factor` sub-pixels per side in `fine` (f·w, f·w)."""
    from scipy.signal import fftconvolve

    size = image.shape[-1]
    w = fine.shape[-1] // factor
    pixel, fine_core, core_pixel = parts(kernel, factor, core)
    hc = core_pixel.shape[-1] // 2
    out = fftconvolve(image, pixel, mode="same")
    # the square's light, with the PSF's core at the pixel scale, out: pixels lo − hc ... lo + w + hc − 1
    coarse = fftconvolve(image[lo : lo + w, lo : lo + w], core_pixel)
    _add(out, -coarse, lo - hc)
    # and in at the sub-pixel scale: sub-pixel j of the full convolution lies at offset
    # j − (f·hc + (f − 1)/2) from the square's first; binned from the pixel lo − hc − 1
    sharp = fftconvolve(fine, fine_core)
    frame = np.zeros((factor * (w + 2 * hc + 2),) * 2)
    at = (factor + 1) // 2
    frame[at : at + sharp.shape[0], at : at + sharp.shape[1]] = sharp
    _add(out, bin_pixels(frame, factor), lo - hc - 1)
    return out[:size, :size]


def _add(out: np.ndarray, patch: np.ndarray, start: int) -> None:
    """out[start:, start:] += patch, clipped to out."""
    size = out.shape[-1]
    a, b = max(start, 0), min(start + patch.shape[-1], size)
    if a < b:
        out[a:b, a:b] += patch[a - start : b - start, a - start : b - start]
