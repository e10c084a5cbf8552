"""`inject` (seed Phase 4c): grz cutouts + lenstronomy-rendered arcs -> stamps parquet.

For every manifest row: a `stamp_size`² grz cutout centred on the galaxy through the coadd's
WCS (a stamp that leaves the brick is flagged `ok = false`, zero-padded, never crashed on);
for positives, the lensed source rendered with lenstronomy — SIE + SHEAR at the galaxy centre
with the galaxy's axis ratio and angle, a SERSIC_ELLIPSE source (n = 1) with the task's R_eff,
ellipticity and offset — convolved with the PSF at that position (Gaussian from
`psfsize_<band>`, or Moffat with the variant's β as a PIXEL kernel) and added to the cutout
on the coadd's own quantisation lattice (jobs/quantization.py: RICE coadds hold values on a
per-tile lattice, and a float arc breaks it, a shortcut a CNN can learn). Controls get
nothing added: their stamps are their cutouts, bit for bit. Positives and controls therefore
share their pixel-value statistics; `jobs/shortcut_audit.py` checks it after every run.

Fluxes: the unlensed source's r flux is the galaxy's `flux_r` × 10^(−0.4 src_dmag) (DESIGN:
"source magnitude fainter than lens"); g and z follow from the source colour (g − r, r − z;
configurable). The arc's flux is μ times the source's. Each row records:

- `mu`: the arc's flux in the stamp (r band, after the PSF) over the source's total flux;
- `arc_mag_r`: the arc's own r magnitude;
- `arc_snr`: Σ arc / √(Σ σ²) over the r-band pixels where the arc's own per-pixel S/N
  (arc × √invvar) exceeds 1, σ² = 1/invvar from the coadd (SLSim's definition after Holloway
  et al. 2023, without the arc's Poisson term, which DR10's coadds do not give); 0 when no
  pixel qualifies;
- `theta_over_psf`: θE / psfsize_r, the resolvability the seed found lacking in Gen-1.

One per-partition function (`inject_batch`) serves the local runner (a process pool over
manifest partitions; parts written atomically, so a killed run resumes without duplicates)
and the Spark runner (`mapInArrow`, jobs/spark_pipeline.py).

    python -m jobs.inject --workspace DIR --variant V [--grid G] [--runner local|spark]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from core.layout import stamps_dir
from jobs import stage_runtime
from jobs.psf import moffat_kernel
from jobs.shapes import lenstronomy_e1e2
from jobs.survey_layout import BANDS, PIXSCALE, coadd_path

ROWS_PER_PART = 2000
ROW_GROUP = 256  # the training loader's unit of sharding across ranks and workers
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
    "psfsize_r",
    "psfdepth_r",
)


@dataclass(frozen=True)
class InjectSettings:
    """Everything a partition needs, small enough to ship to a Spark executor as JSON."""

    cache: str
    psf_model: str = "gaussian"
    moffat_beta: float = 3.5
    supersample: int = 1
    stamp_size: int = 64
    src_g_r: float = 0.2
    src_r_z: float = 0.2
    arc_pixels: str = "lattice"  # or "float": the seed's arcs, off the coadd's lattice (ablation)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> InjectSettings:
        return cls(**json.loads(text))


def output_schema(stamp_size: int) -> Any:
    import pyarrow as pa

    fields = [
        ("task_id", pa.int64()),
        ("split", pa.string()),
        ("brickname", pa.string()),
        ("objid", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("is_control", pa.bool_()),
        ("config_id", pa.int32()),
        ("theta_e_arcsec", pa.float64()),
        ("src_dmag", pa.float64()),
        ("src_reff_arcsec", pa.float64()),
        ("src_e", pa.float64()),
        ("shear", pa.float64()),
        ("psfsize_r", pa.float32()),
        ("psfdepth_r", pa.float32()),
        ("theta_over_psf", pa.float64()),
        ("mu", pa.float64()),
        ("arc_mag_r", pa.float64()),
        ("arc_snr", pa.float64()),
        ("ok", pa.bool_()),
        ("fail_reason", pa.string()),
        ("stamp", pa.binary()),
    ]
    return pa.schema(fields, metadata=stamp_contract.arrow_metadata((3, stamp_size, stamp_size)))


# -- coadds ------------------------------------------------------------------------------


class BrickUnavailable(Exception):
    """A brick's coadds cannot be read: its rows fail with this reason."""


