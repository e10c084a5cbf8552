"""The Spark entry point: `spark-submit jobs/runtime/spark.py --stage S --workspace ROOT ...`.

Every stage declared with `spark=True` (core/stages.py) has a `spark_run(SparkJob)`: it finds
its inputs and outputs under the workspace ROOT (an s3:// prefix on EMR, or a folder) through
core/layout.py, as it does locally. The EMR backend builds the same arguments for any such
stage (core/backends/emr.py `step_args`): it knows no stage's internals. On EMR the project
code travels with `--py-files` (a zip of `core` and `jobs`); locally the stages' `--runner
spark` calls `run_spark` with a local-mode session. Either way the partitions go through the
same per-partition function as the local runner (jobs/runtime/partitions.py), via `mapInArrow`, and
Spark's output committer writes the part files atomically: a retried task leaves no duplicate
rows. A step writes beside its output and replaces it only once it succeeded
(`core.storage.replace_folder`)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SparkJob:
    """One stage's run as a Spark step: where the workspace is, its config, its options."""

    root: str  # the workspace: an s3:// prefix or a folder
    variants: dict[str, Any]  # core.config.Variant by name: the variant and its parent sample's
    variant: str
    params: dict[str, Any]  # the launch's options, with the declared defaults
    codec: str = "zstd"
    partitions: int | None = None
    sources: dict[str, Any] = dataclass_field(default_factory=dict)  # grid -> core.config.SourceModel

    @property
    def grid(self) -> str:
        """The grid the launch names, else the variant's default."""
        return self.params.get("grid") or self.config.default_grid

    def at(self, relative: Path) -> str:
        """A workspace path (made from `Path("")` by core/layout.py) under this job's root."""
        from core.layout import under

        return under(self.root, relative)

    @property
    def config(self) -> Any:
        return self.variants[self.variant]

    def replace(self, final: str, write: Any) -> None:
        """`write(folder)` into a folder beside `final`, which it then replaces whole."""
        from core.storage import replace_folder

        fresh = f"{final.rstrip('/')}.next"
        write(fresh)
        replace_folder(fresh, final)


def spark_schema(schema: Any) -> Any:
    """An Arrow schema as Spark types; the stamp's shape and dtype go in its field metadata."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from core.stamps import META_KEY

    mapping = {
        pa.int64(): T.LongType(),
        pa.int32(): T.IntegerType(),
        pa.int16(): T.ShortType(),
        pa.string(): T.StringType(),
        pa.large_string(): T.StringType(),
        pa.float64(): T.DoubleType(),
        pa.float32(): T.FloatType(),
        pa.bool_(): T.BooleanType(),
        pa.binary(): T.BinaryType(),
    }
    stamp = (schema.metadata or {}).get(META_KEY, b"{}").decode()
    fields = []
    for field in schema:
        meta = {"halo.stamp": stamp} if field.name == "stamp" else {}
        fields.append(T.StructField(field.name, mapping[field.type], True, meta))
    return T.StructType(fields)


def session(app: str) -> Any:
    """A Spark session: the cluster's under spark-submit, else local mode on this machine."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if "SPARK_ENV_LOADED" not in os.environ and "spark.master" not in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    ):
        builder = builder.master(os.environ.get("HALO_SPARK_MASTER", "local[2]"))
    return builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", "500").getOrCreate()


def map_partitions(frame: Any, function: str, settings_json: str, schema: Any) -> Any:
    """`frame` through the per-partition function `module:name` (as the local runner takes
    it), batch by batch (`mapInArrow`), into a DataFrame of Arrow `schema`."""

    def apply(batches: Any) -> Any:
        from jobs.runtime.partitions import partition_function

        run = partition_function(function)
        for batch in batches:
            yield run(batch, settings_json)

    return frame.mapInArrow(apply, spark_schema(schema))


def run_spark(
    source: str,
    function: str,
    settings_json: str,
    schema: Any,
    output: str,
    codec: str,
    order: tuple[str, ...],
    partitions: int | None = None,
) -> None:
    """`function` over every row of the parquet `source`, partitioned by brick, into the
    parquet folder `output` with Arrow `schema`."""
    spark = session(f"halo-{function.rsplit(':', 1)[-1]}")
    frame = spark.read.parquet(source)
    frame = frame.repartition(partitions or max(2, frame.rdd.getNumPartitions()), "brickname")
    frame = frame.sortWithinPartitions(*order)
    out = map_partitions(frame, function, settings_json, schema)
    out.write.mode("overwrite").option("compression", codec).parquet(output)


def parse(argv: list[str] | None = None) -> tuple[Any, SparkJob]:
    """A step's arguments as (its stage's declaration, the job), checked as at launch."""
    from core.config import sources_from_json, variants_from_json
    from core.stages import SHIPPED

    stages = {stage.name: stage for stage in SHIPPED if stage.spark}
    p = argparse.ArgumentParser(prog="spark_pipeline.py", description=__doc__.splitlines()[0])
    p.add_argument("--stage", required=True, choices=sorted(stages))
    p.add_argument("--workspace", required=True, help="the workspace: an s3:// prefix or a folder")
    p.add_argument("--variant", required=True)
    p.add_argument("--config", required=True, help="core.config.spark_config's JSON")
    p.add_argument("--params", default="{}", help="the launch's options as JSON, checked here again")
    p.add_argument("--codec", default="zstd", choices=("zstd", "gzip", "snappy"))
    p.add_argument("--partitions", type=int)
    args = p.parse_args(argv)
    stage = stages[args.stage]
    config = json.loads(args.config)
    variants = variants_from_json(config)
    if args.variant not in variants:
        p.error(f"--variant {args.variant!r} is not in --config")
    params = {p.name: p.parse(p.default) for p in stage.params if p.default is not None}
    params.update((key, stage.param(key).parse(value)) for key, value in json.loads(args.params).items())
    job = SparkJob(
        args.workspace, variants, args.variant, params, args.codec, args.partitions, sources_from_json(config)
    )
    return stage, job


def main(argv: list[str] | None = None) -> int:
    stage, job = parse(argv)
    importlib.import_module(stage.module).spark_run(job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
