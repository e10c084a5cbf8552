"""The embedded mini-DR10 survey: DR10's files, columns and units, small enough for a laptop.

Every stage reads it exactly as it reads DR10. Per brick it writes a Tractor catalogue and the
g, r, z image and inverse-variance coadds (`.fits.fz`, a TAN WCS at 0.262″/px centred on the
brick's DR10 centre). Bricks are `brick_px` pixels square (600 by default; 3600 is DR10's
size). The content:

- LRGs: Sersic n≈4 (DEV or SER), DR10-like colours, z < 21, shapes filled;
- other galaxies (EXP, REX, SER), stars (PSF);
- the classic false positives: face-on spirals, ring galaxies, mergers (a companion and a
  curved tidal tail) and edge-on disks;
- genuine lenses (`lenses_per_brick`, 4 by default: 128 on the demo's 32 bricks, a prevalence
  far above the sky's, so that recall on them is measurable in every split): an LRG (SIE +
  shear, lenstronomy's ray shooting) lensing a clumpy star-forming disc with spiral arms and
  a colour gradient from `jobs/mock/planted_sources.py`, a generator no injection source
  model shares; their ids go to `truth/planted.parquet`, which no training stage reads.

As a user of DR10 would bring them, it also writes two position catalogues into the
workspace's `catalogs/`: `lookalikes.csv` (the spirals, rings, mergers and edge-on disks,
with their population) and `known_lenses.csv` (the planted lenses, as the workspace's own
known lenses, graded as a catalogue grades them: about 40 % `confident`, 40 % `probable` and
20 % `candidate`, drawn per lens).

Seeing is drawn per brick (r-band FWHM 1.0–1.6″) with a Moffat PSF; pixel noise is the sky's,
drawn from the invvar map, plus every source's photon noise (variance model / g, with the
injector's effective gain g = sky per pixel × invvar, so planted arcs are as noisy as
injected ones); `psfsize_*`, `psfdepth_*` and `galdepth_*` are computed from the same PSF
and invvar, so the catalogue agrees with the images. Deterministic for a seed.

    python -m jobs.stages.demo --workspace DIR [--bricks N] [--seed S] [--brick-px PX]
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import naming
from core.layout import survey_dir
from jobs.lensing.params import sersic
from jobs.lensing.psf import moffat_kernel, noise_equivalent_area
from jobs.lensing.shapes import lenstronomy_e1e2, q_theta_to_tractor
from jobs.mock import planted_sources
from jobs.runtime import stage as stage_runtime
from jobs.survey.layout import BANDS, PIXSCALE, Brick, brick_at, coadd_path, tractor_path

# the mock's lookalike kinds and the population names the catalogue gives them
LOOKALIKES = {"spiral": "spiral", "ring": "ring", "merger": "merger", "edgeon": "edge-on disk"}
# how the planted lenses are graded in the workspace's known-lens catalogue, and how often
GRADES, GRADE_SHARES = ("confident", "probable", "candidate"), (0.4, 0.4, 0.2)
TRUTH_DIR = "truth"
RELEASE = 10000  # DR10 south


@dataclass(frozen=True)
class MockConfig:
    bricks: int = stage_runtime.declared_default("demo", "bricks")
    seed: int = stage_runtime.declared_default("demo", "seed")
    brick_px: int = stage_runtime.declared_default("demo", "brick_px")
    images: bool = True
    ra0: float = 176.1  # a patch of sky with few published lenses (lenscat: 2 within 1.2 deg)
    dec0: float = 6.1
    lrgs_per_brick: int = stage_runtime.declared_default("demo", "lrgs_per_brick")
    galaxies_per_brick: int = 60
    stars_per_brick: int = 25
    spirals_per_brick: int = 2
    rings_per_brick: int = 1
    mergers_per_brick: int = 1
    edgeons_per_brick: int = 1
    lenses_per_brick: int = 4  # planted lenses


@dataclass
class Source:
    """One object to draw and catalogue."""

    kind: str  # lrg, galaxy, star, spiral, ring, lens
    type: str
    x: float
    y: float
    flux: dict[str, float]
    shape_r: float = 0.0
    q: float = 1.0
    theta: float = 0.0
    sersic: float = 0.0
    extra: dict[str, Any] | None = None


def choose_bricks(cfg: MockConfig) -> list[Brick]:
    """`cfg.bricks` distinct DR10 bricks in a compact patch from (ra0, dec0)."""
    side = int(np.ceil(np.sqrt(cfg.bricks)))
    bricks: dict[str, Brick] = {}
    row = 0
    while len(bricks) < cfg.bricks:
        dec = cfg.dec0 + row * 0.25
        step = 0.25 / np.cos(np.radians(dec))
        for col in range(side):
            brick = brick_at(cfg.ra0 + col * step, dec)
            bricks.setdefault(brick.name, brick)
            if len(bricks) == cfg.bricks:
                break
        row += 1
    return list(bricks.values())


def _rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.blake2b(":".join([str(seed), *keys]).encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _fluxes(rng: np.random.Generator, z_mag: float, r_z: float, g_r: float, z_w1: float) -> dict[str, float]:
    mags = {"z": z_mag, "r": z_mag + r_z, "g": z_mag + r_z + g_r, "w1": z_mag - z_w1}
    return {band: float(10 ** ((22.5 - m) / 2.5)) for band, m in mags.items()}


def draw_sources(cfg: MockConfig, brick: Brick, index: int) -> list[Source]:
    """The objects of one brick, drawn from DR10-like distributions."""
    rng = _rng(cfg.seed, brick.name, "sources")
    margin = 40  # DR10 bricks overlap their neighbours: an object sits well inside its image
    size = cfg.brick_px

    def pos() -> tuple[float, float]:
        return float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin))

    def shape(mean_r: float, sigma_e: float) -> tuple[float, float, float]:
        r = float(np.clip(rng.lognormal(np.log(mean_r), 0.35), 0.3, 4.0))
        e = float(np.clip(abs(rng.normal(0, sigma_e)), 0.0, 0.6))
        return r, (1 - e) / (1 + e), float(rng.uniform(0, np.pi))

    out: list[Source] = []
    for _ in range(cfg.lrgs_per_brick):
        r, q, th = shape(1.1, 0.15)
        dev = rng.random() < 0.7
        flux = _fluxes(
            rng, rng.uniform(18.3, 21.0), rng.normal(1.55, 0.2), rng.normal(1.6, 0.2), rng.normal(1.3, 0.35)
        )
        out.append(
            Source(
                "lrg",
                "DEV" if dev else "SER",
                *pos(),
                flux,
                r,
                q,
                th,
                4.0 if dev else float(rng.uniform(3.0, 5.5)),
            )
        )
    for _ in range(cfg.galaxies_per_brick):
        kind = rng.choice(["EXP", "REX", "SER"], p=[0.55, 0.3, 0.15])
        r, q, th = shape(0.6, 0.25)
        if kind == "REX":
            q, th = 1.0, 0.0
        flux = _fluxes(
            rng, rng.uniform(19.0, 22.5), rng.normal(0.7, 0.3), rng.normal(0.6, 0.25), rng.normal(0.3, 0.4)
        )
        out.append(Source("galaxy", str(kind), *pos(), flux, r, q, th, 1.0 if kind != "SER" else 2.0))
    for _ in range(cfg.stars_per_brick):
        r_mag = rng.uniform(16.0, 22.0)
        flux = _fluxes(
            rng,
            r_mag - rng.normal(0.4, 0.3) * 1.0,
            rng.normal(0.4, 0.3),
            rng.normal(0.8, 0.4),
            rng.normal(-0.4, 0.3),
        )
        out.append(Source("star", "PSF", *pos(), flux))
    for _ in range(cfg.spirals_per_brick):
        r, q, th = shape(2.6, 0.05)
        flux = _fluxes(rng, rng.uniform(17.5, 19.5), rng.normal(0.5, 0.1), rng.normal(0.5, 0.1), 0.2)
        out.append(
            Source(
                "spiral",
                "EXP",
                *pos(),
                flux,
                r,
                q,
                th,
                1.0,
                {
                    "arms": int(rng.integers(2, 4)),
                    "pitch": float(rng.uniform(0.25, 0.45)),
                    "phase": float(rng.uniform(0, 2 * np.pi)),
                },
            )
        )
    for _ in range(cfg.rings_per_brick):
        r, q, th = shape(1.8, 0.05)
        flux = _fluxes(rng, rng.uniform(17.8, 19.5), rng.normal(1.0, 0.15), rng.normal(1.0, 0.15), 0.6)
        out.append(
            Source(
                "ring",
                "SER",
                *pos(),
                flux,
                r,
                q,
                th,
                2.5,
                {"ring_r": float(r * rng.uniform(1.3, 1.8)), "ring_frac": float(rng.uniform(0.3, 0.5))},
            )
        )
    for _ in range(cfg.mergers_per_brick):
        r, q, th = shape(1.3, 0.15)
        flux = _fluxes(rng, rng.uniform(18.0, 19.8), rng.normal(1.4, 0.15), rng.normal(1.5, 0.15), 1.1)
        sep, angle = rng.uniform(1.5, 3.0), rng.uniform(0, 2 * np.pi)
        extra = {
            "dx": float(sep * np.cos(angle)),
            "dy": float(sep * np.sin(angle)),
            "ratio": float(rng.uniform(0.3, 0.9)),
            "tail_r": float(rng.uniform(2.5, 4.5)),
            "tail_start": float(rng.uniform(0, 2 * np.pi)),
            "tail_span": float(rng.uniform(1.2, 2.2)),
            "tail_frac": float(rng.uniform(0.08, 0.2)),
        }
        out.append(Source("merger", "SER", *pos(), flux, r, q, th, 3.0, extra))
    for _ in range(cfg.edgeons_per_brick):
        r = float(rng.uniform(1.2, 2.5))
        flux = _fluxes(rng, rng.uniform(17.8, 19.5), rng.normal(0.8, 0.1), rng.normal(0.8, 0.1), 0.4)
        q = float(rng.uniform(0.12, 0.25))
        out.append(Source("edgeon", "EXP", *pos(), flux, r, q, float(rng.uniform(0, np.pi)), 1.0))
    for k in range(cfg.lenses_per_brick):
        r, q, th = shape(1.2, 0.12)
        z_mag = rng.uniform(18.4, 19.6)
        flux = _fluxes(rng, z_mag, rng.normal(1.6, 0.1), rng.normal(1.6, 0.1), rng.normal(1.4, 0.1))
        theta_e = float(rng.uniform(1.0, 2.4))
        radius, angle = rng.uniform(0.05, 0.35) * theta_e, rng.uniform(0, 2 * np.pi)
        lens = {
            "theta_e": theta_e,
            "src_dmag": float(rng.uniform(0.3, 1.5)),
            "gamma1": float(rng.normal(0, 0.03)),
            "gamma2": float(rng.normal(0, 0.03)),
            "grade": str(rng.choice(GRADES, p=GRADE_SHARES)),
            "source": planted_sources.draw(
                _rng(cfg.seed, brick.name, "lens-source", str(k)),
                float(radius * np.cos(angle)),
                float(radius * np.sin(angle)),
            ),
        }
        out.append(Source("lens", "DEV", *pos(), flux, r, q, th, 4.0, lens))
    return out


# -- rendering ---------------------------------------------------------------------------


def _sersic(x: np.ndarray, y: np.ndarray, r_e: float, n: float, q: float, theta: float) -> np.ndarray:
    return sersic(x, y, max(r_e, 0.05), n, q, theta)


def _lens_kwargs(src: Source) -> list[dict[str, float]]:
    """A planted lens's mass (SIE + shear) centred at (0, 0), in lenstronomy's terms: its
    light's axis ratio and angle (jobs/lensing/shapes.py's conventions, as the catalogue's)."""
    p = src.extra or {}
    e1, e2 = lenstronomy_e1e2(src.q, src.theta)
    return [
        {"theta_E": p["theta_e"], "e1": float(e1), "e2": float(e2), "center_x": 0.0, "center_y": 0.0},
        {"gamma1": p["gamma1"], "gamma2": p["gamma2"], "ra_0": 0.0, "dec_0": 0.0},
    ]


