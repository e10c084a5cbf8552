"""`score` (inference): a trained run over the real parent sample -> candidates parquet.

Every galaxy of the parent sample is cut out of the coadds (no injection), normalised as in
training and scored by the run's best model. `candidates.parquet` holds one row per galaxy,
sorted by score (highest first; galaxies that could not be cut out last, with `ok = false`
and the reason): ids, ra, dec, brick, split, psfsize_r, score (the sigmoid of the logit),
logit, run and the stamp. `hard_negatives.parquet` lists the top-scoring injection controls
(galaxies known to hold no injected arc) for hard-negative mining.

    python -m jobs.score --workspace DIR --variant V [--grid G] [--run NAME] [--hard-negatives N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from jobs import stage_runtime


def candidates_dir(workspace: Path, run: str) -> Path:
    return workspace / "data" / "candidates" / run


def _logits(model: Any, stamps: np.ndarray, meta: np.ndarray | None, batch: int = 256) -> np.ndarray:
    import torch

    from jobs.dataset import robust_normalise

    out = []
    with torch.no_grad():
        for start in range(0, len(stamps), batch):
            images = torch.from_numpy(robust_normalise(stamps[start : start + batch]))
            m = torch.from_numpy(meta[start : start + batch]) if meta is not None else None
            out.append(model(images, m).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def run(
    workspace: Path,
    variant: str,
    grid: str | None = None,
    run_name: str | None = None,
    hard_negatives: int = 100,
    cache: str | None = None,
) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.names import check_name
    from jobs.coadds import default_cache
    from jobs.dataset import meta_features
    from jobs.inject import BrickUnavailable, CoaddReader, stamps_dir, write_stamps
    from jobs.models import load_run
    from jobs.select import parent_dir
    from jobs.train import default_run_name, runs_dir

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    run_name = check_name(
        "run", run_name or default_run_name(variant, grid, config.variants[variant].default_preset)
    )
    model, meta_cols = load_run(runs_dir(workspace) / run_name)
    parent_path = parent_dir(workspace, config.variants[variant].parent_sample) / "parent.parquet"
    if not parent_path.exists():
        raise stage_runtime.StageError(f"{parent_path}: no parent sample; run `halo stage select` first")
    parent = pq.read_table(parent_path).to_pydict()
    size = config.variants[variant].injection.stamp_size
    reader = CoaddReader(cache or default_cache(workspace), size)
    n = len(parent["objid"])
    stamps = np.zeros((n, 3, size, size), dtype=np.float32)
    ok = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    for i in range(n):
        try:
            cut = reader.cutout(parent["brickname"][i], parent["ra"][i], parent["dec"][i])
            stamps[i] = cut.stamp
            if not cut.inside:
                ok[i], reasons[i] = False, f"edge: the stamp leaves brick {parent['brickname'][i]}"
        except BrickUnavailable as err:
            ok[i], reasons[i] = False, str(err)
    meta = meta_features({k: np.asarray(v) for k, v in parent.items()} | {"task_id": np.arange(n)}, meta_cols)
    logits = np.full(n, np.nan, dtype=np.float32)
    good = np.flatnonzero(ok)
    logits[good] = _logits(model, stamps[good], meta[good] if meta_cols else None)
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    order = np.argsort(np.where(ok, -scores, np.inf), kind="stable")
    columns = {
        "rank": np.arange(1, n + 1),
        **{
            c: [parent[c][i] for i in order]
            for c in ("brickname", "objid", "ra", "dec", "split", "psfsize_r", "mag_r", "mag_z", "type")
        },
        "score": [None if not ok[i] else float(scores[i]) for i in order],
        "logit": [None if not ok[i] else float(logits[i]) for i in order],
        "run": [run_name] * n,
        "ok": [bool(ok[i]) for i in order],
        "fail_reason": [reasons[i] for i in order],
        "stamp": [stamps[i].tobytes() for i in order],
    }
    table = pa.table(columns).replace_schema_metadata(stamp_contract.arrow_metadata((3, size, size)))
    out = candidates_dir(workspace, run_name)
    hard = _hard_negatives(model, meta_cols, stamps_dir(workspace, variant, grid), run_name, hard_negatives)
    digest = stage_runtime.fingerprint("score", run_name, n)
    with stage_runtime.atomic_dir(out, digest) as tmp:
        write_stamps(table, tmp / "candidates.parquet", "zstd")
        pq.write_table(hard, tmp / "hard_negatives.parquet")
        summary = {
            "run": run_name,
            "candidates": n,
            "scored": int(ok.sum()),
            "flagged": int((~ok).sum()),
            "hard_negatives": hard.num_rows,
            "top": [
                {
                    "rank": k + 1,
                    "brickname": columns["brickname"][k],
                    "objid": columns["objid"][k],
                    "score": columns["score"][k],
                }
                for k in range(min(10, n))
            ],
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    for row in summary["top"]:
        print(f"score: #{row['rank']} {row['brickname']} {row['objid']} {row['score']}", flush=True)
    return {"outputs": [str(out / "candidates.parquet"), str(out / "hard_negatives.parquet")], **summary}


def _hard_negatives(model: Any, meta_cols: list[str], stamps: Path, run: str, top: int) -> Any:
    """The highest-scoring injection controls: real galaxies with no injected arc."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = sorted(stamps.glob("part-*.parquet"))
    if not parts or top <= 0:
        return pa.table({"task_id": pa.array([], pa.int64())})
    columns = ["task_id", "brickname", "objid", "ra", "dec", "split", "is_control", "ok", "stamp", *meta_cols]
    table = pq.read_table(parts, columns=list(dict.fromkeys(columns)))
    table = table.filter(pc.and_(table.column("is_control"), table.column("ok")))
    # one row per galaxy: a galaxy serves several control tasks with the same stamp
    keys = [
        f"{b}:{o}"
        for b, o in zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), strict=True)
    ]
    first = sorted({k: i for i, k in reversed(list(enumerate(keys)))}.values())
    table = table.take(first)
    meta = stamp_contract.stamp_meta(pq.read_schema(parts[0]))
    images = stamp_contract.decode(table.column("stamp"), meta)
    extra = None
    if meta_cols:
        from jobs.dataset import meta_features

        values = {c: table.column(c).to_numpy() for c in meta_cols} | {"task_id": np.arange(table.num_rows)}
        extra = meta_features(values, meta_cols)
    scores = 1.0 / (1.0 + np.exp(-_logits(model, images, extra).astype(np.float64)))
    order = np.argsort(-scores, kind="stable")[:top]
    picked = table.take(order).drop_columns(["stamp", "is_control", "ok"])
    return picked.append_column("score", pa.array(scores[order])).append_column(
        "run", pa.array([run] * len(order))
    )


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("score", "A trained run over the parent sample -> candidates parquet.")
    p.add_argument("--grid", help="the run's grid [default: the variant's]")
    p.add_argument("--run", help="run name [default: <variant>-<grid>-<default preset>]")
    p.add_argument("--hard-negatives", type=int, default=100, help="how many top-scoring controls to list")
    p.add_argument("--cache", help="coadd cache folder or s3:// prefix [default: data/coadd_cache]")
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
    )


if __name__ == "__main__":
    raise SystemExit(main())
