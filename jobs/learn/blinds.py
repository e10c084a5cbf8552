"""Blind items for calibrating the people who grade candidates (Space Warps' simulations and
known non-lenses, for a terminal).

`score` writes two files beside the candidates:

- `blinds.parquet`: the items as the console shows them, with the candidates' columns and
  types exactly (their parent-sample row: ids, position, split, PSF, magnitudes, type; their
  own score, logit and `rank`, the rank each would have among the run's scored galaxies),
  ordered by a hash of the galaxy (never by score or truth), so that nothing but the pixels
  tells a blind item from a candidate;
- `blinds.truth.parquet`: what each item is (`truth`: lens / not_lens), where it came from
  (`source`), and a simulated lens's arc_snr and θE; read for calibration, never shown.

One item per host galaxy (the independent unit), never a galaxy among the candidates kept for
triage (the same galaxy twice in the stream would give it away), none with a known lens in
its stamp, from every split as the candidates are (items of one split only would be told
apart by where they are: the splits are regions of sky; the model's score, which a split
biases, is not shown while blind items are in the stream, and they measure people, not it):

- simulated lenses (`truth` = "lens"): injected rows, in a fixed pseudo-random order of their
  hosts (not chosen by score: an inspector's completeness must not inherit the model's);
- known non-lenses (`truth` = "not_lens"), as hard as the candidates, from a pool of
  (KNOWN_FROM): parent galaxies a consensus of inspectors graded X in earlier rounds (other
  runs of this workspace: galaxies people looked at and agreed are no lens — the field's
  practice of reusing graded non-lenses); parent galaxies a lookalike catalogue names (the
  spirals, rings, mergers and edge-on discs that fool lens finders, classified by people for
  a catalogue such as Galaxy Zoo's: known non-lenses before any round, and the high scorers a
  first round lacks); and the injection controls that are not candidates (real galaxies
  with no injected arc, below the candidates' scores, where a lens is a one-in-a-thousand
  event; a control among the candidates is never one: its truth is what the grading is for).
  A graded or catalogued galaxy may be among the candidates: drawn as a blind item, it
  leaves the candidates' stream (TriageStream), so it is seen once. Each is scored by the
  run's model and chosen to follow the candidates' score distribution: at k quantiles of the
  candidates' logits, the nearest pool item not yet taken, k the largest up to n/2 whose
  draw a two-sample KS test cannot tell from the candidates' scores (p > KS_ALPHA): fewer
  non-lenses that score as candidates do, rather than more that do not. When the pool has
  too few high scorers even for MIN_MATCHED, n/2 nearest and the KS p-value said, in the
  summary and the log.

The console mixes the items into the triage stream (core.candidates.TriageStream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract

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
    from jobs.survey import known_lenses

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
    usable = data["ok"].astype(bool) & ~data["known"]
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
    from jobs.learn.dataset import meta_features
    from jobs.learn.scoring import logits_of

    extra = None
    if meta_cols:
        values = {c: data[c][rows] for c in meta_cols} | {"task_id": np.arange(len(rows))}
        extra = meta_features(values, meta_cols)
    return logits_of(model, images, extra)


KNOWN_FROM = ("graded X", "catalogued lookalike", "injection control")  # a known non-lens's source
KS_ALPHA = 0.05  # a non-lens draw this KS p-value or above "follows the candidates' scores"
MIN_MATCHED = 10  # below this many the draw is not shrunk further to pass the KS test


def matched(pool: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Indexes into `pool` (logits) of k items following `target`'s distribution: at each of
    k quantiles of `target`, the nearest item not yet taken (the highest quantiles first: the
    scarce high scorers go where they are needed)."""
    free = np.ones(pool.size, bool)
    out = []
    for q in np.quantile(target, (np.arange(k) + 0.5) / k)[::-1]:
        if not free.any():
            break
        candidates = np.flatnonzero(free)
        pick = candidates[np.argmin(np.abs(pool[candidates] - q))]
        free[pick] = False
        out.append(pick)
    return np.array(out[::-1], dtype=np.int64)


