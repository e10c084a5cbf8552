"""Real galaxies as sources: GalSim's RealGalaxyCatalog format (the COSMOS training samples).

A catalogue is a FITS table (`real_galaxy_catalog_25.2.fits`: `ident`, `gal_filename`,
`gal_hdu`, `pixel_scale`, `mag`, `band`, …) whose galaxies are HST postage stamps (F814W,
0.03″ a pixel), one HDU each, in files beside it (GalSim's layout; the PSF files it names are
not needed here, see below). A source is the stamp itself, interpolated bilinearly as
lenstronomy's `INTERPOL` profile does (each engine the same way), rotated by a drawn angle,
scaled to unit flux; its light in g, r and z is that image times each band's flux (one colour
per source, drawn: the stamps are one band).

Not deconvolved: HST's PSF (FWHM ≈ 0.1″) widens DR10's (≈ 1.3″) by 0.3 % in quadrature once
the arc is convolved with it, far below what a DR10 pixel resolves; GalSim's deconvolution
matters for space-based targets, not here. The stamps' own noise (F814W ≈ 27 mag depth) scales
with the source and stays far below DR10's.

Each galaxy serves one split only: its `ident` hashed to train, val or test, so that no
source galaxy is seen in training and in evaluation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED = ("ident", "gal_filename", "gal_hdu", "pixel_scale", "mag")
DOWNLOAD = (
    "the COSMOS 25.2 sample into the workspace: `galsim_download_cosmos -s 25.2 -d cosmos` (pip install"
    " galsim), or https://zenodo.org/records/3242143 (4.4 GB) unpacked into cosmos/"
)


class CatalogueError(ValueError):
    """A catalogue that cannot be used: one line naming the file and what is wrong."""


@dataclass
class RealGalaxies:
    """A RealGalaxyCatalog's galaxies: their ids, F814W magnitudes, stamps' files and scales."""

    path: Path
    ident: np.ndarray
    mag: np.ndarray
    files: np.ndarray
    hdus: np.ndarray
    scale: np.ndarray
    _open: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ident)

    def check_entry(self, index: int, ident: Any) -> None:
        """Raise CatalogueError unless entry `index` is galaxy `ident`: a manifest drawn from
        another catalogue (or another version of this one) is refused, never rendered."""
        if not 0 <= int(index) < len(self) or str(self.ident[int(index)]) != str(ident):
            raise CatalogueError(
                f"galaxy {ident} is not entry {int(index)} of {self.path}: the manifest was drawn from"
                " another catalogue (rerun `halo stage manifest`)"
            )

    def missing_files(self) -> list[str]:
        """The galaxies' image files the table names that are not beside it."""
        return sorted(f for f in set(self.files) if not (self.path.parent / str(f)).is_file())

    def image(self, i: int) -> np.ndarray:
        """Galaxy i's stamp as surface brightness of unit total flux (per arcsec²)."""
        from astropy.io import fits

        name = str(self.files[i])
        if name not in self._open:
            try:
                self._open[name] = fits.open(self.path.parent / name, memmap=False)
            except OSError as err:
                raise CatalogueError(f"{self.path.parent / name}: {err}") from None
        try:
            data = np.asarray(self._open[name][int(self.hdus[i])].data, dtype=float)
        except (IndexError, TypeError):
            raise CatalogueError(f"{self.path.parent / name}: no image in HDU {int(self.hdus[i])}") from None
        total = data.sum()
        if data.ndim != 2 or not np.isfinite(data).all() or total <= 0:
            raise CatalogueError(
                f"{self.path.parent / name} HDU {int(self.hdus[i])}: not a finite image with light"
            )
        return data / (total * float(self.scale[i]) ** 2)


def path_for(workspace: str | Path, spec: Any) -> str | None:
    """A grid's `[source] catalogue` file (relative paths under the workspace, a folder or an
    s3:// prefix), or None."""
    from core.layout import under

    if spec.mode != "catalogue" or not spec.catalogue:
        return None
    return under(workspace, spec.catalogue)


