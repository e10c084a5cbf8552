"""The Spark entry point: `spark-submit jobs/spark_pipeline.py --stage inject|cutouts ...`.

On EMR the project code travels with `--py-files` (a zip of `core` and `jobs`); locally the
stages call `run_spark` with a local-mode session. Either way the partitions go through the
same per-partition function as the local runner (jobs/partitioned.py), via `mapInArrow`, and
Spark's output committer writes the part files atomically: a retried task leaves no duplicate
rows."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from jobs.inject_batch import InjectSettings, output_schema
from jobs.lensing import ENGINES


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
    """`function` (module:name, as the local runner takes it) over every row of the parquet
    `source`, partitioned by brick, into the parquet folder `output` with Arrow `schema`."""
    spark = session(f"halo-{function.rsplit(':', 1)[-1]}")

    def apply(batches: Any) -> Any:
        from jobs.partitioned import partition_function

        run = partition_function(function)
        for batch in batches:
            yield run(batch, settings_json)

    frame = spark.read.parquet(source)
    frame = frame.repartition(partitions or max(2, frame.rdd.getNumPartitions()), "brickname")
    frame = frame.sortWithinPartitions(*order)
    out = frame.mapInArrow(apply, spark_schema(schema))
    out.write.mode("overwrite").option("compression", codec).parquet(output)


def run_inject_spark(
    manifest: str, settings: InjectSettings, output: str, codec: str, partitions: int | None = None
) -> None:
    """Inject every manifest row with Spark and write the stamps parquet to `output`."""
    from jobs.inject import PARTITION

    schema = output_schema(settings.stamp_size)
    run_spark(
        manifest, PARTITION, settings.to_json(), schema, output, codec, ("brickname", "task_id"), partitions
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spark_pipeline.py", description=__doc__.splitlines()[0])
    p.add_argument("--stage", required=True, choices=("inject", "cutouts"))
    p.add_argument("--manifest", help="inject: manifest parquet (local path or s3://)")
    p.add_argument("--positions", help="cutouts: positions parquet (local path or s3://)")
    p.add_argument("--output", required=True, help="stamps folder (local path or s3://)")
    p.add_argument("--cache", required=True, help="coadd cache folder or s3:// prefix")
    p.add_argument("--injection", required=True, help="the variant's [injection] table, as JSON")
    p.add_argument("--supersample", type=int, help="sub-pixels per pixel side [default: per task]")
    p.add_argument("--engine", default="lenstronomy", choices=ENGINES)
    p.add_argument("--codec", default="zstd", choices=("zstd", "gzip", "snappy"))
    p.add_argument("--partitions", type=int)
    args = p.parse_args(argv)
    injection = json.loads(args.injection)
    if args.stage == "cutouts":
        from jobs.cutouts import run_cutouts_spark

        run_cutouts_spark(
            args.positions, args.cache, int(injection["stamp_size"]), args.output, args.codec, args.partitions
        )
        return 0
    settings = InjectSettings.from_injection(injection, args.cache, args.supersample, args.engine)
    run_inject_spark(args.manifest, settings, args.output, args.codec, args.partitions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
