"""Blind items for calibrating the people who grade candidates (Space Warps' simulations and
known non-lenses, for a terminal).

`score` writes `blinds.parquet` beside the candidates, from the test split of the run's
injection stamps, one item per host galaxy (the independent unit), never a galaxy that is
among the candidates kept for triage (the same galaxy twice in the stream would give it away):

- simulated lenses (`truth` = "lens"): injected rows, in a fixed pseudo-random order of their
  hosts (not chosen by score: an inspector's completeness must not inherit the model's);
- known non-lenses (`truth` = "not_lens"): the injection controls the model scores highest
  (real galaxies known to hold no injected arc that look most like lenses to it), none with a
  known lens in its stamp (for both kinds) and no host shared with a simulated lens.

Half each, scored by the run's model like every candidate. A row has the candidates' columns
(its host galaxy's ids and position, split, PSF, the score, and `rank`: the rank it would have
among the run's scored galaxies) plus truth, arc_snr and theta_e_arcsec; the console mixes the
items into the triage stream (core.candidates.TriageStream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract

SPLIT = "test"
COLUMNS = (
    "brickname",
    "objid",
    "ra",
    "dec",
    "split",
    "psfsize_r",
    "is_control",
    "ok",
    "arc_snr",
    "theta_e_arcsec",
)


def _eligible(
    parts: list[Path], meta_cols: list[str], lenses: dict[str, np.ndarray], stamp_size: int
) -> dict[str, np.ndarray]:
    """The small columns of the usable test-split rows with no known lens in their stamp, with
    where each row is (`part`, `row`); a damaged file is named and skipped."""
    from core.schemas import known_rows
    from core.storage import parquet_file
    from jobs import known_lenses

    wanted = list(dict.fromkeys([*COLUMNS, *meta_cols]))
    tables = []
    for index, uri in enumerate(parts):
        try:
            handle = parquet_file(str(uri))
            table = handle.read(
                columns=wanted + [c for c in ("known_tier",) if c in handle.schema_arrow.names]
            )
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
            print(
                f"score: blinds: skipped {uri}: not a readable parquet file ({type(err).__name__})",
                flush=True,
            )
            continue
        data = {c: table.column(c).to_numpy(zero_copy_only=False) for c in wanted}
        data["known"] = known_rows(table)  # a known lens's own stamp: real, never a simulated blind
        data["part"] = np.full(table.num_rows, index)
        data["row"] = np.arange(table.num_rows)
        tables.append(data)
    if not tables:
        return {}
    data = {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}
    usable = (data["split"] == SPLIT) & data["ok"].astype(bool) & ~data["known"]
    usable &= ~known_lenses.in_stamp(data["ra"], data["dec"], lenses, stamp_size)
    return {c: v[usable] for c, v in data.items()}


def _one_per_galaxy(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`rows` (positions into `keys`) keeping the first row of each galaxy."""
    _, first = np.unique(keys[rows], return_index=True)
    return rows[np.sort(first)]


