"""`score` (inference): a trained run over real galaxies -> candidates parquet.

Every galaxy of the parent sample is cut out of the coadds (no injection), normalised as in
training and scored by the run's best model (float32). `candidates.parquet` holds one row per
galaxy, sorted by score (highest first; galaxies that could not be cut out last, with
`ok = false` and the reason): ids, ra, dec, brick, split, psfsize_r, score (the sigmoid of
the logit), logit, run, the stamp, and — for a galaxy within 3″ of a known lens (the shipped
lenscat table or the workspace's catalogs/known_lenses.csv) — the lens's name, grade and
reference. The summary lists every known lens among them with its rank ("known-lens
recovery"). `hard_negatives.parquet` lists the top-scoring injection controls (galaxies known
to hold no injected arc, known lenses excluded) for hard-negative mining.

`--catalog FILE` scores any list of positions instead (CSV, parquet or FITS with ra, dec and
optionally name, population), cut from the cached coadds, into
`data/candidates/<run>/catalog-<file stem>.parquet`: a lookalike sample, a DR10 user's own
targets.

    python -m jobs.score --workspace DIR --variant V [--grid G] [--run NAME] [--hard-negatives N]
        [--catalog FILE] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from core.layout import candidates_dir
from jobs import stage_runtime

PARENT_COLUMNS = ("brickname", "objid", "ra", "dec", "split", "psfsize_r", "mag_r", "mag_z", "type")
CATALOG_COLUMNS = ("name", "population", "ra", "dec")
KNOWN_COLUMNS = ("known_lens", "known_lens_grade", "known_lens_reference", "known_lens_sep_arcsec")


def _ranked_table(
    columns: dict[str, np.ndarray], scored: dict[str, Any], names: tuple[str, ...], run: str, size: int
) -> tuple[Any, np.ndarray]:
    """The rows sorted by score (unusable ones last) as an Arrow table with the stamps."""
    import pyarrow as pa

    ok, scores, logits = scored["ok"], scored["score"], scored["logit"]
    order = np.argsort(np.where(ok, -scores, np.inf), kind="stable")
    n = len(order)
    data = {
        "rank": np.arange(1, n + 1),
        **{c: [_plain(columns[c][i]) for i in order] for c in names if c in columns},
        "score": [float(scores[i]) if ok[i] else None for i in order],
        "logit": [float(logits[i]) if ok[i] else None for i in order],
        "run": [run] * n,
        "ok": [bool(ok[i]) for i in order],
        "fail_reason": [scored["fail_reason"][i] for i in order],
        **{c: [columns[c][i] for i in order] for c in KNOWN_COLUMNS},
        "stamp": [scored["stamps"][i].tobytes() for i in order],
    }
    table = pa.table(data).replace_schema_metadata(stamp_contract.arrow_metadata((3, size, size)))
    return table, order


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def recovery(table: Any) -> list[dict[str, Any]]:
    """The known lenses among ranked candidates, each once (by its nearest galaxy: a
    neighbour within 3″ carries the name too): name, rank, score, grade, reference."""
    rows = [r for r in table.select(["rank", "score", "ok", *KNOWN_COLUMNS]).to_pylist() if r["known_lens"]]
    nearest: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["known_lens_sep_arcsec"]):
        nearest.setdefault(r["known_lens"], r)
    return [
        {
            "name": r["known_lens"],
            "rank": r["rank"] if r["ok"] else None,
            "of": table.num_rows,
            "score": r["score"],
            "grade": r["known_lens_grade"],
            "reference": r["known_lens_reference"],
            "separation_arcsec": r["known_lens_sep_arcsec"],
        }
        for r in sorted(nearest.values(), key=lambda r: r["rank"])
    ]


def run(
    workspace: Path,
    variant: str,
    grid: str | None = None,
    run_name: str | None = None,
    hard_negatives: int = 100,
    cache: str | None = None,
    catalog: str | None = None,
) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from core.layout import runs_dir, stamps_dir
    from core.names import check_name
    from core.stamps import write_stamps
    from jobs import known_lenses
    from jobs.coadd_reader import CoaddReader
    from jobs.coadds import default_cache
    from jobs.models import load_run
    from jobs.scoring import score_positions
    from jobs.select import parent_dir
    from jobs.train import default_run_name

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    run_name = check_name(
        "run", run_name or default_run_name(variant, grid, config.variants[variant].default_preset)
    )
    model, meta_cols = load_run(runs_dir(workspace) / run_name)
    size = config.variants[variant].injection.stamp_size
    reader = CoaddReader(cache or default_cache(workspace), size, with_invvar=False)
    lenses = known_lenses.load(workspace)
    out = candidates_dir(workspace, run_name)
    if catalog is not None:
        from jobs.catalogs import read_positions

        columns = read_positions(catalog)
        names = CATALOG_COLUMNS
        target = f"catalog-{_stem(catalog)}.parquet"
    else:
        parent_path = parent_dir(workspace, config.variants[variant].parent_sample) / "parent.parquet"
        if not parent_path.exists():
            raise stage_runtime.StageError(f"{parent_path}: no parent sample; run `halo stage select` first")
        columns = {k: np.asarray(v) for k, v in pq.read_table(parent_path).to_pydict().items()}
        names = PARENT_COLUMNS
        target = "candidates.parquet"
    columns |= known_lenses.annotate(columns["ra"], columns["dec"], lenses)
    scored = score_positions(model, meta_cols, reader, columns, keep_stamps=True)
    table, _ = _ranked_table(columns, scored, names, run_name, size)
    n = table.num_rows
    found = recovery(table)
    summary: dict[str, Any] = {
        "run": run_name,
        "candidates": n,
        "scored": int(scored["ok"].sum()),
        "flagged": int((~scored["ok"]).sum()),
        "known_lenses": found,
        "top": table.select(
            ["rank", *[c for c in ("brickname", "objid", "name") if c in table.column_names], "score"]
        )
        .slice(0, 10)
        .to_pylist(),
    }
    if catalog is None:
        hard = _hard_negatives(
            model, meta_cols, stamps_dir(workspace, variant, grid), run_name, hard_negatives, lenses
        )
        summary["hard_negatives"] = hard.num_rows
    digest = stage_runtime.fingerprint("score", run_name, target, n)
    summary_name = "summary.json" if catalog is None else f"{Path(target).stem}.summary.json"
    written = (target, summary_name, *(("hard_negatives.parquet",) if catalog is None else ()))
    with stage_runtime.atomic_dir(out, digest, replaces=written) as tmp:  # other files stay
        write_stamps(table, tmp / target, "zstd")
        if catalog is None:
            pq.write_table(hard, tmp / "hard_negatives.parquet")
        (tmp / summary_name).write_text(json.dumps(summary, indent=2))
    for row in summary["top"]:
        label = row.get("name") or f"{row.get('brickname')} {row.get('objid')}"
        print(f"score: #{row['rank']} {label} {row['score']}", flush=True)
    for lens in found:
        where = f"#{lens['rank']} of {n}" if lens["rank"] else "not scored"
        print(f"score: known lens {lens['name']} ({lens['grade']}): {where}", flush=True)
    outputs = [str(out / target)] + ([str(out / "hard_negatives.parquet")] if catalog is None else [])
    return {"outputs": outputs, **summary}


def _stem(catalog: str) -> str:
    from core.names import check_name

    name = Path(str(catalog).rstrip("/")).name
    for suffix in (".gz", ".csv", ".parquet", ".fits", ".fit"):
        name = name.removesuffix(suffix)
    return check_name("catalogue", "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "catalog")


def _hard_negatives(
    model: Any, meta_cols: list[str], stamps: Path, run: str, top: int, lenses: dict[str, np.ndarray]
) -> Any:
    """The highest-scoring injection controls: real galaxies with no injected arc, one row per
    galaxy, known lenses left out (a lens is not a negative, however hard)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from core.schemas import galaxy_keys
    from jobs import known_lenses
    from jobs.dataset import read_columns
    from jobs.scoring import logits_of, sigmoid

    parts = sorted(stamps.glob("part-*.parquet"))
    if not parts or top <= 0:
        return pa.table({"task_id": pa.array([], pa.int64())})
    columns = ["task_id", "brickname", "objid", "ra", "dec", "split", "is_control", "ok", "stamp", *meta_cols]
    table, skipped = read_columns([str(p) for p in parts], list(dict.fromkeys(columns)))
    for bad in skipped:
        print(f"score: hard negatives: skipped {bad['file']}: {bad['reason']}", flush=True)
    if table is None:
        return pa.table({"task_id": pa.array([], pa.int64())})
    table = table.filter(pc.and_(table.column("is_control"), table.column("ok")))
    keys = galaxy_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist())
    first = np.sort(np.unique(keys, return_index=True)[1])  # one row per galaxy
    table = table.take(first)
    not_lens = known_lenses.match(table.column("ra").to_numpy(), table.column("dec").to_numpy(), lenses) < 0
    table = table.filter(pa.array(not_lens))
    meta = stamp_contract.stamp_meta(table.schema)
    images = stamp_contract.decode(table.column("stamp"), meta)
    extra = None
    if meta_cols:
        from jobs.dataset import meta_features

        values = {c: table.column(c).to_numpy() for c in meta_cols} | {"task_id": np.arange(table.num_rows)}
        extra = meta_features(values, meta_cols)
    scores = sigmoid(logits_of(model, images, extra))
    order = np.argsort(-scores, kind="stable")[:top]
    picked = table.take(order).drop_columns(["stamp", "is_control", "ok"])
    return picked.append_column("score", pa.array(scores[order])).append_column(
        "run", pa.array([run] * len(order))
    )


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("score", "A trained run over real galaxies -> candidates parquet.")
    p.add_argument("--grid", help="the run's grid [default: the variant's]")
    p.add_argument("--run", help="run name [default: <variant>-<grid>-<default preset>]")
    p.add_argument("--hard-negatives", type=int, default=100, help="how many top-scoring controls to list")
    p.add_argument("--cache", help="coadd cache folder or s3:// prefix [default: data/coadd_cache]")
    p.add_argument("--catalog", help="score these positions (ra, dec[, name, population]) instead")
    args = p.parse_args(argv)
    return stage_runtime.main("score", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        args.workspace.resolve(),
        args.variant,
        args.grid,
        args.run,
        args.hard_negatives,
        args.cache,
        args.catalog,
    )


if __name__ == "__main__":
    raise SystemExit(main())
