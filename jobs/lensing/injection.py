"""The per-partition function of `inject`: manifest rows -> stamp rows, one function for the
local runner's processes and Spark's `mapInArrow` alike.

For every row: its grz cutout (jobs/survey/coadd_reader.py), flagged `ok = false` with a reason when it
leaves the brick, holds non-finite pixels, or a band has no data at the galaxy (`nobs = 0`,
`psfsize = 0`, which DR10 writes together, or zero invvar): an arc is never injected without
its PSF. For positives, the arcs of the whole partition rendered at once by the chosen engine
(jobs/lensing/), each band convolved with its PSF (a Moffat from `psfsize_<band>` by
default, jobs/lensing/psf.py; at the supersampled scale where the arc is), plus the arc's own
photon noise, and added on the coadd's quantisation lattice (jobs/survey/quantization.py). Controls
get nothing added: their stamps are their cutouts, bit for bit, so positives differ from
controls by the arc alone. Known lenses (`known_tier`
set: a known lens's own galaxy) are cut out exactly as controls are: real pixels, untouched.

Photon noise: a coadd's invvar holds the sky's (and read) noise, not the sources'. In a
sky-limited coadd σ² = 1/invvar = B/g, B the sky per pixel (nanomaggies) and g the electrons
per nanomaggy, so the effective gain is g = B · invvar, with B from a typical dark-sky
brightness per band (`[injection] sky_mag_arcsec2`). The arc's variance is then arc/g per
pixel (Gaussian, as Poisson at these counts).

Each row records:
- `mu`: the arc's flux in the stamp (r band, after the PSF, before noise) over the source's;
- `arc_mag_r`: the arc's own r magnitude;
- `arc_snr`: Σ arc / √(Σ σ²) over the r pixels where the arc's own S/N (arc × √invvar)
  exceeds 1, σ² = 1/invvar + arc/g (SLSim's definition after Holloway et al. 2023); 0 when
  no pixel qualifies;
- `theta_over_psf`: θE / psfsize_r; `supersample`: the sub-pixels per pixel side used;
- the source's drawn light (`src_mag_g/r/z`, `src_n`) as the manifest gave it."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from core.layout import under
from core.schemas import mag_to_nanomaggies, nanomaggies_to_mag
from jobs.lensing import catalogue, engines, sources
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.psf import pixelised_kernel, read_pixelised, supersampled
from jobs.survey.coadd_reader import BrickUnavailable, CoaddReader, Cutout
from jobs.survey.layout import BANDS, PIXSCALE

CARRIED = (
    "task_id",
    "split",
    "brickname",
    "objid",
    "ra",
    "dec",
    "is_control",
    "config_id",
    "theta_e_arcsec",
    "src_dmag",
    "src_reff_arcsec",
    "src_e",
    "shear",
    "src_n",
    "src_mag_g",
    "src_mag_r",
    "src_mag_z",
    "src_clumps",  # a structured source's star-forming clumps (0: none, or a smooth source)
    "src_cat_ident",  # a catalogue source's galaxy ("" for a parametric one)
    "psfsize_r",
    "psfdepth_r",
    "unit",  # the independent unit (objects closer than 1.5″ are one): what every count counts
    "known_tier",  # a known lens's own galaxy (its catalogue grade's tier): a positive, nothing added
)
DEFAULT_SKY = (22.04, 20.91, 18.46)  # g, r, z mag/arcsec² (core.config.SkyBrightness)


@dataclass(frozen=True)
class InjectSettings:
    """Everything a partition needs, small enough to ship to a Spark executor as JSON."""

    cache: str
    psf_model: str = "moffat"
    moffat_beta: float = 3.5
    supersample: int = 0  # 0: per task from its source (ArcParams.supersample)
    stamp_size: int = 64
    arc_pixels: str = "lattice"  # or "float": the seed's arcs, off the coadd's lattice (ablation)
    arc_noise: bool = True
    sky_mag_arcsec2: tuple[float, float, float] = DEFAULT_SKY
    engine: str = "lenstronomy"
    device: str = "cpu"
    psf_files: tuple[str, ...] = ()  # psf_model "pixel": g, r, z files (absolute paths)
    source_catalogue: str = ""  # the grid's real galaxies (source mode "catalogue"), a path

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_injection(
        cls,
        injection: dict[str, Any],
        cache: str,
        supersample: int | None = None,
        engine: str = "lenstronomy",
        device: str = "cpu",
        root: str = "",
        source_catalogue: str = "",
    ) -> InjectSettings:
        """From a variant's `[injection]` table (core.config.Injection, dumped): the one way
        both the local runner and the Spark/EMR entry point make their settings; `root` the
        workspace that relative PSF files are under."""
        sky = injection["sky_mag_arcsec2"]
        files = injection.get("psf_files") or {}
        psf_files = ()
        if injection["psf_model"] == "pixel":
            psf_files = tuple(under(root, files[b]) if root else files[b] for b in BANDS)
        return cls(
            cache=cache,
            psf_model=injection["psf_model"],
            moffat_beta=float(injection["moffat_beta"]),
            supersample=int(supersample or 0),
            stamp_size=int(injection["stamp_size"]),
            arc_pixels=injection["arc_pixels"],
            arc_noise=bool(injection["arc_noise"]),
            sky_mag_arcsec2=(float(sky["g"]), float(sky["r"]), float(sky["z"])),
            engine=engine,
            device=device,
            psf_files=psf_files,
            source_catalogue=source_catalogue,
        )

    @classmethod
    def from_json(cls, text: str) -> InjectSettings:
        values = json.loads(text)
        values["sky_mag_arcsec2"] = tuple(values["sky_mag_arcsec2"])
        values["psf_files"] = tuple(values.get("psf_files", ()))
        return cls(**values)


def output_schema(stamp_size: int) -> Any:
    import pyarrow as pa

    floats = {name: pa.float64() for name in CARRIED}
    types = {
        **floats,
        "task_id": pa.int64(),
        "split": pa.string(),
        "brickname": pa.string(),
        "objid": pa.int64(),
        "is_control": pa.bool_(),
        "config_id": pa.int32(),
        "psfsize_r": pa.float32(),
        "psfdepth_r": pa.float32(),
        "unit": pa.string(),
        "known_tier": pa.string(),
        "src_clumps": pa.int16(),
        "src_cat_ident": pa.string(),
    }
    fields = [
        *((name, types[name]) for name in CARRIED),
        ("theta_over_psf", pa.float64()),
        ("supersample", pa.int16()),
        ("mu", pa.float64()),
        ("arc_mag_r", pa.float64()),
        ("arc_snr", pa.float64()),
        ("ok", pa.bool_()),
        ("fail_reason", pa.string()),
        ("stamp", pa.binary()),
    ]
    return pa.schema(fields, metadata=stamp_contract.arrow_metadata((3, stamp_size, stamp_size)))


def effective_gain(invvar: np.ndarray, sky_mag_arcsec2: tuple[float, ...]) -> np.ndarray:
    """Electrons per nanomaggy per pixel, (3, n, n): sky per pixel × invvar (module doc)."""
    sky = mag_to_nanomaggies(sky_mag_arcsec2) * PIXSCALE**2
    return invvar * sky[:, None, None]


def arc_snr(arc_r: np.ndarray, invvar_r: np.ndarray, gain_r: np.ndarray | None = None) -> float:
    """Σ arc / √(Σ σ²) over pixels where the arc's own S/N (arc × √invvar) exceeds 1."""
    good = invvar_r > 0
    sn = np.where(good, arc_r * np.sqrt(np.where(good, invvar_r, 0.0)), 0.0)
    mask = sn > 1.0
    if not mask.any():
        return 0.0
    variance = 1.0 / invvar_r[mask]
    if gain_r is not None:
        variance = variance + np.clip(arc_r[mask], 0, None) / gain_r[mask]
    return float(arc_r[mask].sum() / np.sqrt(variance.sum()))


