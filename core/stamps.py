"""The stamps contract: a stamp is float32 (3, 64, 64) in g, r, z order, nanomaggies per pixel,
stored as bytes in the `stamp` column, with its shape and dtype in the schema metadata
(Arrow's, or the field metadata Spark writes)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

STAMP_META = {"shape": [3, 64, 64], "dtype": "float32", "bands": "grz", "unit": "nanomaggy/pixel"}
META_KEY = b"halo.stamp"
ROW_GROUP = 256  # the training loader's unit of sharding across ranks and workers
SPARK_META_KEY = b"org.apache.spark.sql.parquet.row.metadata"


def arrow_metadata(shape: tuple[int, int, int]) -> dict[bytes, bytes]:
    return {META_KEY: json.dumps({**STAMP_META, "shape": list(shape)}).encode()}


def stamp_meta(schema: Any) -> dict[str, Any]:
    """The stamp's shape, dtype and bands from a parquet file's Arrow schema."""
    meta = schema.metadata or {}
    if META_KEY in meta:
        return json.loads(meta[META_KEY])
    if SPARK_META_KEY in meta:
        for field in json.loads(meta[SPARK_META_KEY]).get("fields", []):
            if field.get("name") == "stamp" and "halo.stamp" in field.get("metadata", {}):
                return json.loads(field["metadata"]["halo.stamp"])
    raise ValueError("no stamp metadata (shape, dtype) in this file's schema")


def decode(column: Any, meta: dict[str, Any]) -> np.ndarray:
    """A `stamp` column (Arrow binary) as an array of shape (n, *meta['shape'])."""
    shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
    values = column.to_pylist() if hasattr(column, "to_pylist") else list(column)
    out = np.empty((len(values), *shape), dtype=dtype)
    for i, raw in enumerate(values):
        out[i] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return out


def write_stamps(table: Any, path: Any, codec: str) -> None:
    """Parquet with the stamp column kept out of dictionary encoding and statistics: both
    cost more than the compression itself on 48 KiB values that never repeat."""
    import pyarrow.parquet as pq

    plain = [name for name in table.column_names if name != "stamp"]
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP,
        compression=codec,
        use_dictionary=plain,
        write_statistics=plain,
        column_encoding={"stamp": "PLAIN"},
    )
