"""`cutouts`: real galaxies cut out of the coadds -> stamps parquet, with no injection.

The parent sample (default) or any catalogue of positions (`--catalog FILE`: CSV, parquet or
FITS with ra, dec and optionally name, population), partitioned by brick and resumable, one
per-partition function (`cut_partition`) for the local runner (jobs/runtime/partitions.py) and
Spark. Each row: `row` (the position's index in its input), the position's columns, the
observing conditions a metadata model may use, `ok`, `fail_reason` (outside the footprint, the
stamp leaves its brick, non-finite pixels, an unreadable brick) and the stamp. `score` streams
these files, so scoring never holds more than a batch of stamps. The cutouts stage
(jobs/stages/cutouts.py) is its command line and Spark step; score cuts through it too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import stamps as stamp_contract
from core import storage
from core.layout import cutouts_dir, parent_file
from core.leakage import ALLOWED
from jobs.runtime import partitions as partitioned
from jobs.runtime import stage as stage_runtime
from jobs.runtime.partitions import ROWS_PER_PART

PARTITION = "jobs.survey.cutting:cut_partition"
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

    from jobs.survey.coadd_reader import CoaddReader, cut_positions

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

    from jobs.runtime.spark import run_spark

    settings = json.dumps(asdict(CutoutSettings(cache, stamp_size)))
    schema = output_schema(storage.parquet_file(positions).schema_arrow, stamp_size)
    run_spark(positions, PARTITION, settings, schema, output, codec, ("brickname", "row"), partitions)


def input_of(variant: Any, catalog: str | None) -> tuple[str, Path | None]:
    """The input's name (its cutouts folder) and, for the parent sample, its path in the
    workspace (made from `Path("")`); a catalogue names itself."""
    if catalog is not None:
        from jobs.survey.catalogs import catalog_stem

        return f"catalog-{catalog_stem(catalog)}", None
    return variant.parent_sample, parent_file(Path(""), variant.parent_sample)


def positions(source: str, is_catalog: bool) -> Any:
    """The input's rows as an Arrow table with `row` and `brickname`."""
    import pyarrow as pa

    if is_catalog:
        from jobs.survey.catalogs import read_positions
        from jobs.survey.layout import brick_at

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
    present = storage.parquet_columns(source)  # a file or a folder of parts (Spark's select)
    wanted = [c for c in (*PARENT_COLUMNS, *sorted(ALLOWED)) if c in present]
    return _numbered(storage.read_parquet(source, wanted))


def _numbered(table: Any) -> Any:
    import pyarrow as pa

    return table.add_column(0, "row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def run(
    workspace: Path,
    variant: str,
    *,
    catalog: str | None = None,
    cache: str | None = None,
    workers: int | None = None,
    force: bool = False,
    rows_per_part: int = ROWS_PER_PART,
    runner: str = "local",
) -> dict[str, Any]:
    from core.layout import coadd_cache_dir

    config, _ = stage_runtime.resolve(workspace, variant)
    name, parent = input_of(config.variants[variant], catalog)
    source = str(catalog) if parent is None else str(workspace / parent)
    if parent is not None and not Path(source).exists():
        raise stage_runtime.StageError(f"{source}: no parent sample; run `halo stage select` first")
    settings = CutoutSettings(
        cache or str(coadd_cache_dir(workspace)), config.variants[variant].injection.stamp_size
    )
    final = cutouts_dir(workspace, name)
    digest = stage_runtime.fingerprint("cutouts", asdict(settings), rows_per_part, storage.signature(source))
    if not force and stage_runtime.up_to_date(final, digest):  # the input is not even read
        stage_runtime.unchanged(f"cutouts: {final} is")
        return {"outputs": [str(final)], "skipped": True}
    table = positions(source, catalog is not None)
    staging = partitioned.staging_for(final, digest, force)
    if runner == "spark":
        source = str(staging / "positions.parquet")
        storage.write_parquet(table, source)
        run_cutouts_spark(source, settings.cache, settings.stamp_size, str(staging / "spark"))
    else:
        parts = partitioned.partitions(table, rows_per_part, ("brickname", "row"))
        workers = workers or min(2, os.cpu_count() or 1)
        settings_json = json.dumps(asdict(settings))
        partitioned.run_local("cutouts", PARTITION, parts, settings_json, staging, "zstd", workers)
    summary, _ = partitioned.summarise(staging, table.num_rows, "row", "cutouts", "positions")
    partitioned.publish(staging, final, digest, {"summary.json": summary})
    return {"outputs": [str(final)], "input": name, **summary}
