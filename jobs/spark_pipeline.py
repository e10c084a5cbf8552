"""The Spark entry point: `spark-submit jobs/spark_pipeline.py --stage inject ...`.

On EMR the project code travels with `--py-files` (a zip of `core` and `jobs`); locally the
inject stage calls `run_inject_spark` with a local-mode session. Either way the partitions go
through the same `inject_batch` as the local runner, via `mapInArrow`, and Spark's output
committer writes the part files atomically: a retried task leaves no duplicate rows."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from jobs.inject_batch import InjectSettings, inject_batch, output_schema
from jobs.lensing import ENGINES


def spark_schema(stamp_size: int) -> Any:
    """The stamps schema as Spark types, the stamp's shape and dtype in the field metadata."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from core.stamps import STAMP_META

    mapping = {
        pa.int64(): T.LongType(),
        pa.int32(): T.IntegerType(),
        pa.int16(): T.ShortType(),
        pa.string(): T.StringType(),
        pa.float64(): T.DoubleType(),
        pa.float32(): T.FloatType(),
        pa.bool_(): T.BooleanType(),
        pa.binary(): T.BinaryType(),
    }
    fields = []
    for field in output_schema(stamp_size):
        meta = {}
        if field.name == "stamp":
            meta = {"halo.stamp": json.dumps({**STAMP_META, "shape": [3, stamp_size, stamp_size]})}
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


def run_inject_spark(
    manifest: str, settings: InjectSettings, output: str, codec: str, partitions: int | None = None
) -> None:
    """Inject every manifest row with Spark and write the stamps parquet to `output`."""
    spark = session("halo-inject")
    settings_json = settings.to_json()

    def inject(batches: Any) -> Any:
        local = InjectSettings.from_json(settings_json)
        for batch in batches:
            yield inject_batch(batch, local)

    frame = spark.read.parquet(manifest)
    frame = frame.repartition(partitions or max(2, frame.rdd.getNumPartitions()), "brickname")
    frame = frame.sortWithinPartitions("brickname", "task_id")
    out = frame.mapInArrow(inject, spark_schema(settings.stamp_size))
    out.write.mode("overwrite").option("compression", codec).parquet(output)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spark_pipeline.py", description=__doc__.splitlines()[0])
    p.add_argument("--stage", required=True, choices=("inject",))
    p.add_argument("--manifest", required=True, help="manifest parquet (local path or s3://)")
    p.add_argument("--output", required=True, help="stamps folder (local path or s3://)")
    p.add_argument("--cache", required=True, help="coadd cache folder or s3:// prefix")
    p.add_argument("--injection", required=True, help="the variant's [injection] table, as JSON")
    p.add_argument("--supersample", type=int, help="sub-pixels per pixel side [default: per task]")
    p.add_argument("--engine", default="lenstronomy", choices=ENGINES)
    p.add_argument("--codec", default="zstd", choices=("zstd", "gzip", "snappy"))
    p.add_argument("--partitions", type=int)
    args = p.parse_args(argv)
    settings = InjectSettings.from_injection(
        json.loads(args.injection), args.cache, args.supersample, args.engine
    )
    run_inject_spark(args.manifest, settings, args.output, args.codec, args.partitions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
