"""Galaxy shapes: Tractor's (shape_r, shape_e1, shape_e2) and lenstronomy's conventions.

Tractor's ellipticity is e = (1 − q)/(1 + q), e1 = e cos 2φ, e2 = e sin 2φ with φ the position
angle of the major axis east of north. Images here are drawn with north up (+y) and east left
(−x), so the major axis lies at θ = φ + 90° from the pixel +x axis, counter-clockwise;
lenstronomy's (e1, e2) use the same e but the angle θ in its own (x, y) frame."""

from __future__ import annotations

import numpy as np


def tractor_to_q_theta(e1: np.ndarray | float, e2: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Axis ratio q and major-axis angle θ (radians, from pixel +x, counter-clockwise)."""
    e1, e2 = np.asarray(e1, dtype=float), np.asarray(e2, dtype=float)
    e = np.clip(np.hypot(e1, e2), 0.0, 0.999)
    q = (1.0 - e) / (1.0 + e)
    phi = 0.5 * np.arctan2(e2, e1)
    return q, np.mod(phi + np.pi / 2.0, np.pi)


def q_theta_to_tractor(q: np.ndarray | float, theta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `tractor_to_q_theta`."""
    q, theta = np.asarray(q, dtype=float), np.asarray(theta, dtype=float)
    e = (1.0 - q) / (1.0 + q)
    phi = theta - np.pi / 2.0
    return e * np.cos(2.0 * phi), e * np.sin(2.0 * phi)


def lenstronomy_e1e2(q: np.ndarray | float, theta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """lenstronomy's (e1, e2) for axis ratio q and angle θ in the pixel frame."""
    e = (1.0 - np.asarray(q, dtype=float)) / (1.0 + np.asarray(q, dtype=float))
    return e * np.cos(2.0 * np.asarray(theta)), e * np.sin(2.0 * np.asarray(theta))
