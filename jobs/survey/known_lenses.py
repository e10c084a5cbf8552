"""Known lenses: the shipped table of published lenses plus the workspace's own, the 3″
cross-match that says a galaxy *is* one, and the wider exclusion that says a known lens lies
in a galaxy's stamp.

No galaxy with a known lens in its stamp is a control (it would be a negative that holds a
lens), a positive's host, a hard negative, a lookalike or a non-lens blind: the exclusion
radius is the stamp's half-diagonal plus the 3″ cross-match tolerance (14.9″ for 64-pixel
stamps; 3″ let eight demo galaxies have a planted lens inside their stamp). Eval and score
report where each known lens in the scored footprint landed ("known-lens recovery"). The
shipped table is lenscat's galaxy-scale lenses and candidates in DR10's footprint
(config/known_lenses/, MIT); a workspace adds its own in `catalogs/known_lenses.csv` (the
mock survey writes its planted lenses there)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from core import layout

MATCH_RADIUS_ARCSEC = 3.0  # a galaxy is a known lens: catalogue positions agree this well


def exclusion_radius_arcsec(stamp_size: int) -> float:
    """How near a known lens no negative or host may be: the stamp's half-diagonal (a lens
    anywhere in the stamp) plus MATCH_RADIUS_ARCSEC (catalogues disagree by up to that)."""
    from jobs.survey.layout import PIXSCALE

    return stamp_size * PIXSCALE * math.sqrt(2.0) / 2.0 + MATCH_RADIUS_ARCSEC


def in_stamp(ra: np.ndarray, dec: np.ndarray, lenses: dict[str, np.ndarray], stamp_size: int) -> np.ndarray:
    """For each position, whether a known lens lies within its stamp's exclusion radius."""
    return match(ra, dec, lenses, exclusion_radius_arcsec(stamp_size)) >= 0


def sources(workspace: Path, extra: list[str] | tuple[str, ...] = ()) -> tuple[tuple[str, Path], ...]:
    """Where known lenses come from: the shipped table, the workspace's own, and the
    catalogues a variant names (`[training] catalogues`, workspace-relative or absolute)."""
    named = tuple((Path(c).name, workspace / c if not Path(c).is_absolute() else Path(c)) for c in extra)
    return (
        ("lenscat", layout.SHIPPED_KNOWN_LENSES),
        ("workspace", layout.known_lenses_path(workspace)),
        *named,
    )


def load(workspace: Path, extra: list[str] | tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every known lens: name, ra, dec, grade, reference, and `source` (shipped, workspace or
    the named catalogue's file name). A named catalogue that is missing fails; a row whose
    position is bad is left out with one line saying which and why, and counted."""
    from jobs.runtime.stage import StageError
    from jobs.survey.catalogs import read_positions

    parts = []
    for index, (source, path) in enumerate(sources(workspace, extra)):
        if not path.exists():
            if index >= 2:
                raise StageError(f"{path}: no such known-lens catalogue ([training] catalogues)")
            continue
        bad: list[str] = []
        table = read_positions(path, bad=bad)
        for line in bad:
            print(f"known lenses: {line}", flush=True)
        if bad:
            print(f"known lenses: {path}: {len(bad)} row(s) left out, {table['ra'].size} read", flush=True)
        table["source"] = np.full(table["ra"].size, source, dtype=object)
        parts.append(table)
    if not parts:
        return {k: np.zeros(0, dtype=object if k not in ("ra", "dec") else float) for k in _COLUMNS}
    return {k: np.concatenate([p[k] for p in parts]) for k in _COLUMNS}


_COLUMNS = ("name", "ra", "dec", "grade", "reference", "source")


def match(
    ra: np.ndarray, dec: np.ndarray, lenses: dict[str, np.ndarray], radius_arcsec: float = MATCH_RADIUS_ARCSEC
) -> np.ndarray:
    """For each position, the index of the nearest known lens within `radius_arcsec`, else -1."""
    return match_with_separation(ra, dec, lenses, radius_arcsec)[0]


def match_with_separation(
    ra: np.ndarray, dec: np.ndarray, lenses: dict[str, np.ndarray], radius_arcsec: float = MATCH_RADIUS_ARCSEC
) -> tuple[np.ndarray, np.ndarray]:
    """`match`, and each match's separation in arcsec (inf where none; a position that is not
    finite, a file that gave none, matches nothing)."""
    from scipy.spatial import cKDTree

    from jobs.survey.catalogs import chord, sky_vectors

    n = len(ra)
    if n == 0 or lenses["ra"].size == 0:
        return np.full(n, -1, dtype=np.int64), np.full(n, np.inf)
    where = sky_vectors(ra, dec)
    finite = np.isfinite(where).all(axis=1)
    distance, index = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    distance[finite], index[finite] = cKDTree(sky_vectors(lenses["ra"], lenses["dec"])).query(
        where[finite], k=1, distance_upper_bound=chord(radius_arcsec)
    )
    found = np.isfinite(distance)
    separation = np.degrees(2.0 * np.arcsin(np.minimum(np.where(found, distance, 0.0), 2.0) / 2.0)) * 3600.0
    return np.where(found, index, -1).astype(np.int64), np.where(found, separation, np.inf)


def nearest_per_lens(index: np.ndarray, separation: np.ndarray) -> np.ndarray:
    """Of the positions matched to each known lens, the nearest one's row (a lens's own
    galaxy, not a neighbour within 3″): the rows to report the lens by."""
    rows = np.flatnonzero(index >= 0)
    best: dict[int, int] = {}
    for row in rows[np.argsort(separation[rows], kind="stable")]:
        best.setdefault(int(index[row]), int(row))
    return np.array(sorted(best.values()), dtype=np.int64)


def annotate(ra: np.ndarray, dec: np.ndarray, lenses: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """Columns naming each position's known lens (None where it matches none)."""
    found, separation = match_with_separation(ra, dec, lenses)
    out: dict[str, list[Any]] = {
        "known_lens_sep_arcsec": [
            float(s) if i >= 0 else None for i, s in zip(found, separation, strict=True)
        ]
    }
    for column, key in (
        ("known_lens", "name"),
        ("known_lens_grade", "grade"),
        ("known_lens_reference", "reference"),
    ):
        out[column] = [str(lenses[key][i]) if i >= 0 else None for i in found]
    return out