def no_data(row: dict[str, Any], cut: Cutout) -> str | None:
    """Why a band has no data at the galaxy, or None."""
    half = cut.stamp.shape[-1] // 2
    for i, band in enumerate(BANDS):
        nobs, psf = row.get(f"nobs_{band}"), row.get(f"psfsize_{band}")
        if nobs is not None and nobs <= 0:
            return f"no-data: nobs_{band} = {nobs} at this galaxy (no {band} exposures)"
        if psf is None or not np.isfinite(psf) or psf <= 0:
            return f"no-data: psfsize_{band} = {psf} at this galaxy (no PSF to convolve the arc with)"
        if cut.invvar is not None and not cut.invvar[i, half, half] > 0:
            return f"no-data: invvar_{band} = 0 at this galaxy's pixel"
    return None


class _Workers:
    """Per process and settings: the coadd reader, the engine, and PSF kernels by FWHM."""

    def __init__(self, settings: InjectSettings) -> None:
        self.settings = settings
        self.reader = CoaddReader(settings.cache, settings.stamp_size)
        self.engine = engines.engine(settings.engine, settings.stamp_size, settings.device)
        self._kernels: OrderedDict[tuple[str, float], np.ndarray] = OrderedDict()
        self._images = (
            dict(zip(BANDS, map(pixelised, settings.psf_files), strict=True)) if settings.psf_files else {}
        )
        self.galaxies = catalogue.load(settings.source_catalogue) if settings.source_catalogue else None

    def kernel(self, fwhm: float, band: str) -> np.ndarray:
        """The band's PSF at the supersampled scale (psf.supersampled, or the band's file's
        shape stretched to `fwhm`); FWHM quantised to 0.001″, far below DR10's precision."""
        key = (band, round(float(fwhm), 3))
        found = self._kernels.get(key)
        if found is None:
            s = self.settings
            if band in self._images:
                image, sampling = self._images[band]
                found = pixelised_kernel(image, sampling, key[1], PIXSCALE)
            else:
                found = supersampled(s.psf_model, key[1], PIXSCALE, s.moffat_beta)
            self._kernels[key] = found
            if len(self._kernels) > 512:
                self._kernels.popitem(last=False)
        return found


