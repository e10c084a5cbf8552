"""The mock survey's planted-lens sources: clumpy star-forming discs, drawn by a generator that no
injection source model shares.

The planted lenses play "real" lenses in the demo, so their sources must not look like the
injector's (jobs/lensing/sources.py: smooth Sérsic profiles of one colour), or recall on them and the
realism probe would measure nothing. A source here is, in the source plane:

- an exponential disc (scale length h, axis ratio q, angle φ) whose light is modulated by m
  logarithmic spiral arms, 1 + a·cos(m(ψ − ln(r/h)/tan p) + phase), ψ the angle in the disc's
  own frame: the modulation averages to zero around every ellipse, so the disc's flux is that
  of its exponential;
- a colour gradient: the disc is larger in g than in r and smaller in z (bluer outskirts);
- a small red bulge (an elliptical Gaussian);
- 3–8 compact blue star-forming clumps (round Gaussians, σ 0.04–0.08″) scattered over the disc.

Each component integrates to one analytically, so a band's total flux is the sum of its
components' fractions and `surface_brightness` is in flux per arcsec² for a source of the
band flux given. Never imported by `jobs.lensing`, `jobs.sources` or the inject stage (a
contract test holds it so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jobs.survey.layout import BANDS

# colours of the components (mag): disc, clumps (young, blue) and bulge (old, red)
DISC_COLOUR = {"g": 0.35, "r": 0.0, "z": -0.3}
CLUMP_COLOUR = {"g": 0.0, "r": 0.0, "z": 0.05}
BULGE_COLOUR = {"g": 0.9, "r": 0.0, "z": -0.55}
SCALE_BY_BAND = {"g": 1.25, "r": 1.0, "z": 0.85}  # the disc's scale length by band: the gradient
MIN_CLUMP_SIGMA = 0.04  # arcsec: the finest structure, which sets the sampling (`samples_per_pixel`)


@dataclass(frozen=True)
class Clump:
    x: float
    y: float
    sigma: float
    share: float  # of the r-band flux


@dataclass(frozen=True)
class ClumpyDisc:
    """One source, centred at (x0, y0) in the source plane (arcsec)."""

    x0: float
    y0: float
    h: float  # r-band disc scale length, arcsec
    q: float
    phi: float
    arms: int
    arm_amp: float
    pitch: float  # radians
    arm_phase: float
    bulge_share: float
    bulge_sigma: float
    clumps: tuple[Clump, ...] = field(default_factory=tuple)

    def _light(self, band: str) -> dict[str, float]:
        """Each component's flux in `band` for a source of unit r-band flux."""
        clump = sum(c.share for c in self.clumps)
        return {
            "disc": (1.0 - clump - self.bulge_share) * 10 ** (-0.4 * DISC_COLOUR[band]),
            "bulge": self.bulge_share * 10 ** (-0.4 * BULGE_COLOUR[band]),
            "clumps": clump * 10 ** (-0.4 * CLUMP_COLOUR[band]),
        }

    def shares(self, band: str) -> dict[str, float]:
        """Each component's share of the source's flux in `band` (they sum to one)."""
        light = self._light(band)
        total = sum(light.values())
        return {k: v / total for k, v in light.items()}

    def colour(self, band: str) -> float:
        """The source's flux in `band` relative to r (its integrated colour)."""
        return sum(self._light(band).values())

    def surface_brightness(self, bx: np.ndarray, by: np.ndarray, band: str) -> np.ndarray:
        """Flux per arcsec² at source-plane positions (bx, by), for a total flux of one in
        `band`."""
        return self.images(bx, by, (band,))[band]

    def images(self, bx: np.ndarray, by: np.ndarray, bands: tuple[str, ...] = BANDS) -> dict[str, np.ndarray]:
        """`surface_brightness` in each of `bands`, the geometry shared between them."""
        dx, dy = bx - self.x0, by - self.y0
        c, s = np.cos(self.phi), np.sin(self.phi)
        u, v = c * dx + s * dy, (-s * dx + c * dy) / self.q  # the disc's frame, circularised
        r = np.hypot(u, v)
        winding = np.arctan2(v, u) - np.log(np.maximum(r, 1e-4) / self.h) / np.tan(self.pitch)
        bulge = np.exp(-0.5 * r**2 / self.bulge_sigma**2) / (2 * np.pi * self.bulge_sigma**2 * self.q)
        clump_total = sum(cl.share for cl in self.clumps)
        clumps = np.zeros_like(r)
        for cl in self.clumps:
            g = np.exp(-0.5 * ((dx - cl.x) ** 2 + (dy - cl.y) ** 2) / cl.sigma**2) / (2 * np.pi * cl.sigma**2)
            clumps += (cl.share / clump_total) * g
        out = {}
        for band in bands:
            shares = self.shares(band)
            h = self.h * SCALE_BY_BAND[band]
            # the band's scale shifts the arms' phase: ln(r/h_b) = ln(r/h) − ln(scale)
            phase = self.arms * np.log(SCALE_BY_BAND[band]) / np.tan(self.pitch) + self.arm_phase
            arms = 1.0 + self.arm_amp * np.cos(self.arms * winding + phase)
            disc = np.exp(-r / h) * arms / (2 * np.pi * h * h * self.q)
            out[band] = shares["disc"] * disc + shares["bulge"] * bulge + shares["clumps"] * clumps
        return out

    @property
    def reach(self) -> float:
        """A radius (arcsec) that holds nearly all the light in every band."""
        clumps = max((np.hypot(c.x, c.y) + 3 * c.sigma for c in self.clumps), default=0.0)
        return max(6.0 * self.h * SCALE_BY_BAND["g"] / np.sqrt(self.q), clumps)


def draw(rng: np.random.Generator, x0: float, y0: float) -> ClumpyDisc:
    """A clumpy star-forming disc at (x0, y0): half-light radius 0.2–0.45″ in r."""
    h = float(rng.uniform(0.2, 0.45)) / 1.678
    q = float(rng.uniform(0.45, 1.0))
    phi = float(rng.uniform(0, np.pi))
    n_clumps = int(rng.integers(3, 9))
    shares = rng.dirichlet(np.ones(n_clumps)) * float(rng.uniform(0.2, 0.45))
    clumps = []
    c, s = np.cos(phi), np.sin(phi)
    for share in shares:
        radius = float(rng.gamma(2.0, h))  # where an exponential disc's light is
        angle = float(rng.uniform(0, 2 * np.pi))
        u, v = radius * np.cos(angle), radius * np.sin(angle) * q
        clumps.append(
            Clump(c * u - s * v, s * u + c * v, float(rng.uniform(MIN_CLUMP_SIGMA, 0.08)), float(share))
        )
    return ClumpyDisc(
        x0=x0,
        y0=y0,
        h=h,
        q=q,
        phi=phi,
        arms=int(rng.choice([2, 2, 3])),
        arm_amp=float(rng.uniform(0.3, 0.8)),
        pitch=float(np.radians(rng.uniform(12, 30))),
        arm_phase=float(rng.uniform(0, 2 * np.pi)),
        bulge_share=float(rng.uniform(0.05, 0.2)),
        bulge_sigma=float(rng.uniform(0.3, 0.5) * h),
        clumps=tuple(clumps),
    )


def samples_per_pixel(pixscale: float) -> int:
    """Sub-pixels per pixel side that sample the finest clump 1.5 times per σ (its flux then
    converges far below 1 %: tests/jobs/test_planted_sources.py renders at twice this)."""
    return int(np.ceil(pixscale / (MIN_CLUMP_SIGMA / 1.5)))