def _stamps(parts: list[Path], data: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The stamps of `rows`, reading only the row groups they sit in."""
    from core.storage import parquet_file

    images: np.ndarray | None = None
    for part in np.unique(data["part"][rows]):
        handle = parquet_file(str(parts[part]))
        meta = stamp_contract.stamp_meta(handle.schema_arrow)
        sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        mine = np.flatnonzero(data["part"][rows] == part)
        file_rows = data["row"][rows][mine]
        groups = np.searchsorted(starts, file_rows, side="right") - 1
        for group in np.unique(groups):
            offsets = file_rows[groups == group] - starts[group]
            column = handle.read_row_group(int(group), columns=["stamp"]).column(0).take(offsets)
            decoded = stamp_contract.decode(column, meta)
            if images is None:
                images = np.zeros((len(rows), *decoded.shape[1:]), dtype=np.float32)
            images[mine[groups == group]] = decoded
    assert images is not None
    return images


def _logits(
    model: Any, meta_cols: list[str], images: np.ndarray, data: dict[str, np.ndarray], rows: np.ndarray
) -> np.ndarray:
    from jobs.dataset import meta_features
    from jobs.scoring import logits_of

    extra = None
    if meta_cols:
        values = {c: data[c][rows] for c in meta_cols} | {"task_id": np.arange(len(rows))}
        extra = meta_features(values, meta_cols)
    return logits_of(model, images, extra)


def build(
    model: Any,
    meta_cols: list[str],
    stamps: Path,
    run: str,
    n: int,
    lenses: dict[str, np.ndarray],
    ranked: np.ndarray,
    shape: tuple[int, ...],
    exclude: set[str] | frozenset[str] = frozenset(),
    chunk: int = 4096,
) -> Any:
    """Up to `n` blind items (half simulated lenses, half known non-lenses) as a table with
    stamps of `shape`, none of the galaxies `exclude` ("brickname:objid"); `ranked` is the
    run's usable scores, highest first (for the rank each item would have)."""
    import pyarrow as pa

    from core.schemas import galaxy_keys, hash_order
    from jobs.scoring import sigmoid

    parts = sorted(stamps.glob("part-*.parquet"))
    data = _eligible(parts, meta_cols, lenses, shape[-1]) if parts and n > 0 else {}
    if not data or not len(data["ok"]):
        return _table(pa, [], None, run, shape)
    keys = galaxy_keys(data["brickname"], data["objid"])
    control = data["is_control"].astype(bool)
    free = ~np.isin(keys, list(exclude))
    sims = np.flatnonzero(~control & free)
    sims = _one_per_galaxy(keys, sims[hash_order(keys[sims])])[: (n + 1) // 2]
    taken = set(keys[sims])
    duds = np.array(
        [i for i in _one_per_galaxy(keys, np.flatnonzero(control & free)) if keys[i] not in taken], int
    )
    # every candidate non-lens scored, a chunk at a time (only the logits kept)
    dud_logits = np.concatenate(
        [
            _logits(model, meta_cols, _stamps(parts, data, duds[s : s + chunk]), data, duds[s : s + chunk])
            for s in range(0, len(duds), chunk)
        ]
        or [np.zeros(0)]
    )
    hardest = np.argsort(-dud_logits, kind="stable")[: n // 2]
    chosen = np.concatenate([sims, duds[hardest]]).astype(int)
    truth = ["lens"] * len(sims) + ["not_lens"] * len(hardest)
    images = _stamps(parts, data, chosen) if len(chosen) else None
    logits = _logits(model, meta_cols, images, data, chosen) if len(chosen) else np.zeros(0)
    score = sigmoid(logits)
    rank = 1 + np.searchsorted(-np.asarray(ranked, dtype=np.float64), -score, side="left")
    rows = {
        "rank": rank.astype(np.int64),
        **{c: data[c][chosen] for c in ("brickname", "objid", "ra", "dec", "split", "psfsize_r")},
        "score": score,
        "logit": logits.astype(np.float64),
        "truth": truth,
        "arc_snr": np.where(np.array(truth) == "lens", data["arc_snr"][chosen], np.nan),
        "theta_e_arcsec": np.where(np.array(truth) == "lens", data["theta_e_arcsec"][chosen], np.nan),
    }
    raw = [image.tobytes() for image in images] if images is not None else []
    return _table(pa, raw, rows, run, shape)


def _table(pa: Any, raw: list[bytes], rows: dict[str, Any] | None, run: str, shape: tuple[int, ...]) -> Any:
    """The blinds table, ordered by score (highest first); empty with the same columns."""
    columns: dict[str, Any] = {
        "rank": pa.array([], pa.int64()),
        "brickname": pa.array([], pa.string()),
        "objid": pa.array([], pa.int64()),
        "ra": pa.array([], pa.float64()),
        "dec": pa.array([], pa.float64()),
        "split": pa.array([], pa.string()),
        "psfsize_r": pa.array([], pa.float64()),
        "score": pa.array([], pa.float64()),
        "logit": pa.array([], pa.float64()),
        "truth": pa.array([], pa.string()),
        "arc_snr": pa.array([], pa.float64()),
        "theta_e_arcsec": pa.array([], pa.float64()),
    }
    if rows is not None:
        columns = {c: pa.array(rows[c]).cast(columns[c].type) for c in columns}
    n = len(columns["rank"])
    columns |= {
        "run": pa.array([run] * n, pa.string()),
        "ok": pa.array([True] * n, pa.bool_()),
        "fail_reason": pa.array([None] * n, pa.string()),
        "stamp": pa.array(raw, pa.binary()),
    }
    table = pa.table(columns)
    if n:
        table = table.take(np.argsort(-table.column("score").to_numpy(), kind="stable"))
    return table.replace_schema_metadata(stamp_contract.arrow_metadata(shape))
