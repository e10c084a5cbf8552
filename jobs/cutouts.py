"""`cutouts`: real galaxies cut out of the coadds -> stamps parquet, with no injection.

The parent sample (default) or any catalogue of positions (`--catalog FILE`: CSV, parquet or
FITS with ra, dec and optionally name, population), partitioned by brick and resumable, one
per-partition function (`cut_partition`) for the local runner (jobs/partitioned.py) and
Spark. Each row: `row` (the position's index in its input), the position's columns, the
observing conditions a metadata model may use, `ok`, `fail_reason` (outside the footprint, the
stamp leaves its brick, non-finite pixels, an unreadable brick) and the stamp. `score` streams
these files, so scoring never holds more than a batch of stamps.

    python -m jobs.cutouts --workspace DIR --variant V [--catalog FILE] [--cache DIR]
        [--workers N] [--rows-per-part N] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from core import storage
from core.layout import cutouts_dir, parent_dir
from core.leakage import ALLOWED
from jobs import partitioned, stage_runtime
from jobs.partitioned import ROWS_PER_PART

PARTITION = "jobs.cutouts:cut_partition"
PARENT_COLUMNS = ("brickname", "objid", "ra", "dec", "split", "type", "mag_r", "mag_z")
CATALOG_COLUMNS = ("name", "population", "ra", "dec", "brickname")


@dataclass(frozen=True)
class CutoutSettings:
    cache: str
    stamp_size: int = 64


_READERS: dict[str, Any] = {}


def cut_partition(batch: Any, settings_json: str) -> Any:
    """Positions (an Arrow table with `row`, `ra`, `dec`, `brickname`, ...) -> the same rows
    with `ok`, `fail_reason` and `stamp`."""
    import pyarrow as pa

    from jobs.coadd_reader import CoaddReader
    from jobs.scoring import cut_positions

    settings = CutoutSettings(**json.loads(settings_json))
    if settings_json not in _READERS:
        _READERS.clear()
        _READERS[settings_json] = CoaddReader(settings.cache, settings.stamp_size, with_invvar=False)
    columns = batch.to_pydict()
    stamps, ok, reasons = cut_positions(
        _READERS[settings_json],
        np.asarray(columns["ra"]),
        np.asarray(columns["dec"]),
        np.asarray(columns["brickname"]),
    )
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    table = table.append_column("ok", pa.array(ok.tolist(), pa.bool_()))
    table = table.append_column("fail_reason", pa.array(reasons, pa.string()))
    table = table.append_column("stamp", pa.array([s.tobytes() for s in stamps], pa.binary()))
    meta = stamp_contract.arrow_metadata((3, settings.stamp_size, settings.stamp_size))
    return table.replace_schema_metadata(meta).combine_chunks().to_batches()[0]


def output_schema(positions: Any, stamp_size: int) -> Any:
    """The cutouts' schema: the positions' columns, then ok, fail_reason and the stamp."""
    import pyarrow as pa

    fields = [*positions, pa.field("ok", pa.bool_()), pa.field("fail_reason", pa.string())]
    fields.append(pa.field("stamp", pa.binary()))
    return pa.schema(fields, metadata=stamp_contract.arrow_metadata((3, stamp_size, stamp_size)))


def run_cutouts_spark(
    positions: str,
    cache: str,
    stamp_size: int,
    output: str,
    codec: str = "zstd",
    partitions: int | None = None,
) -> None:
    """Every position of the parquet `positions` cut out with Spark into the folder `output`."""
    import pyarrow.parquet as pq

    from core import storage
    from jobs.spark_pipeline import run_spark

    settings = json.dumps(asdict(CutoutSettings(cache, stamp_size)))
    fs, path = storage.arrow_fs(positions)
    schema = output_schema(pq.read_schema(path, filesystem=fs), stamp_size)
    run_spark(positions, PARTITION, settings, schema, output, codec, ("brickname", "row"), partitions)


def input_of(workspace: Path, variant: str, catalog: str | None, config: Any) -> tuple[str, str]:
    """The input's name (its cutouts folder) and file (a local path or s3:// URI): the
    catalogue, or the parent sample."""
    if catalog is not None:
        from jobs.catalogs import catalog_stem

        return f"catalog-{catalog_stem(catalog)}", str(catalog)
    parent_name = config.variants[variant].parent_sample
    path = parent_dir(workspace, parent_name) / "parent.parquet"
    if not path.exists():
        raise stage_runtime.StageError(f"{path}: no parent sample; run `halo stage select` first")
    return parent_name, str(path)


def positions(source: str, is_catalog: bool) -> Any:
    """The input's rows as an Arrow table with `row` and `brickname`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_catalog:
        from jobs.catalogs import read_positions
        from jobs.survey_layout import brick_at

        columns = read_positions(source)
        pairs = zip(columns["ra"], columns["dec"], strict=True)
        columns["brickname"] = np.array([brick_at(float(r), float(d)).name for r, d in pairs])
        return _numbered(
            pa.table(
                {
                    c: columns[c].tolist() if columns[c].dtype == object else columns[c]
                    for c in CATALOG_COLUMNS
                    if c in columns
                }
            )
        )
    present = pq.read_schema(source).names
    wanted = [c for c in (*PARENT_COLUMNS, *sorted(ALLOWED)) if c in present]
    return _numbered(pq.read_table(source, columns=wanted))


