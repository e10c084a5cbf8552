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


def decode(column: Any, meta: dict[str, Any], copy: bool = True) -> np.ndarray:
    """A `stamp` column (Arrow binary) as an array of shape (n, *meta['shape']). Stamps lie
    end to end in an Arrow binary buffer, so a chunk whose values all have the stamp's size
    is read as one array, without a Python object per stamp; with `copy=False` it may be a
    view of Arrow's memory (never to be written). Other chunks are read value by value; a
    null or a stamp of the wrong size is a ValueError."""
    import pyarrow as pa

    shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
    size = int(np.prod(shape)) * dtype.itemsize
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not isinstance(column, pa.ChunkedArray | pa.Array):
        chunks = [pa.array(list(column), pa.binary())]
    parts, views = [], 0
    for chunk in chunks:
        if not len(chunk):
            continue
        offsets_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        buffers = chunk.buffers()
        offsets = np.frombuffer(
            buffers[1], offsets_type, len(chunk) + 1, chunk.offset * np.dtype(offsets_type).itemsize
        )
        if chunk.null_count == 0 and np.all(np.diff(offsets) == size):
            flat = np.frombuffer(buffers[2], dtype, len(chunk) * size // dtype.itemsize, int(offsets[0]))
            parts.append(flat.reshape(len(chunk), *shape))
            views += 1
            continue
        out = np.empty((len(chunk), *shape), dtype=dtype)
        for i, raw in enumerate(chunk.to_pylist()):
            if raw is None or len(raw) != size:
                raise ValueError(f"stamp {i}: {'null' if raw is None else f'{len(raw)} bytes'}, not {size}")
            out[i] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        parts.append(out)
    if not parts:
        return np.empty((0, *shape), dtype=dtype)
    if len(parts) > 1:
        return np.concatenate(parts)
    return parts[0].copy() if copy and views else parts[0]


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