def pixelised(path: str) -> tuple[np.ndarray, float]:
    """A band's PSF file (psf.read_pixelised), its problem named with its path."""
    try:
        return read_pixelised(path)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"PSF file {path}: {err}") from None


_STATE: dict[str, _Workers] = {}


def _workers_for(settings: InjectSettings) -> _Workers:
    key = settings.to_json()
    if key not in _STATE:
        _STATE.clear()
        _STATE[key] = _Workers(settings)
    return _STATE[key]


def inject_batch(batch: Any, settings: InjectSettings) -> Any:
    """Manifest rows (an Arrow RecordBatch or Table) -> stamp rows (a RecordBatch)."""
    import pyarrow as pa

    workers = _workers_for(settings)
    size = settings.stamp_size
    rows = batch.to_pylist()
    n = len(rows)
    stamps = [np.zeros((3, size, size), dtype=np.float32) for _ in range(n)]
    cuts: list[Cutout | None] = [None] * n
    ok, reasons = [True] * n, [None] * n
    for i, row in enumerate(rows):
        try:
            cut = workers.reader.cutout(row["brickname"], row["ra"], row["dec"])
            stamps[i], cuts[i] = cut.stamp, cut
            if not cut.inside:
                ok[i], reasons[i] = False, f"edge: the {size}x{size} stamp leaves brick {row['brickname']}"
            elif not (np.isfinite(cut.stamp).all() and np.isfinite(cut.invvar).all()):
                bad = int((~np.isfinite(cut.stamp)).sum())
                ok[i], reasons[i] = (
                    False,
                    f"non-finite: {bad} NaN or infinite pixel(s) in brick {row['brickname']}",
                )
            else:
                reason = no_data(row, cut)
                if reason:
                    ok[i], reasons[i] = False, reason
        except BrickUnavailable as err:
            ok[i], reasons[i] = False, str(err)
        except Exception as err:  # one bad row must not stop the partition
            ok[i], reasons[i] = False, f"{type(err).__name__}: {err}"
    measured = {"mu": [None] * n, "arc_mag_r": [None] * n, "arc_snr": [0.0] * n, "supersample": [None] * n}
    todo = [i for i in range(n) if ok[i] and not rows[i]["is_control"] and not rows[i].get("known_tier")]
    for i, reason in _add_arcs(workers, rows, cuts, stamps, todo, measured).items():
        ok[i], reasons[i] = False, reason
    out: dict[str, list[Any]] = {name: [row.get(name) for row in rows] for name in CARRIED}
    out["theta_over_psf"] = [
        r["theta_e_arcsec"] / r["psfsize_r"] if r["psfsize_r"] and r["psfsize_r"] > 0 else None for r in rows
    ]
    out.update(measured)
    out["ok"], out["fail_reason"] = ok, reasons
    out["stamp"] = [s.astype(np.float32, copy=False).tobytes() for s in stamps]
    return pa.RecordBatch.from_pydict(out, schema=output_schema(size))


def inject_partition(batch: Any, settings_json: str) -> Any:
    """`inject_batch` with its settings as JSON: the local runner's and Spark's entry."""
    return inject_batch(batch, InjectSettings.from_json(settings_json))