@dataclass
class Cutout:
    """A galaxy's grz cutout, its r-band invvar, where the galaxy sits in it, and the
    quantisation lattice each band's pixels sit on (see jobs/quantization.py)."""

    stamp: np.ndarray  # (3, size, size) float32
    invvar_r: np.ndarray  # (size, size)
    inside: bool
    dx: float  # the galaxy's offset from the centre pixel, arcsec (x, y along the pixel axes)
    dy: float
    lattices: tuple[tuple[str, Any], ...] = ()  # per band: (method, region)
    covered: bool = True  # whether the position itself lies on the brick's image

    def add_arc(self, arc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The stamp with `arc` added on each band's lattice, as the coadd would hold it."""
        from jobs.quantization import requantise

        if not self.lattices:
            return (self.stamp + arc).astype(np.float32)
        return np.stack(
            [
                requantise(self.stamp[i], arc[i], region, method, rng)
                for i, (method, region) in enumerate(self.lattices)
            ]
        )


FULL_READ_PIXELS = 2048 * 2048


class _Section:
    """Lazy 2-D access to an image HDU. A DR10-sized image (3600², ~40 targets a brick) is
    read by section: only the tiles a cutout touches are decompressed. A small image is
    decompressed whole at the first cutout: astropy spends ~0.25 ms of Python per tile, so
    ~60 cutouts of 64 rows cost more than the whole of a 600-row image. `lattice` is the
    HDU's quantisation (per-tile scale and zero, dither)."""

    def __init__(self, hdu: Any, lattice: Any) -> None:
        self.hdu, self.shape, self.lattice = hdu, tuple(hdu.shape), lattice
        self.whole: np.ndarray | None = None

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.shape[0] * self.shape[1] > FULL_READ_PIXELS:
            return np.asarray(self.hdu.section[key], dtype=np.float32)
        if self.whole is None:
            self.whole = np.asarray(self.hdu.data, dtype=np.float32)
        return self.whole[key]


class CoaddReader:
    """Cutouts from the coadd cache. A few bricks are kept open (partitions are brick-sorted),
    and each galaxy's cutout is made once however many tasks it serves."""

    def __init__(self, cache: str, size: int, keep_bricks: int = 2, keep_cutouts: int = 2048) -> None:
        self.cache, self.size = cache, size
        self.keep_bricks, self.keep_cutouts = keep_bricks, keep_cutouts
        self._bricks: OrderedDict[str, Any] = OrderedDict()
        self._cutouts: OrderedDict[tuple[str, float, float], Cutout] = OrderedDict()

    def cutout(self, brick: str, ra: float, dec: float) -> Cutout:
        key = (brick, ra, dec)
        found = self._cutouts.get(key)
        if found is None:
            found = self._cut(brick, ra, dec)
            self._cutouts[key] = found
            if len(self._cutouts) > self.keep_cutouts:
                self._cutouts.popitem(last=False)
        return found

    def _cut(self, brick: str, ra: float, dec: float) -> Cutout:
        sections, wcs = self._brick(brick)
        x, y = (float(v) for v in wcs.all_world2pix(ra, dec, 0))
        size = self.size
        planes = []
        for kind, band in (*(("image", b) for b in BANDS), ("invvar", "r")):
            try:
                plane, inside, x0, y0 = cutout(sections[kind, band], x, y, size)
            except Exception as err:  # a damaged tile shows only when it is decompressed
                uri = self._uri(brick, kind, band)
                raise BrickUnavailable(f"{uri}: unreadable FITS ({type(err).__name__}: {err})") from None
            planes.append(plane)
        half = size // 2
        ny, nx = sections["image", "r"].shape
        covered = -0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5
        lattices = tuple(
            (sections["image", b].lattice.method, sections["image", b].lattice.region(y0, x0, size))
            for b in BANDS
        )
        return Cutout(
            np.stack(planes[:3]),
            planes[3],
            inside,
            (x - x0 - half) * PIXSCALE,
            (y - y0 - half) * PIXSCALE,
            lattices,
            covered,
        )

    def _uri(self, brick: str, kind: str, band: str) -> str:
        return f"{self.cache.rstrip('/')}/{coadd_path(brick, kind, band)}"

    def _brick(self, brick: str) -> tuple[dict[tuple[str, str], _Section], Any]:
        if brick not in self._bricks:
            try:
                self._bricks[brick] = self._open(brick)
            except BrickUnavailable as err:
                self._bricks[brick] = err
            while len(self._bricks) > self.keep_bricks:
                old = self._bricks.popitem(last=False)[1]
                if not isinstance(old, BrickUnavailable):
                    for hdus in old[2]:
                        hdus.close()
        found = self._bricks[brick]
        if isinstance(found, BrickUnavailable):
            raise found
        return found[0], found[1]

    def _open(self, brick: str) -> tuple[dict[tuple[str, str], _Section], Any, list[Any]]:
        import io

        from astropy.io import fits
        from astropy.wcs import WCS

        from core import storage

        sections, wcs, opened = {}, None, []
        for kind, bands in (("image", BANDS), ("invvar", ("r",))):  # arc_snr needs r only
            for band in bands:
                uri = self._uri(brick, kind, band)
                try:
                    data = storage.read_bytes(uri) if storage.is_s3(uri) else None
                    hdus = fits.open(uri if data is None else io.BytesIO(data), memmap=False)
                    opened.append(hdus)
                    index, hdu = next(
                        (i, h) for i, h in enumerate(hdus) if h.is_image and h.header.get("NAXIS") == 2
                    )
                    source = uri if data is None else io.BytesIO(data)
                    lattice = _lattice(source, index, hdu) if kind == "image" else None
                    sections[kind, band] = _Section(hdu, lattice)
                    if wcs is None:
                        wcs = WCS(hdu.header)
                except FileNotFoundError:
                    raise BrickUnavailable(
                        f"{uri}: not in the coadd cache (run `halo stage coadds`)"
                    ) from None
                except Exception as err:  # astropy raises many kinds for a damaged file
                    raise BrickUnavailable(f"{uri}: unreadable FITS ({type(err).__name__}: {err})") from None
        return sections, wcs, opened


def _lattice(source: Any, index: int, hdu: Any) -> Any:
    """The quantisation of an image HDU: its compressed table's per-tile scale and zero, or
    lossless for an uncompressed image."""
    from astropy.io import fits

    from jobs.quantization import TileLattice

    if not isinstance(hdu, fits.CompImageHDU):
        return TileLattice.lossless(tuple(hdu.shape))
    with fits.open(source, memmap=False, disable_image_compression=True) as raw:
        table = raw[index]
        return TileLattice.from_table(table.header, table.data)


def cutout(image: np.ndarray, x: float, y: float, size: int) -> tuple[np.ndarray, bool, int, int]:
    """A `size`² cutout whose centre pixel holds (x, y); zero-padded where it leaves the image.
    Returns the cutout, whether it lies wholly inside, and its origin (x0, y0)."""
    half = size // 2
    x0, y0 = int(np.round(x)) - half, int(np.round(y)) - half  # the seed's fix: np.round, not round
    ny, nx = image.shape
    inside = x0 >= 0 and y0 >= 0 and x0 + size <= nx and y0 + size <= ny
    if inside:
        return image[y0 : y0 + size, x0 : x0 + size].copy(), True, x0, y0
    out = np.zeros((size, size), dtype=np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + size, ny)), slice(max(x0, 0), min(x0 + size, nx))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[ys, xs]
    return out, False, x0, y0


