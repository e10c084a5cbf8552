"""The cutouts stage's command line and Spark step: real galaxies cut out of the coadds ->
stamps parquet, with no injection (the cutting itself: jobs/survey/cutting.py).

    python -m jobs.stages.cutouts --workspace DIR --variant V [--catalog FILE] [--cache DIR]
        [--workers N] [--rows-per-part N] [--force]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import storage
from core.layout import cutouts_dir
from jobs.runtime import partitions as partitioned
from jobs.runtime import stage as stage_runtime
from jobs.survey.cutting import input_of, positions, run, run_cutouts_spark


def spark_run(job: Any) -> None:
    """The stage as a Spark step (jobs/runtime/spark.py): the parent sample (or `catalog`)
    and the coadd cache under the workspace root in, the cutouts folder out. The positions,
    numbered, are written beside the output first: Spark's partitions keep their `row`."""
    from core.layout import coadd_cache_dir

    catalog = job.params.get("catalog")
    name, parent = input_of(job.config, catalog)
    table = positions(catalog or job.at(parent), catalog is not None)
    final = job.at(cutouts_dir(Path(""), name))
    numbered = f"{final}.positions.parquet"
    storage.write_parquet(table, numbered)
    cache = job.params.get("cache") or job.at(coadd_cache_dir(Path("")))

    def write(out: str) -> None:
        stamp_size = job.config.injection.stamp_size
        run_cutouts_spark(numbered, cache, stamp_size, out, job.codec, job.partitions)
        summary, _ = partitioned.summarise(out, table.num_rows, "row", "cutouts", "positions")
        storage.write_bytes(f"{out}/summary.json", json.dumps(summary, indent=2).encode())

    job.replace(final, write)


main = stage_runtime.entry("cutouts", run)

if __name__ == "__main__":
    raise SystemExit(main())