def local_copy(uri: str, into: Path | None = None) -> Path:
    """A catalogue on S3 (a cluster's executors read it there) copied with the galaxies' files
    it names into a folder of this machine (`into`, else the process's working directory: a
    YARN container's own), once per version of the table (its ETag); the copy appears whole
    (a temporary folder renamed) or not at all. Returns the local table's path."""
    import io
    import os
    import shutil

    from astropy.io import fits

    from core import storage
    from core.errors import HaloError

    try:
        _, _, version = storage.signature(uri)
    except Exception:
        raise CatalogueError(f"{uri}: no galaxy catalogue there (upload {DOWNLOAD} there)") from None
    root = (into or Path.cwd()) / ".halo-catalogues"
    final = root / hashlib.sha256(f"{uri}\0{version}".encode()).hexdigest()[:16]
    name = uri.rsplit("/", 1)[-1]
    if (final / name).is_file():
        return final / name
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        table = storage.read_bytes(uri)
        (tmp / name).write_bytes(table)
        with fits.open(io.BytesIO(table), memmap=False) as hdus:
            data = next((h.data for h in hdus if isinstance(h, fits.BinTableHDU)), None)
            files = sorted({str(v).strip() for v in data.field("gal_filename")}) if data is not None else []
        for file in files:  # the galaxies' stamps only (the PSFs' files are not read)
            if "/" in file or file in {"", ".", ".."}:
                raise CatalogueError(f"{uri}: gal_filename {file!r} is not a file beside it")
            (tmp / file).write_bytes(storage.read_bytes(f"{uri.rsplit('/', 1)[0]}/{file}"))
        try:
            tmp.rename(final)
        except OSError:  # another process of this machine copied it first
            if not (final / name).is_file():
                raise
    except HaloError as err:
        raise CatalogueError(str(err)) from None
    except (OSError, KeyError) as err:
        raise CatalogueError(f"{uri}: cannot copy the catalogue here ({err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / name


def load(location: str | Path) -> RealGalaxies:
    """The catalogue at `location` (a file, or an s3:// one: `local_copy`), checked: one line
    naming the file and what is missing."""
    from astropy.io import fits

    from core.storage import is_s3

    path = local_copy(str(location)) if is_s3(location) else Path(location)
    if not path.is_file():
        raise CatalogueError(f"{path}: no galaxy catalogue there (download {DOWNLOAD})")
    try:
        with fits.open(path, memmap=False) as hdus:
            table = next((h.data for h in hdus if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                raise CatalogueError(f"{path}: no table HDU (a RealGalaxyCatalog is a FITS table)")
            names = {n.lower() for n in table.columns.names}
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise CatalogueError(
                    f"{path}: no column {missing[0]!r} (a RealGalaxyCatalog has {', '.join(REQUIRED)})"
                )
            columns = {c: np.asarray(table.field(c)) for c in REQUIRED}
    except OSError as err:
        raise CatalogueError(f"{path}: not a readable FITS file ({err})") from None
    if len(columns["ident"]) == 0:
        raise CatalogueError(f"{path}: the catalogue holds no galaxies")
    return RealGalaxies(
        path=path,
        ident=np.array([str(v).strip() for v in columns["ident"]], dtype=object),
        mag=columns["mag"].astype(float),
        files=np.array([str(v).strip() for v in columns["gal_filename"]], dtype=object),
        hdus=columns["gal_hdu"].astype(int),
        scale=columns["pixel_scale"].astype(float),
    )


def split_of(ident: Any, splits: tuple[str, ...], fractions: tuple[float, ...]) -> str:
    """The one split a source galaxy serves: its id hashed to [0, 1) against the fractions."""
    u = int.from_bytes(hashlib.sha256(f"source:{ident}".encode()).digest()[:8], "big") / 2**64
    edges = np.cumsum(fractions) / np.sum(fractions)
    return splits[int(np.searchsorted(edges, u, side="right"))] if u < edges[-1] else splits[-1]


def half_light_radius(image: np.ndarray, scale: float) -> float:
    """The radius (″) about the light's centroid holding half of it."""
    y, x = np.indices(image.shape)
    total = image.sum()
    cx, cy = (image * x).sum() / total, (image * y).sum() / total
    r = np.hypot(x - cx, y - cy).ravel()
    order = np.argsort(r)
    cumulative = np.cumsum(image.ravel()[order]) / total
    return float(r[order][np.searchsorted(cumulative, 0.5)] * scale)


def reach(image: np.ndarray, scale: float) -> float:
    """How far (″) from the stamp's centre its light goes: its farthest lit corner's distance."""
    h, w = image.shape
    return float(np.hypot(h, w) / 2 * scale)