def _numbered(table: Any) -> Any:
    import pyarrow as pa

    return table.add_column(0, "row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def run(
    workspace: Path,
    variant: str,
    catalog: str | None = None,
    cache: str | None = None,
    workers: int | None = None,
    force: bool = False,
    rows_per_part: int = ROWS_PER_PART,
    runner: str = "local",
) -> dict[str, Any]:
    from jobs.coadds import default_cache

    config, _ = stage_runtime.resolve(workspace, variant)
    name, source = input_of(workspace, variant, catalog, config)
    settings = CutoutSettings(
        cache or default_cache(workspace), config.variants[variant].injection.stamp_size
    )
    final = cutouts_dir(workspace, name)
    digest = stage_runtime.fingerprint("cutouts", asdict(settings), rows_per_part, storage.signature(source))
    if not force and stage_runtime.up_to_date(final, digest):  # the input is not even read
        print(f"cutouts {final} are up to date (use --force to redo them)", flush=True)
        return {"outputs": [str(final)], "skipped": True}
    table = positions(source, catalog is not None)
    staging = partitioned.staging_for(final, digest, force)
    if runner == "spark":
        import pyarrow.parquet as pq

        source = staging / "positions.parquet"
        pq.write_table(table, source)
        run_cutouts_spark(str(source), settings.cache, settings.stamp_size, str(staging / "spark"))
    else:
        parts = partitioned.partitions(table, rows_per_part, ("brickname", "row"))
        workers = workers or min(2, os.cpu_count() or 1)
        settings_json = json.dumps(asdict(settings))
        partitioned.run_local("cutouts", PARTITION, parts, settings_json, staging, "zstd", workers)
    summary, _ = partitioned.summarise(staging, table.num_rows, "row", "cutouts", "positions")
    partitioned.publish(staging, final, digest, {"summary.json": summary})
    return {"outputs": [str(final)], "input": name, **summary}


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("cutouts", "Real galaxies cut out of the coadds -> stamps parquet.")
    p.add_argument("--catalog", help="cut these positions (ra, dec[, name, population]) instead")
    p.add_argument("--cache", help="coadd cache folder or s3:// prefix [default: data/coadd_cache]")
    p.add_argument("--workers", type=int, help="local runner processes [default: up to 2]")
    p.add_argument("--rows-per-part", type=int, default=ROWS_PER_PART, help="positions per partition")
    p.add_argument("--runner", choices=("local", "spark"), default="local")
    args = p.parse_args(argv)
    return stage_runtime.main("cutouts", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        args.workspace.resolve(),
        args.variant,
        args.catalog,
        args.cache,
        args.workers,
        args.force,
        args.rows_per_part,
    )


if __name__ == "__main__":
    raise SystemExit(main())