# -- physics -----------------------------------------------------------------------------


class ArcRenderer:
    """lenstronomy image models, one per PSF, reused with new kwargs (about twice as fast as
    building one per stamp). The FWHM is quantised to 0.001″, far below DR10's PSF precision,
    so that neighbouring galaxies share a model."""

    def __init__(self, settings: InjectSettings) -> None:
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel

        self.settings = settings
        self.lens_model = LensModel(["SIE", "SHEAR"])
        self.source_model = LightModel(["SERSIC_ELLIPSE"])
        self._models: OrderedDict[tuple[str, float], Any] = OrderedDict()
        size = settings.stamp_size
        # stamp coordinates in arcsec, pixel-aligned, (0, 0) at the centre pixel
        self._origin = -(size // 2) * PIXSCALE

    def image_model(self, fwhm: float) -> Any:
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel

        key = (self.settings.psf_model, round(float(fwhm), 3))
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
            return model
        s = self.settings
        data = ImageData(
            np.zeros((s.stamp_size, s.stamp_size)),
            ra_at_xy_0=self._origin,
            dec_at_xy_0=self._origin,
            transform_pix2angle=np.eye(2) * PIXSCALE,
        )
        if s.psf_model == "moffat":
            psf = PSF(psf_type="PIXEL", kernel_point_source=moffat_kernel(key[1], s.moffat_beta, PIXSCALE))
        else:
            psf = PSF(psf_type="GAUSSIAN", fwhm=key[1], pixel_size=PIXSCALE)
        numerics = {"supersampling_factor": s.supersample, "supersampling_convolution": False}
        model = ImageModel(
            data,
            psf,
            lens_model_class=self.lens_model,
            source_model_class=self.source_model,
            kwargs_numerics=numerics,
        )
        self._models[key] = model
        if len(self._models) > 64:
            self._models.popitem(last=False)
        return model

    def kwargs(self, row: dict[str, Any], dx: float, dy: float) -> tuple[list[dict], list[dict]]:
        """lenstronomy kwargs for a task; (dx, dy) is the galaxy's offset from the stamp centre (″)."""
        lens_e1, lens_e2 = lenstronomy_e1e2(row["lens_q"], row["lens_theta"])
        src_q = (1.0 - row["src_e"]) / (1.0 + row["src_e"])
        src_e1, src_e2 = lenstronomy_e1e2(src_q, row["src_phi"])
        g1 = row["shear"] * np.cos(2 * row["shear_phi"])
        g2 = row["shear"] * np.sin(2 * row["shear_phi"])
        kwargs_lens = [
            {
                "theta_E": row["theta_e_arcsec"],
                "e1": float(lens_e1),
                "e2": float(lens_e2),
                "center_x": dx,
                "center_y": dy,
            },
            {"gamma1": float(g1), "gamma2": float(g2), "ra_0": dx, "dec_0": dy},
        ]
        kwargs_source = [
            {
                "amp": 1.0,
                "R_sersic": row["src_reff_arcsec"],
                "n_sersic": 1.0,
                "e1": float(src_e1),
                "e2": float(src_e2),
                "center_x": dx + row["src_x_arcsec"],
                "center_y": dy + row["src_y_arcsec"],
            }
        ]
        return kwargs_lens, kwargs_source

    def source_fluxes(self, row: dict[str, Any]) -> dict[str, float]:
        """The unlensed source's flux per band (nanomaggies)."""
        r = row["flux_r"] * 10 ** (-0.4 * row["src_dmag"])
        s = self.settings
        return {"g": r * 10 ** (-0.4 * s.src_g_r), "r": r, "z": r * 10 ** (0.4 * s.src_r_z)}

    def render(self, row: dict[str, Any], dx: float, dy: float) -> tuple[np.ndarray, float]:
        """The arc in g, r, z (nanomaggies per pixel) and μ.

        The lensed surface brightness does not depend on the band (one source colour), so it
        is ray-traced once, unconvolved, and convolved with each band's PSF by the same
        lenstronomy convolution `ImageModel.image` would apply: the same numbers, a third of
        the ray tracing."""
        kwargs_lens, kwargs_source = self.kwargs(row, dx, dy)
        unit_total = float(self.source_model.total_flux(kwargs_source)[0])
        fluxes = self.source_fluxes(row)
        base = self.image_model(row["psfsize_r"]).image(kwargs_lens, kwargs_source, unconvolved=True)
        arc = np.empty((3, self.settings.stamp_size, self.settings.stamp_size))
        for i, band in enumerate(BANDS):
            convolution = self.image_model(row[f"psfsize_{band}"]).ImageNumerics.convolution_class
            arc[i] = convolution.convolution2d(base) * (fluxes[band] / unit_total)
        mu = float(arc[1].sum() / fluxes["r"])
        return arc, mu


def arc_snr(arc_r: np.ndarray, invvar_r: np.ndarray) -> float:
    """Σ arc / √(Σ σ²) over pixels where the arc's own S/N (arc × √invvar) exceeds 1."""
    good = invvar_r > 0
    sn = np.where(good, arc_r * np.sqrt(np.where(good, invvar_r, 0.0)), 0.0)
    mask = sn > 1.0
    if not mask.any():
        return 0.0
    return float(arc_r[mask].sum() / np.sqrt((1.0 / invvar_r[mask]).sum()))


# -- the per-partition function ------------------------------------------------------------


_STATE: dict[str, Any] = {}


def _workers_for(settings: InjectSettings) -> tuple[CoaddReader, ArcRenderer]:
    """One reader and renderer per process and settings (they cache bricks and models)."""
    key = settings.to_json()
    if _STATE.get("key") != key:
        _STATE.update(
            key=key, reader=CoaddReader(settings.cache, settings.stamp_size), renderer=ArcRenderer(settings)
        )
    return _STATE["reader"], _STATE["renderer"]


def inject_batch(batch: Any, settings: InjectSettings) -> Any:
    """Manifest rows (an Arrow RecordBatch or Table) -> stamp rows (a RecordBatch)."""
    import pyarrow as pa

    reader, renderer = _workers_for(settings)
    size = settings.stamp_size
    rows = batch.to_pylist()
    out: dict[str, list[Any]] = {name: [] for name in output_schema(size).names}
    for row in rows:
        stamp = np.zeros((3, size, size), dtype=np.float32)
        ok, reason, mu, arc_mag, snr = True, None, None, None, 0.0
        try:
            cut = reader.cutout(row["brickname"], row["ra"], row["dec"])
            stamp = cut.stamp
            if not cut.inside:
                ok, reason = False, f"edge: the {size}x{size} stamp leaves brick {row['brickname']}"
            elif not (np.isfinite(cut.stamp).all() and np.isfinite(cut.invvar_r).all()):
                bad = int((~np.isfinite(cut.stamp)).sum())
                ok, reason = False, f"non-finite: {bad} NaN or infinite pixel(s) in brick {row['brickname']}"
            elif not row["is_control"]:
                if not row["flux_r"] > 0:
                    raise ValueError(f"flux_r = {row['flux_r']} is not positive")
                arc, mu = renderer.render(row, cut.dx, cut.dy)
                if settings.arc_pixels == "float":
                    stamp = (cut.stamp + arc).astype(np.float32)
                else:
                    stamp = cut.add_arc(arc, np.random.default_rng(row["seed"]))
                arc_flux = float(arc[1].sum())
                arc_mag = 22.5 - 2.5 * np.log10(arc_flux) if arc_flux > 0 else None
                snr = arc_snr(arc[1], cut.invvar_r)
        except BrickUnavailable as err:
            ok, reason = False, str(err)
        except Exception as err:  # one bad row must not stop the partition
            ok, reason = False, f"{type(err).__name__}: {err}"
        for name in CARRIED:
            out[name].append(row[name])
        psf = row["psfsize_r"]
        out["theta_over_psf"].append(row["theta_e_arcsec"] / psf if psf and psf > 0 else None)
        out["mu"].append(mu)
        out["arc_mag_r"].append(arc_mag)
        out["arc_snr"].append(snr)
        out["ok"].append(ok)
        out["fail_reason"].append(reason)
        out["stamp"].append(stamp.tobytes())
    return pa.RecordBatch.from_pydict(out, schema=output_schema(size))


# -- runners -----------------------------------------------------------------------------


def partitions(manifest: Any, rows_per_part: int) -> list[Any]:
    """The manifest sorted by brick (so a partition touches few bricks), cut in slices."""
    table = manifest.sort_by([("brickname", "ascending"), ("task_id", "ascending")])
    return [table.slice(start, rows_per_part) for start in range(0, table.num_rows, rows_per_part)]


def write_stamps(table: Any, path: Path, codec: str) -> None:
    """Parquet with the stamp column kept out of dictionary encoding and statistics: both
    cost more than the compression itself on 48 KiB values that never repeat."""
    import pyarrow.parquet as pq

    plain = [name for name in table.column_names if name != "stamp"]
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP,
        compression=codec,
        use_dictionary=plain,
        write_statistics=plain,
        column_encoding={"stamp": "PLAIN"},
    )


