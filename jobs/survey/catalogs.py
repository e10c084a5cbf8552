"""Position catalogues: lists of sky positions to score or to match against.

A catalogue is a CSV (lines starting with `#` are comments), parquet or FITS table with
`ra` and `dec` in degrees, and optionally `name`, `population` (e.g. spiral, ring), `grade`
and `reference`; column names are matched without regard to case, and lenscat's
`RA [deg]`/`DEC [deg]` are understood. Bad input is named with its file and row, never a
traceback (StageError)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from core import storage
from jobs.runtime.stage import StageError

TEXT_COLUMNS = ("name", "population", "grade", "reference")
# two catalogue positions closer than this are one object (one independent unit)
SAME_OBJECT_ARCSEC = 1.5


def sky_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Positions in degrees as unit vectors (n, 3): a KD-tree over them finds neighbours."""
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def chord(arcsec: float) -> float:
    """The straight-line distance between unit vectors `arcsec` apart on the sky."""
    return float(2.0 * np.sin(np.radians(arcsec / 3600.0) / 2.0))


def same_object_units(
    ra: np.ndarray, dec: np.ndarray, radius_arcsec: float = SAME_OBJECT_ARCSEC
) -> np.ndarray:
    """For each position, the index of the first position of its unit: positions linked by
    separations under `radius_arcsec` (friends of friends) are one object, one independent
    unit (a deblended galaxy listed twice, a pair blended in the imaging)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(ra)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(sky_vectors(ra, dec)).query_pairs(chord(radius_arcsec), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n))
    return first[label]


ALIASES = {"ra [deg]": "ra", "dec [deg]": "dec", "ref": "reference", "grading": "grade"}


def _rows_from_csv(text: str, where: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise StageError(f"{where}: empty catalogue (no header line)")
    rows = list(csv.reader(lines))
    return rows[0], rows[1:]


def _table(uri: str) -> dict[str, list[Any]]:
    """The file's columns by lower-case name."""
    where = str(uri)
    try:
        data = storage.read_bytes(uri) if storage.is_s3(uri) else Path(uri).read_bytes()
    except FileNotFoundError:
        raise StageError(f"{where}: no such catalogue") from None
    except OSError as err:
        raise StageError(f"{where}: cannot be read ({err.strerror or err})") from None
    lower = where.lower()
    try:
        if lower.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            return {n.lower(): table.column(n).to_pylist() for n in table.column_names}
        if lower.endswith((".fits", ".fits.gz", ".fit")):
            from astropy.io import fits

            with fits.open(io.BytesIO(data)) as hdus:
                hdu = next((h for h in hdus if isinstance(h, fits.BinTableHDU)), None)
                if hdu is None:
                    raise StageError(f"{where}: no table extension")
                return {n.lower(): np.asarray(hdu.data[n]).tolist() for n in hdu.columns.names}
        header, rows = _rows_from_csv(data.decode("utf-8"), where)
    except StageError:
        raise
    except UnicodeDecodeError:
        raise StageError(f"{where}: not UTF-8 text (a CSV, parquet or FITS table is expected)") from None
    except Exception as err:  # pyarrow/astropy raise many kinds for a damaged file
        raise StageError(f"{where}: not a readable table ({type(err).__name__}: {err})") from None
    names = [h.strip().lower() for h in header]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(names):
            raise StageError(f"{where}: row {number} has {len(row)} fields, the header {len(names)}")
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def read_positions(
    uri: str | Path, default_population: str = "", bad: list[str] | None = None
) -> dict[str, np.ndarray]:
    """ra, dec (float64 degrees) and the text columns (object arrays, "" where absent). A row
    whose position is not a number in range fails the file, unless `bad` is given: then the
    row is left out and its one-line reason appended there."""
    where = str(uri)
    columns = {ALIASES.get(k, k): v for k, v in _table(str(uri)).items()}
    missing = [c for c in ("ra", "dec") if c not in columns]
    if missing:
        raise StageError(f"{where}: missing column(s) {', '.join(missing)} (ra, dec in degrees are needed)")
    out: dict[str, np.ndarray] = {}
    keep = np.ones(len(columns["ra"]), bool)
    for axis, low, high in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        values = np.full(len(columns[axis]), np.nan)
        for i, raw in enumerate(columns[axis]):
            try:
                values[i] = float(raw)
                problem = (
                    None
                    if low <= values[i] <= high
                    else f"{axis} {values[i]:g} is outside [{low:g}, {high:g}]"
                )
            except (TypeError, ValueError):
                problem = f"{axis} {str(raw)[:40]!r} is not a number"
            if problem and bad is None:
                raise StageError(f"{where}: row {i + 1}: {problem}")
            if problem and keep[i]:
                keep[i] = False
                bad.append(f"{where}: row {i + 1}: {problem}; left out")  # type: ignore[union-attr]
        out[axis] = values
    for name in TEXT_COLUMNS:
        values = columns.get(name)
        out[name] = np.array(
            [("" if v is None else str(v).strip()) for v in values]
            if values is not None
            else [""] * keep.size,
            dtype=object,
        )
    out = {k: v[keep] for k, v in out.items()}
    if default_population:
        out["population"] = np.where(out["population"] == "", default_population, out["population"])
    return out


def write_csv(path: Path, header: list[str], rows: list[list[Any]], comment: str = "") -> None:
    """A catalogue CSV written atomically (a temporary file renamed into place)."""
    import io

    from core.safe_io import SHARED_MODE, atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO(newline="")
    for line in comment.splitlines():
        out.write(f"# {line}\n")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, out.getvalue(), SHARED_MODE)


def catalog_stem(catalog: str) -> str:
    """A catalogue's file name, safe as part of an output name."""
    from core.names import check_name

    name = Path(str(catalog).rstrip("/")).name
    for suffix in (".gz", ".csv", ".parquet", ".fits", ".fit"):
        name = name.removesuffix(suffix)
    return check_name("catalogue", "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "catalog")