def hard_draw(pool: np.ndarray, target: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Up to n pool items whose logits follow `target`'s (module doc): the largest draw the
    KS test cannot tell from `target` (p > KS_ALPHA), else n, with its p-value."""
    from scipy.stats import ks_2samp

    n = min(n, pool.size)
    if n == 0 or target.size == 0:
        return np.zeros(0, np.int64), float("nan")
    k = n
    while True:
        picked = matched(pool, target, k)
        p = float(ks_2samp(pool[picked], target).pvalue)
        if p > KS_ALPHA or k <= MIN_MATCHED:
            break
        k = max(MIN_MATCHED, int(k * 0.9))
    if p <= KS_ALPHA:  # the pool cannot follow them: all n, said as it is
        picked = matched(pool, target, n)
        p = float(ks_2samp(pool[picked], target).pvalue)
    return picked, p


def build(
    model: Any,
    meta_cols: list[str],
    stamps: Path,
    run: str,
    n: int,
    lenses: dict[str, np.ndarray],
    ranked: Any,  # jobs.learn.ranking.Ranking
    like: Any,
    exclude: set[str] | frozenset[str] = frozenset(),
    known: tuple[Any, list[str]] | None = None,
    chunk: int = 4096,
) -> tuple[Any, Any, dict[str, Any]]:
    """Up to `n` blind items (module doc) as (the items, their truth, a summary): `ranked` the
    run's whole ranking (jobs/learn/ranking.py: its rows looked up by galaxy), `like` the
    candidates table whose schema the items take and whose scores the non-lenses follow,
    `exclude` the candidates' galaxies ("brickname:objid"), `known` the parent rows (with
    stamp, score, logit) known to be no lens and where each is known from (graded X,
    catalogued lookalike)."""
    import pyarrow as pa

    from core.schemas import galaxy_keys, hash_order

    shape = tuple(stamp_contract.stamp_meta(like.schema)["shape"])
    parts = sorted(stamps.glob("part-*.parquet"))
    data = _eligible(parts, meta_cols, lenses, shape[-1]) if parts and n > 0 else {}
    if not data or not len(data["ok"]):
        data = {}
    keys = galaxy_keys(data["brickname"], data["objid"]) if data else np.zeros(0, object)
    control = data["is_control"].astype(bool) if data else np.zeros(0, bool)
    free = ~np.isin(keys, list(exclude))
    sims = np.flatnonzero(~control & free)
    sims = _one_per_galaxy(keys, sims[hash_order(keys[sims])])[: (n + 1) // 2] if sims.size else sims
    taken = set(keys[sims])
    graded, known_from = known if known is not None else (None, [])
    graded_keys = (
        galaxy_keys(graded.column("brickname").to_pylist(), graded.column("objid").to_pylist())
        if graded is not None and graded.num_rows
        else np.zeros(0, object)
    )
    graded_rows = np.array([i for i, k in enumerate(graded_keys) if k not in taken], np.int64)
    taken |= set(graded_keys[graded_rows])
    duds = np.array(
        [i for i in _one_per_galaxy(keys, np.flatnonzero(control & free)) if keys[i] not in taken], np.int64
    )
    # every pool control scored, a chunk at a time (only the logits kept)
    dud_logits = np.concatenate(
        [
            _logits(model, meta_cols, _stamps(parts, data, duds[s : s + chunk]), data, duds[s : s + chunk])
            for s in range(0, len(duds), chunk)
        ]
        or [np.zeros(0)]
    )
    pool = np.concatenate(
        [graded.column("logit").to_numpy()[graded_rows] if graded_rows.size else np.zeros(0), dud_logits]
    )
    target = like.column("logit").to_numpy(zero_copy_only=False).astype(float)
    picked, ks_p = hard_draw(pool, target[np.isfinite(target)], n // 2)
    from_graded = picked[picked < graded_rows.size]
    chosen = duds[picked[picked >= graded_rows.size] - graded_rows.size]
    both = np.concatenate([sims, chosen])
    images = _stamps(parts, data, both) if both.size else None
    logits = _logits(model, meta_cols, images, data, both) if images is not None else np.zeros(0)
    parent = ranked.rows_of([keys[i] for i in both] + [graded_keys[g] for g in graded_rows[from_graded]])
    items = []  # (parent row, logit, stamp bytes, truth row)
    for j, i in enumerate(both):
        lens = j < len(sims)
        items.append(
            (
                parent.get(keys[i]),
                float(logits[j]),
                images[j].tobytes(),
                {
                    "truth": "lens" if lens else "not_lens",
                    "source": "simulated lens" if lens else "injection control",
                    "arc_snr": float(data["arc_snr"][i]) if lens else None,
                    "theta_e_arcsec": float(data["theta_e_arcsec"][i]) if lens else None,
                },
            )
        )
    for g in graded_rows[from_graded]:
        row = graded.slice(int(g), 1).to_pylist()[0]
        truth = {"truth": "not_lens", "source": known_from[g], "arc_snr": None, "theta_e_arcsec": None}
        items.append((parent.get(graded_keys[g]), float(row["logit"]), row["stamp"], truth))
    items = [item for item in items if item[0] is not None]  # a host outside the parent sample: none
    table, truth = _tables(pa, items, ranked, like, run)
    counts = truth.column("truth").to_pylist()
    sources = truth.column("source").to_pylist()
    summary = {
        "lens": counts.count("lens"),
        "not_lens": counts.count("not_lens"),
        "not_lens_from": {s: sources.count(s) for s in KNOWN_FROM},
        "not_lens_ks_p": None if np.isnan(ks_p) else round(ks_p, 4),
    }
    return table, truth, summary


def _tables(pa: Any, items: list[tuple], ranked: Any, like: Any, run: str) -> tuple[Any, Any]:
    """The items as rows of `like`'s schema, in a hash order of their galaxies, and their
    truth in the same order."""
    from core.schemas import galaxy_keys, hash_order
    from jobs.learn.scoring import sigmoid

    rows = [dict(item[0]) for item in items]
    for row, (_, logit, stamp, _) in zip(rows, items, strict=True):
        score = float(sigmoid(np.array([logit]))[0])
        known = {c: None for c in like.schema.names if c.startswith("known_lens")}
        row |= known | {"score": score, "logit": logit, "run": run, "ok": True, "fail_reason": None}
        row["rank"] = ranked.rank_of(score)
        row["stamp"] = stamp
    table = pa.Table.from_pylist(
        [{c: row.get(c) for c in like.schema.names} for row in rows], schema=like.schema
    )
    truth_rows = [
        {"brickname": row["brickname"], "objid": int(row["objid"]), **item[3]}
        for row, item in zip(rows, items, strict=True)
    ]
    truth = pa.Table.from_pylist(truth_rows, schema=truth_schema(like.schema.field("objid").type))
    if rows:
        order = hash_order(
            galaxy_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist())
        )
        table, truth = table.take(order), truth.take(order)
    return table, truth


def truth_schema(objid: Any = None) -> Any:
    """`blinds.truth.parquet`'s columns (`objid` typed as the items' own, so the two join)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("brickname", pa.string()),
            ("objid", objid or pa.int64()),
            ("truth", pa.string()),
            ("source", pa.string()),
            ("arc_snr", pa.float64()),
            ("theta_e_arcsec", pa.float64()),
        ]
    )