def _arc_half(src: Source, fwhm_max: float) -> int:
    """Half-width (pixels) of the square that holds a planted lens's arcs and their PSF wings."""
    p = src.extra or {}
    return int(np.ceil((p["theta_e"] / np.sqrt(src.q) + p["source"].reach + 2.5 * fwhm_max) / PIXSCALE))


def _arcs(src: Source, half: int, arc_half: int, dx: float, dy: float) -> dict[str, np.ndarray]:
    """The lensed source's flux per pixel in each band, for an unlensed source of unit flux in
    that band, on the (2·half + 1)² stamp centred at sub-pixel offset (dx, dy): rendered at
    `planted_sources.samples_per_pixel` on the central (2·arc_half + 1)² pixels and binned."""
    from lenstronomy.LensModel.lens_model import LensModel

    ss = planted_sources.samples_per_pixel(PIXSCALE)
    arc_half = min(arc_half, half)
    n = (2 * arc_half + 1) * ss
    axis = (np.arange(n) - (n - 1) / 2.0) / ss
    gx, gy = np.meshgrid((axis - dx) * PIXSCALE, (axis - dy) * PIXSCALE)
    bx, by = LensModel(["SIE", "SHEAR"]).ray_shooting(gx.ravel(), gy.ravel(), _lens_kwargs(src))
    source = (src.extra or {})["source"]
    pad = half - arc_half
    return {
        f"arc_{band}": np.pad(_bin((sb * (PIXSCALE / ss) ** 2).reshape(n, n), ss), pad)
        for band, sb in source.images(bx, by).items()
    }