def _write_part(args: tuple[int, Any, str, str, str]) -> tuple[int, int, int]:
    """Inject one partition and write it as `part-NNNNN.parquet`, atomically."""
    import pyarrow as pa

    index, table, settings_json, folder, codec = args
    settings = InjectSettings.from_json(settings_json)
    batch = inject_batch(table, settings)
    final = Path(folder) / f"part-{index:05d}.parquet"
    tmp = final.with_suffix(f".tmp-{os.getpid()}")
    write_stamps(pa.Table.from_batches([batch]), tmp, codec)
    os.replace(tmp, final)
    ok = sum(batch.column("ok").to_pylist())
    return index, batch.num_rows, ok


def _complete(part: Path) -> bool:
    """Whether a staged part was written whole (its parquet footer reads)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(part)
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a damaged part: written again
        print(f"inject: {part.name} is damaged: writing it again", flush=True)
        return False
    return True


def run_local(
    manifest: Any,
    settings: InjectSettings,
    staging: Path,
    codec: str,
    workers: int,
    rows_per_part: int = ROWS_PER_PART,
) -> int:
    """Inject every partition not yet written into `staging`; return the number written now."""
    parts = partitions(manifest, rows_per_part)
    todo = [(i, p) for i, p in enumerate(parts) if not _complete(staging / f"part-{i:05d}.parquet")]
    print(f"inject: {len(parts)} partitions, {len(parts) - len(todo)} already written", flush=True)
    jobs = [(i, p, settings.to_json(), str(staging), codec) for i, p in todo]
    done = 0
    if workers <= 1:
        results: Iterator[tuple[int, int, int]] = map(_write_part, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_write_part, jobs)
    for index, n, ok in results:
        done += 1
        print(
            f"inject: partition {index} written ({n} rows, {n - ok} flagged) [{done}/{len(todo)}]", flush=True
        )
    if workers > 1:
        pool.shutdown()
    return done


def settings_for(config: Any, variant: str, cache: str, supersample: int) -> InjectSettings:
    inj = config.variants[variant].injection
    return InjectSettings(
        cache=cache,
        psf_model=inj.psf_model,
        moffat_beta=inj.moffat_beta,
        supersample=supersample,
        stamp_size=inj.stamp_size,
        arc_pixels=inj.arc_pixels,
    )


def run(
    workspace: Path,
    variant: str,
    grid: str | None = None,
    runner: str = "local",
    cache: str | None = None,
    supersample: int = 1,
    workers: int | None = None,
    force: bool = False,
    rows_per_part: int = ROWS_PER_PART,
) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from jobs.coadds import default_cache
    from jobs.manifest import manifest_dir

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    manifest_path = manifest_dir(workspace, variant, grid) / "manifest.parquet"
    if not manifest_path.exists():
        raise stage_runtime.StageError(f"{manifest_path}: no manifest; run `halo stage manifest` first")
    settings = settings_for(config, variant, cache or default_cache(workspace), supersample)
    codec = config.variants[variant].injection.codec
    final = stamps_dir(workspace, variant, grid)
    digest = stage_runtime.fingerprint(
        "inject",
        settings.to_json(),
        codec,
        runner,
        rows_per_part,
        stage_runtime.files_fingerprint([manifest_path]),
    )
    if not force and stage_runtime.up_to_date(final, digest):
        print(f"stamps {final} are up to date (use --force to redo them)", flush=True)
        return {"outputs": [str(final)], "skipped": True}

    staging = final.parent / f".{final.name}.staging"
    marker = staging / "_inputs.json"
    if force or not marker.exists() or json.loads(marker.read_text()).get("inputs") != digest:
        shutil.rmtree(staging, ignore_errors=True)  # other inputs: nothing to resume
        staging.mkdir(parents=True)
        marker.write_text(json.dumps({"inputs": digest}))
    manifest = pq.read_table(manifest_path)
    if runner == "spark":
        from jobs.spark_pipeline import run_inject_spark

        run_inject_spark(str(manifest_path), settings, str(staging / "spark"), codec)
    else:
        run_local(manifest, settings, staging, codec, workers or min(2, os.cpu_count() or 1), rows_per_part)
    summary = _summarise(staging, manifest.num_rows)
    summary["shortcut_audit"] = _audit(staging, config.variants[variant].audit, final.parent / grid)
    with stage_runtime.atomic_dir(final, digest) as tmp:
        for index, part in enumerate(sorted(staging.rglob("part-*.parquet"))):
            os.replace(part, tmp / f"part-{index:05d}.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        (tmp / "shortcut_audit.json").write_text(json.dumps(summary["shortcut_audit"], indent=2))
    shutil.rmtree(staging, ignore_errors=True)
    return {"outputs": [str(final)], "variant": variant, "grid": grid, "runner": runner, **summary}


def _audit(staging: Path, settings: Any, name: Path) -> dict[str, Any]:
    """The shortcut audit over the new stamps; a failed audit fails the stage, keeps the
    stamps in staging (a rerun only audits again) and leaves `<grid>.shortcut-audit-failed.json`."""
    from jobs.shortcut_audit import audit, summary_line

    report = audit(sorted(staging.rglob("part-*.parquet")), settings.max_auroc, settings.rows_per_split)
    print(summary_line(report), flush=True)
    failed = name.with_name(f"{name.name}.shortcut-audit-failed.json")
    if not report["ok"]:
        failed.write_text(json.dumps(report, indent=2))
        raise stage_runtime.StageError(
            f"the stamps failed the shortcut audit (pixel-statistic AUROC {report['auroc']:.3f} > "
            f"{report['max_auroc']:.2f}: {', '.join(report['flagged'])}); report in {failed}"
        )
    failed.unlink(missing_ok=True)
    return report


def _summarise(folder: Path, expected: int) -> dict[str, Any]:
    """Counts over the written parts; every manifest row must be there exactly once."""
    import pyarrow.parquet as pq

    parts = sorted(folder.rglob("part-*.parquet"))
    table = (
        pq.read_table(parts, columns=["task_id", "ok", "is_control", "fail_reason", "theta_over_psf"])
        if parts
        else None
    )
    rows = table.num_rows if table is not None else 0
    if rows != expected or len(set(table.column("task_id").to_pylist())) != rows:
        raise stage_runtime.StageError(
            f"stamps hold {rows} rows for {expected} manifest rows (or duplicates)"
        )
    ok = table.column("ok").to_numpy(zero_copy_only=False)
    reasons = [r for r in table.column("fail_reason").to_pylist() if r]
    kinds: dict[str, int] = {}
    for r in reasons:
        kinds[r.split(":", 1)[0]] = kinds.get(r.split(":", 1)[0], 0) + 1
    ratio = table.column("theta_over_psf").to_numpy(zero_copy_only=False).astype(float)
    pos = ~table.column("is_control").to_numpy(zero_copy_only=False)
    return {
        "rows": rows,
        "ok": int(ok.sum()),
        "flagged": int((~ok).sum()),
        "flag_kinds": kinds,
        "unresolved_fraction": float(np.mean(ratio[pos] < 0.5)) if pos.any() else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("inject", "grz cutouts + lenstronomy arcs -> stamps parquet.")
    p.add_argument("--grid", help="the manifest's grid [default: the variant's]")
    p.add_argument("--runner", choices=("local", "spark"), default="local")
    p.add_argument("--cache", help="coadd cache folder or s3:// prefix [default: data/coadd_cache]")
    p.add_argument("--supersample", type=int, default=1, help="lenstronomy supersampling factor")
    p.add_argument("--workers", type=int, help="local runner processes [default: up to 2]")
    p.add_argument("--rows-per-part", type=int, default=ROWS_PER_PART, help="manifest rows per partition")
    args = p.parse_args(argv)
    return stage_runtime.main("inject", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        args.workspace.resolve(),
        args.variant,
        args.grid,
        args.runner,
        args.cache,
        args.supersample,
        args.workers,
        args.force,
        args.rows_per_part,
    )


if __name__ == "__main__":
    raise SystemExit(main())