def _add_arcs(
    workers: _Workers,
    rows: list[dict[str, Any]],
    cuts: list[Any],
    stamps: list[np.ndarray],
    todo: list[int],
    measured: dict[str, list[Any]],
) -> dict[int, str]:
    """Render the arcs of rows `todo` at once and add them; returns the rows that failed."""
    failed: dict[int, str] = {}
    if not todo:
        return failed
    tasks = {name: [rows[i].get(name) for i in todo] for name in rows[0]}
    fluxes = sources.fluxes(tasks)  # (n, components, bands)
    total = fluxes.sum(axis=1)
    bad = ~np.isfinite(fluxes).all(axis=(1, 2)) | (fluxes < 0).any(axis=(1, 2)) | (total <= 0).any(axis=1)
    for j in np.flatnonzero(bad):
        failed[todo[j]] = f"no-source: source fluxes {total[j].tolist()} (is the lens's flux_r positive?)"
    keep = np.flatnonzero(~bad)
    if keep.size == 0:
        return failed
    todo = [todo[j] for j in keep]
    tasks = {name: [values[j] for j in keep] for name, values in tasks.items()}
    fluxes, total = fluxes[keep], total[keep]
    dx = np.array([cuts[i].dx for i in todo])
    dy = np.array([cuts[i].dy for i in todo])
    images = None
    if any(i is not None and i >= 0 for i in tasks.get("src_cat_index", [])):
        images = []
        for j, index in enumerate(tasks["src_cat_index"]):
            try:
                if workers.galaxies is None:  # never a catalogue row drawn as a Sérsic of no size
                    raise catalogue.CatalogueError("the grid's source catalogue was not given to this runner")
                workers.galaxies.check_entry(index, tasks["src_cat_ident"][j])
                images.append((workers.galaxies.image(index), float(workers.galaxies.scale[index])))
            except (catalogue.CatalogueError, IndexError) as err:
                failed[todo[j]] = f"no-source: {err}"
                images.append(None)
        keep = [j for j, found in enumerate(images) if found is not None]
        todo, images = [todo[j] for j in keep], [images[j] for j in keep]
        tasks = {name: [values[j] for j in keep] for name, values in tasks.items()}
        fluxes, total, dx, dy = fluxes[keep], total[keep], dx[keep], dy[keep]
        if not todo:
            return failed
    params = ArcParams.from_tasks(tasks, dx, dy, images)
    s = workers.settings
    ss = np.full(len(todo), s.supersample) if s.supersample else params.supersample()
    half = fine_half_width(params, s.stamp_size)
    kernels = [tuple(workers.kernel(rows[i][f"psfsize_{b}"], b) for b in BANDS) for i in todo]
    try:
        arcs = workers.engine.arcs(params, fluxes, kernels, ss, half)
    except Exception:  # noqa: BLE001 - find the row that breaks it; the others go on
        arcs = np.full((len(todo), len(BANDS), s.stamp_size, s.stamp_size), np.nan)
        for j in range(len(todo)):
            one = slice(j, j + 1)
            try:
                arcs[j] = workers.engine.arcs(
                    params.take(one), fluxes[one], kernels[one], ss[one], half[one]
                )[0]
            except Exception as err:  # noqa: BLE001
                failed[todo[j]] = f"{type(err).__name__}: {err}"
    for j, i in enumerate(todo):
        arc, cut = arcs[j], cuts[i]
        if i in failed:
            continue
        if not np.isfinite(arc).all():
            failed[i] = "non-finite: the rendered arc holds NaN or infinite pixels"
            continue
        rng = np.random.default_rng(rows[i]["seed"])
        gain = effective_gain(cut.invvar, s.sky_mag_arcsec2) if s.arc_noise else None
        observed = arc
        if gain is not None:
            sigma = np.sqrt(np.clip(arc, 0, None) / np.where(gain > 0, gain, np.inf))
            observed = arc + rng.standard_normal(arc.shape) * sigma
        if s.arc_pixels == "float":
            stamps[i] = (cut.stamp + observed).astype(np.float32)
        else:
            stamps[i] = cut.add_arc(observed, rng)
        arc_flux = float(arc[1].sum())
        measured["mu"][i] = arc_flux / float(total[j, 1])
        measured["arc_mag_r"][i] = float(nanomaggies_to_mag(arc_flux)) if arc_flux > 0 else None
        measured["arc_snr"][i] = arc_snr(arc[1], cut.invvar[1], None if gain is None else gain[1])
        measured["supersample"][i] = int(ss[j])
    return failed