def _profiles(src: Source, ss: int, half: int, dx: float, dy: float) -> dict[str, np.ndarray]:
    """Unit-flux surface-brightness stamps (component name -> image) on a supersampled grid
    centred at sub-pixel offset (dx, dy) pixels."""
    n = (2 * half + 1) * ss
    axis = (np.arange(n) - (n - 1) / 2.0) / ss
    gx, gy = np.meshgrid((axis - dx) * PIXSCALE, (axis - dy) * PIXSCALE)
    x, y = gx.ravel(), gy.ravel()
    if src.kind == "star":
        img = np.zeros((n, n))
        img[
            int(np.clip(round(n // 2 + dy * ss), 0, n - 1)), int(np.clip(round(n // 2 + dx * ss), 0, n - 1))
        ] = 1.0
        return {"main": img}
    main = _sersic(x, y, src.shape_r, src.sersic, src.q, src.theta).reshape(n, n)
    parts = {"main": main / main.sum()}
    extra = src.extra or {}
    if src.kind == "spiral":
        r = np.hypot(x, y)
        phi = np.arctan2(y, x)
        arms = 1 + 0.9 * np.cos(extra["arms"] * (phi - np.log(r + 1e-3) / extra["pitch"]) + extra["phase"])
        disc = (np.exp(-r / (src.shape_r / 1.68)) * arms).reshape(n, n)
        parts["main"] = disc / disc.sum()
    elif src.kind == "ring":
        r = np.hypot(x, y * 1.0)
        ring = np.exp(-0.5 * ((r - extra["ring_r"]) / (0.25 * extra["ring_r"])) ** 2).reshape(n, n)
        f = extra["ring_frac"]
        parts["main"] = (1 - f) * parts["main"] + f * ring / ring.sum()
    elif src.kind == "merger":
        companion = _sersic(x - extra["dx"], y - extra["dy"], 0.7 * src.shape_r, 2.0, 0.8, src.theta)
        r, phi = np.hypot(x, y), np.arctan2(y, x)
        along = np.mod(phi - extra["tail_start"], 2 * np.pi)  # a curved tail: part of a circle
        tail = np.exp(-0.5 * ((r - extra["tail_r"]) / 0.35) ** 2) * (along < extra["tail_span"])
        tail = tail * np.exp(-along / extra["tail_span"])
        main = parts["main"].ravel()
        f, ratio = extra["tail_frac"], extra["ratio"]
        total = (1 - f) * (main / main.sum() + ratio * companion / companion.sum()) / (1 + ratio)
        parts["main"] = (total + f * tail / tail.sum()).reshape(n, n)
    return parts


def _bin(img: np.ndarray, ss: int) -> np.ndarray:
    n = img.shape[0] // ss
    return img.reshape(n, ss, n, ss).sum(axis=(1, 3))


def _stamp_half(src: Source, fwhm_max: float) -> int:
    extent = 6.0 * max(src.shape_r, 0.3) + 2.5 * fwhm_max
    if src.kind == "ring":
        extent = max(extent, 2.0 * (src.extra or {})["ring_r"] + 2.5 * fwhm_max)
    if src.kind == "merger":
        extra = src.extra or {}
        extent = max(extent, extra["tail_r"] + np.hypot(extra["dx"], extra["dy"]) + 2.5 * fwhm_max)
    return int(np.clip(np.ceil(extent / PIXSCALE), 10, 90))


def render_brick(
    cfg: MockConfig,
    brick: Brick,
    sources: list[Source],
    seeing: dict[str, dict[str, float]],
    invvar: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Noiseless model images of the brick, one per band (nanomaggies per pixel)."""
    from scipy.signal import fftconvolve

    size = cfg.brick_px
    images = {band: np.zeros((size, size), dtype=np.float64) for band in BANDS}
    kernels = {b: moffat_kernel(seeing[b]["fwhm"], seeing[b]["beta"], PIXSCALE) for b in BANDS}
    fwhm_max = max(s["fwhm"] for s in seeing.values())
    for src in sources:
        half = _stamp_half(src, fwhm_max)
        cx, cy = int(np.round(src.x)), int(np.round(src.y))
        ss = 3 if src.shape_r < 1.0 else 1
        if src.kind == "lens":
            half = max(half, _arc_half(src, fwhm_max))
        parts = {k: _bin(v, ss) for k, v in _profiles(src, ss, half, src.x - cx, src.y - cy).items()}
        if src.kind == "lens":  # resolving the finest clump: the arcs' flux is converged
            parts.update(_arcs(src, half, _arc_half(src, fwhm_max), src.x - cx, src.y - cy))
            (src.extra or {})["mu"] = float(parts["arc_r"].sum())
        x0, y0 = cx - half, cy - half
        sl_y = slice(max(y0, 0), min(y0 + 2 * half + 1, size))
        sl_x = slice(max(x0, 0), min(x0 + 2 * half + 1, size))
        cut = (slice(sl_y.start - y0, sl_y.stop - y0), slice(sl_x.start - x0, sl_x.stop - x0))
        for band in BANDS:
            model = src.flux[band] * parts["main"]
            if src.kind == "lens":
                p = src.extra or {}
                src_r = src.flux["r"] * 10 ** (-0.4 * p["src_dmag"])
                model = model + src_r * p["source"].colour(band) * parts[f"arc_{band}"]
            images[band][sl_y, sl_x] += fftconvolve(model, kernels[band], mode="same")[cut]
    return images


def _invvar_map(rng: np.random.Generator, size: int, level: float) -> np.ndarray:
    """A gently varying inverse-variance map (±10 % across the brick)."""
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    gx, gy = rng.uniform(-0.1, 0.1, size=2)
    return (level * (1.0 + gx * (xx - 0.5) * 2 + gy * (yy - 0.5) * 2)).astype(np.float32)


def _seeing(cfg: MockConfig, brick: Brick) -> dict[str, dict[str, float]]:
    rng = _rng(cfg.seed, brick.name, "seeing")
    fwhm_r = rng.uniform(1.0, 1.6)
    scale = {"g": rng.uniform(1.05, 1.15), "r": 1.0, "z": rng.uniform(0.85, 0.95)}
    depth5 = {"g": rng.uniform(24.0, 24.8), "r": rng.uniform(23.4, 24.2), "z": rng.uniform(22.6, 23.4)}
    beta = rng.uniform(2.8, 4.2)
    return {
        b: {"fwhm": float(fwhm_r * scale[b]), "beta": float(beta), "depth5": float(depth5[b])} for b in BANDS
    }


# -- writing -----------------------------------------------------------------------------


def _wcs_header(brick: Brick, size: int, band: str) -> Any:
    from astropy.io import fits

    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"] = brick.ra, brick.dec
    hdr["CRPIX1"] = hdr["CRPIX2"] = (size + 1) / 2.0
    hdr["CD1_1"], hdr["CD1_2"] = -PIXSCALE / 3600.0, 0.0
    hdr["CD2_1"], hdr["CD2_2"] = 0.0, PIXSCALE / 3600.0
    hdr["CUNIT1"] = hdr["CUNIT2"] = "deg"
    hdr["BRICKNAM"], hdr["BAND"], hdr["FILTER"] = brick.name, band, band
    hdr["BUNIT"] = "nanomaggy"
    hdr["SURVEY"] = "halo-mock-dr10"
    return hdr


def _write_fz(path: Path, data: np.ndarray, header: Any) -> None:
    from astropy.io import fits

    path.parent.mkdir(parents=True, exist_ok=True)
    hdus = fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(data=data, header=header, compression_type="RICE_1")]
    )
    try:
        hdus.writeto(path, overwrite=True)
    except OSError as err:  # astropy's own words keep the errno, not the file
        raise naming(err, path) from None


def _write_checksums(any_coadd: Path) -> None:
    """`legacysurvey-<brick>.sha256sum` beside the coadds, as on DR10's mirror."""
    folder = any_coadd.parent
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(folder.glob("*.fits.fz"))
    ]
    (folder / f"legacysurvey-{folder.name}.sha256sum").write_text("\n".join(lines) + "\n")


def _catalogue(
    cfg: MockConfig,
    brick: Brick,
    brickid: int,
    sources: list[Source],
    seeing: dict[str, dict[str, float]],
    invvar: dict[str, np.ndarray],
) -> Any:
    from astropy.table import Table
    from astropy.wcs import WCS

    from core.schemas import TRACTOR_COLUMNS

    rng = _rng(cfg.seed, brick.name, "catalogue")
    n = len(sources)
    wcs = WCS(_wcs_header(brick, cfg.brick_px, "r"))
    xs = np.array([s.x for s in sources])
    ys = np.array([s.y for s in sources])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    cols: dict[str, Any] = {
        "release": np.full(n, RELEASE),
        "brickid": np.full(n, brickid),
        "brickname": np.full(n, brick.name),
        "objid": np.arange(n),
        "brick_primary": np.ones(n, bool),
        "type": [s.type for s in sources],
        "ra": ra,
        "dec": dec,
        "bx": xs,
        "by": ys,
        "ebv": np.full(n, rng.uniform(0.015, 0.05)),
        "maskbits": np.where(rng.random(n) < 0.02, 2, 0),
    }
    ix = np.clip(np.round(xs).astype(int), 0, cfg.brick_px - 1)
    iy = np.clip(np.round(ys).astype(int), 0, cfg.brick_px - 1)
    for band in BANDS:
        psf = moffat_kernel(seeing[band]["fwhm"], seeing[band]["beta"], PIXSCALE)
        nea = noise_equivalent_area(psf)
        local = invvar[band][iy, ix].astype(np.float64)
        psfdepth = local / nea
        cols[f"psfsize_{band}"] = np.full(n, seeing[band]["fwhm"])
        cols[f"psfdepth_{band}"] = psfdepth
        cols[f"galdepth_{band}"] = psfdepth * _galaxy_depth_factor(seeing[band]["fwhm"], seeing[band]["beta"])
        cols[f"nobs_{band}"] = rng.integers(2, 6, size=n)
        true = np.array([s.flux[band] for s in sources])
        cols[f"flux_{band}"] = true + rng.normal(0, 1, n) / np.sqrt(psfdepth)
        cols[f"flux_ivar_{band}"] = psfdepth
    w1 = np.array([s.flux["w1"] for s in sources])
    w1_sigma = 10 ** ((22.5 - 21.0) / 2.5) / 5.0  # unWISE W1 5σ ≈ 21.0
    cols["flux_w1"] = w1 + rng.normal(0, w1_sigma, n)
    cols["flux_ivar_w1"] = np.full(n, 1 / w1_sigma**2)
    e1, e2 = q_theta_to_tractor(np.array([s.q for s in sources]), np.array([s.theta for s in sources]))
    cols["shape_r"] = np.array([s.shape_r for s in sources])
    cols["shape_e1"], cols["shape_e2"] = e1, e2
    cols["sersic"] = np.array([s.sersic for s in sources])
    table = Table()
    for name, dtype, _unit in TRACTOR_COLUMNS:
        table[name] = np.asarray(cols[name]).astype(dtype)
    return table


def _write_catalogue(table: Any, path: Path) -> None:
    """A Tractor FITS table, with DR10's unit strings in TUNITn."""
    from astropy.io import fits

    from core.schemas import TRACTOR_COLUMNS

    hdu = fits.BinTableHDU(table, name="TRACTOR")
    for i, (name, _dtype, unit) in enumerate(TRACTOR_COLUMNS, start=1):
        assert hdu.header[f"TTYPE{i}"] == name
        if unit:
            hdu.header[f"TUNIT{i}"] = unit
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def noise_sigma(model: np.ndarray, invvar: np.ndarray) -> np.ndarray:
    """Each pixel's noise, (3, n, n): the sky's (1/invvar) and the sources' photons (model / g,
    g the injector's effective gain from the shipped sky brightness), so a planted arc is as
    noisy as an injected one of the same flux."""
    from core.config import SkyBrightness
    from jobs.lensing.injection import effective_gain

    sky = SkyBrightness()
    gain = effective_gain(invvar, tuple(getattr(sky, b) for b in BANDS))
    return np.sqrt(1.0 / invvar + np.clip(model, 0, None) / gain)


def _galaxy_depth_factor(fwhm: float, beta: float) -> float:
    """galdepth / psfdepth: the noise-equivalent area of a round exponential galaxy of
    r_e = 0.45″ (DR10's convention) relative to a point source's."""
    from scipy.signal import fftconvolve

    psf = moffat_kernel(fwhm, beta, PIXSCALE)
    half = psf.shape[0] // 2
    axis = np.arange(-half, half + 1) * PIXSCALE
    x, y = np.meshgrid(axis, axis)
    gal = np.exp(-np.hypot(x, y) / (0.45 / 1.678))
    conv = fftconvolve(gal / gal.sum(), psf, mode="same")
    conv /= conv.sum()
    return noise_equivalent_area(psf) / noise_equivalent_area(conv)


def write_brick(cfg: MockConfig, brick: Brick, index: int, root: Path) -> tuple[int, list[dict[str, Any]]]:
    """Write one brick's catalogue (and images); return its object count and the truth rows
    of its planted objects."""
    sources = draw_sources(cfg, brick, index)
    seeing = _seeing(cfg, brick)
    rng = _rng(cfg.seed, brick.name, "noise")
    invvar = {}
    for band in BANDS:
        psf = moffat_kernel(seeing[band]["fwhm"], seeing[band]["beta"], PIXSCALE)
        sigma_flux = 10 ** ((22.5 - seeing[band]["depth5"]) / 2.5) / 5.0
        sigma_pix = sigma_flux / np.sqrt(noise_equivalent_area(psf))  # σ_flux = σ_pix √NEA
        invvar[band] = _invvar_map(rng, cfg.brick_px, 1.0 / sigma_pix**2)
    if cfg.images:
        models = render_brick(cfg, brick, sources, seeing, invvar)
        sigma = noise_sigma(np.stack([models[b] for b in BANDS]), np.stack([invvar[b] for b in BANDS]))
        for i, band in enumerate(BANDS):
            noise = rng.normal(0.0, 1.0, models[band].shape) * sigma[i]
            header = _wcs_header(brick, cfg.brick_px, band)
            header["PSF_FWHM"] = (seeing[band]["fwhm"], "Moffat FWHM, arcsec")
            header["PSF_BETA"] = (seeing[band]["beta"], "Moffat beta")
            _write_fz(
                root / coadd_path(brick.name, "image", band),
                (models[band] + noise).astype(np.float32),
                header,
            )
            _write_fz(
                root / coadd_path(brick.name, "invvar", band),
                invvar[band],
                _wcs_header(brick, cfg.brick_px, band),
            )
        _write_checksums(root / coadd_path(brick.name, "image", "g"))
    table = _catalogue(cfg, brick, index + 1, sources, seeing, invvar)
    _write_catalogue(table, root / tractor_path(brick.name))
    truth = []
    for objid, src in enumerate(sources):
        if src.kind in ("lens", *LOOKALIKES):
            extra = src.extra or {}
            row = {
                "kind": src.kind,
                "brickname": brick.name,
                "objid": objid,
                "ra": float(table["ra"][objid]),
                "dec": float(table["dec"][objid]),
                "theta_e_arcsec": extra.get("theta_e", 0.0),
                "mu": extra.get("mu", 0.0),
                "src_dmag": extra.get("src_dmag", 0.0),
                "grade": extra.get("grade", ""),
            }
            truth.append(row)
    return len(sources), truth


def _write_bricks_table(bricks: list[Brick], root: Path, size: int) -> None:
    from astropy.table import Table

    half = size * PIXSCALE / 3600.0 / 2.0
    table = Table()
    table["brickname"] = [b.name for b in bricks]
    table["brickid"] = np.arange(1, len(bricks) + 1, dtype=np.int32)
    table["ra"] = [b.ra for b in bricks]
    table["dec"] = [b.dec for b in bricks]
    table["ra1"] = [b.ra - half / np.cos(np.radians(b.dec)) for b in bricks]
    table["ra2"] = [b.ra + half / np.cos(np.radians(b.dec)) for b in bricks]
    table["dec1"] = [b.dec - half for b in bricks]
    table["dec2"] = [b.dec + half for b in bricks]
    table.write(root / "survey-bricks.fits.gz", format="fits", overwrite=True)


def _write_one(args: tuple[MockConfig, Brick, int, Path]) -> tuple[int, list[dict[str, Any]]]:
    return write_brick(*args)


def _write_bricks(cfg: MockConfig, bricks: list[Brick], root: Path) -> Any:
    """Write the bricks (each from its own seeded generators, so the order does not matter)
    on up to two processes; yield (index, brick, result) in brick order."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(cfg, brick, index, root) for index, brick in enumerate(bricks)]
    workers = min(2, os.cpu_count() or 1, len(bricks))
    if workers <= 1:
        for (_, brick, index, _), result in zip(jobs, map(_write_one, jobs), strict=True):
            yield index, brick, result
        return
    import lenstronomy.LensModel.lens_model  # noqa: F401 - imported once, before the fork
    import scipy.signal  # noqa: F401

    from jobs.runtime.allocator import keep_freed_memory

    with ProcessPoolExecutor(max_workers=workers, initializer=keep_freed_memory) as pool:
        for (_, brick, index, _), result in zip(jobs, pool.map(_write_one, jobs), strict=True):
            yield index, brick, result


def run(cfg: MockConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Write the mock survey into `<workspace>/survey` (and its truth into `truth/`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if cfg.bricks < 1 or cfg.brick_px < 64:
        raise stage_runtime.StageError("need at least 1 brick of at least 64 px")
    survey, truth_dir = survey_dir(workspace), workspace / TRUTH_DIR
    digest = stage_runtime.fingerprint("mock_survey", asdict(cfg))
    if not force and stage_runtime.up_to_date(survey, digest):
        stage_runtime.unchanged(f"demo: the mock survey in {survey} is")
        if (truth_dir / "planted.parquet").exists():
            write_catalogs(workspace, pq.read_table(truth_dir / "planted.parquet").to_pylist())
        return {"outputs": [str(survey), str(truth_dir)], "skipped": True}
    bricks = choose_bricks(cfg)
    truth: list[dict[str, Any]] = []
    n_objects = 0
    with stage_runtime.atomic_dir(survey, digest) as tmp:
        for index, brick, (n, planted) in _write_bricks(cfg, bricks, tmp):
            n_objects += n
            truth += planted
            print(f"brick {index + 1}/{len(bricks)} {brick.name} written", flush=True)
        _write_bricks_table(bricks, tmp, cfg.brick_px)
        with stage_runtime.atomic_dir(truth_dir, digest) as ttmp:
            pq.write_table(pa.Table.from_pylist(truth), ttmp / "planted.parquet")
    catalogs = write_catalogs(workspace, truth)
    lenses = [t for t in truth if t["kind"] == "lens"]
    return {
        "outputs": [str(survey), str(truth_dir), *catalogs],
        "bricks": len(bricks),
        "objects": n_objects,
        "planted_lenses": len(lenses),
        "false_positive_lookalikes": len(truth) - len(lenses),
    }


def write_catalogs(workspace: Path, truth: list[dict[str, Any]]) -> list[str]:
    """The lookalike and known-lens catalogues a DR10 user would bring, from the truth."""
    from core.layout import known_lenses_path, lookalikes_path
    from jobs.survey.catalogs import write_csv

    looks = [t for t in truth if t["kind"] in LOOKALIKES]
    write_csv(
        lookalikes_path(workspace),
        ["name", "ra", "dec", "population"],
        [
            [f"{t['kind']}-{t['brickname']}-{t['objid']}", t["ra"], t["dec"], LOOKALIKES[t["kind"]]]
            for t in looks
        ],
        "Lookalikes of the halo mock survey: galaxies that are not lenses but look like them.",
    )
    lenses = [t for t in truth if t["kind"] == "lens"]
    write_csv(
        known_lenses_path(workspace),
        ["name", "ra", "dec", "grade", "reference"],
        [
            [
                f"mock-{t['brickname']}-{t['objid']}",
                t["ra"],
                t["dec"],
                t["grade"],
                f"halo mock survey: planted lens, theta_E {t['theta_e_arcsec']:.2f} arcsec",
            ]
            for t in lenses
        ],
        "Known lenses of this workspace: the halo mock survey's planted lenses.",
    )
    return [str(lookalikes_path(workspace)), str(known_lenses_path(workspace))]
