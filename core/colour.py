"""Stamp colour composites for people: the Legacy Survey viewer's `sdss_rgb` convention
(z -> R, r -> G, g -> B; scales z 2.2, r 3.4, g 6.0; offset 0.03; asinh(Q I)/sqrt(Q), Q = 20),
the look graders know, and 2x2 binning for small terminals."""

from __future__ import annotations

import numpy as np

SCALES = {"g": 6.0, "r": 3.4, "z": 2.2}
PLANE = {"z": 0, "r": 1, "g": 2}  # R, G, B
OFFSET = 0.03
Q = 20.0


def sdss_rgb(stamp: np.ndarray, bands: str = "grz", q: float = Q) -> np.ndarray:
    """A (3, H, W) stamp in nanomaggies -> (H, W, 3) uint8 RGB, north up (row 0 at the top).
    `q` is the asinh stretch (the viewer's 20; larger shows fainter light)."""
    planes = [np.maximum(0.0, stamp[i].astype(np.float64) * SCALES[b] + OFFSET) for i, b in enumerate(bands)]
    intensity = sum(planes) / len(planes)
    stretch = np.arcsinh(q * intensity) / np.sqrt(q)
    intensity = intensity + (intensity == 0) * 1e-6
    rgb = np.zeros((*stamp.shape[1:], 3))
    for plane, band in zip(planes, bands, strict=True):
        rgb[..., PLANE[band]] = plane * stretch / intensity
    # pixel row 0 is the stamp's south edge (y grows north): flip so north is up on screen
    return (np.clip(rgb, 0.0, 1.0)[::-1] * 255).round().astype(np.uint8)


def single_band(stamp: np.ndarray, index: int, q: float = Q) -> np.ndarray:
    """One band as grey, with the same asinh stretch: for the per-band view."""
    plane = np.maximum(0.0, stamp[index].astype(np.float64) * 3.0 + OFFSET)
    grey = np.clip(np.arcsinh(q * plane) / np.sqrt(q), 0.0, 1.0)[::-1]
    return (np.repeat(grey[..., None], 3, axis=2) * 255).round().astype(np.uint8)


def bin2(rgb: np.ndarray, factor: int = 2) -> np.ndarray:
    """Average `factor` x `factor` pixel blocks."""
    if factor == 1:
        return rgb
    h, w = rgb.shape[0] // factor * factor, rgb.shape[1] // factor * factor
    blocks = rgb[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).astype(np.float32)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


NEUTRAL_CHROMA = 48  # max - min of a pixel's RGB below which, in 256 colours, it is shown grey
NEUTRAL_DARK = 72  # and a pixel no channel of which reaches this (the sky's noise)


def neutral_sky(rgb: np.ndarray, chroma: int = NEUTRAL_CHROMA, dark: int = NEUTRAL_DARK) -> np.ndarray:
    """For terminals of 256 colours: pixels of low chroma or dark (the sky's noise, faint
    outskirts) made exactly grey, which the terminal shows from its grey ramp; left alone,
    the 6×6×6 colour cube turns faint noise into saturated red, green and blue speckle.
    Bright coloured pixels (arcs, galaxies) are untouched."""
    top = rgb.max(axis=-1).astype(np.int16)
    flat = (top - rgb.min(axis=-1) < chroma) | (top < dark)
    grey = rgb.mean(axis=-1, keepdims=True).round().astype(np.uint8)
    return np.where(flat[..., None], grey, rgb)
