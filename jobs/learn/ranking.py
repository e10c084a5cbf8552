"""A ranking of every scored galaxy, written by a partitioned sort: memory bounded however many
galaxies there are (DR10's 8.5 M LRGs), beyond a few numbers a galaxy.

score streams the model's logits (a number a galaxy), sorts them (the rank order, one index a
galaxy), then reads the cutouts' small columns a row group at a time, routes each row to the
bucket file of its rank range and, bucket by bucket in rank order, writes the ranking parquet.
What score needs beside the ranking (the top K, every known lens, the known non-lenses for the
blind items) is gathered in the same pass; it is small. Nothing holds a Python object per
galaxy."""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BUCKET_ROWS = 1 << 16  # rows of a rank range sorted in memory at once (~400 bytes each, and a copy)
BUFFERED_ROWS = 1 << 16  # rows held for all buckets before they are appended to their files
KEY_MASK = 0x7FFFFFFF  # a catalogue row's objid: a 31-bit digest of its name


def rank_order(logit: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Positions in rank order: usable ones by score, highest first (ties: the lower position
    first), then the unusable ones. Sorted on the score (not the logit): where the sigmoid
    saturates, equal scores keep the positions' order."""
    from jobs.learn.scoring import sigmoid

    key = sigmoid(logit)
    np.negative(key, out=key)
    key[~ok] = np.inf
    return np.argsort(key, kind="stable")


def digest_keys(names: list[str | None], ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """A catalogue row's base objid: a 31-bit digest of its name (else its position); int32,
    four bytes a row."""
    return np.array(
        [
            zlib.crc32((name or f"{r:.6f},{d:.6f}").encode()) & KEY_MASK
            for name, r, d in zip(names, ra.tolist(), dec.tolist(), strict=True)
        ],
        np.int32,
    )


def unique_keys(base: np.ndarray) -> np.ndarray:
    """Each row's objid, rows in rank order: its base key, or where an earlier row holds it,
    the next free number (as if assigned one by one, in rank order). Works on the few clashing
    rows only: an array of n keys, no set of n."""
    keys = base.copy()
    taken_first, first_at = np.unique(base, return_index=True)
    first = np.zeros(len(base), bool)
    first[first_at] = True
    probed: set[int] = set()
    queue = [int(p) for p in np.flatnonzero(~first)]  # later holders of a key: they move
    heapq.heapify(queue)

    def held_before(key: int, position: int) -> bool:
        at = np.searchsorted(taken_first, key)
        return bool(at < len(taken_first) and taken_first[at] == key and first_at[at] < position)

    done: set[int] = set()
    while queue:
        position = heapq.heappop(queue)
        if position in done:
            continue
        done.add(position)
        key = int(base[position])
        if first[position] and key not in probed:
            continue
        while key in probed or held_before(key, position):
            key = (key + 1) & KEY_MASK  # 31 bits: fits the int32 keys
        probed.add(key)
        keys[position] = key
        at = np.searchsorted(taken_first, key)
        if at < len(taken_first) and taken_first[at] == key and first_at[at] > position:
            heapq.heappush(queue, int(first_at[at]))  # a later first holder of it moves on
    return keys


@dataclass
class Gathered:
    """What one pass over the ranking keeps beside it: rows whose `pick` is true (the top K,
    known lenses, known non-lenses), with their `row` (the cutouts' position) and rank."""

    tables: list[Any] = field(default_factory=list)

    def table(self) -> Any:
        import pyarrow as pa

        if not self.tables:
            return None
        return pa.concat_tables(self.tables).sort_by("rank")


def write_ranking(
    chunks: Iterator[Any],
    order: np.ndarray,
    target: Path,
    make_rows: Callable[[Any, np.ndarray], Any],
    pick: Callable[[Any], np.ndarray],
    finish: Callable[[Any], Any] | None = None,
    bucket_rows: int = BUCKET_ROWS,
    buffered_rows: int = BUFFERED_ROWS,
) -> Gathered:
    """The ranking parquet at `target`, in rank order: `chunks` (Arrow tables with a `row`
    column, the positions 0..n-1, in any order) each made into ranked rows by `make_rows(chunk,
    ranks)` (a table with `rank`, 1-based, and `row`), routed to bucket files by rank, each
    bucket then sorted and appended (through `finish`, a bucket's last change: catalogue keys).
    The rows `pick` selects are gathered and returned. Bucket files live beside `target` and
    are removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(order)
    rank_of = np.empty(n, np.int32 if n < 2**31 else np.int64)  # four bytes a galaxy
    rank_of[order] = np.arange(n, dtype=rank_of.dtype)
    buckets = max(1, -(-n // bucket_rows))
    folder = target.parent / f".{target.name}.buckets"
    folder.mkdir(exist_ok=True)
    writers: dict[int, Any] = {}
    pending: dict[int, list[Any]] = {}
    held = 0
    gathered = Gathered()

    def flush() -> None:
        nonlocal held
        for bucket, parts in pending.items():
            table = pa.concat_tables(parts)
            if bucket not in writers:
                writers[bucket] = pq.ParquetWriter(folder / f"{bucket:06d}.parquet", table.schema)
            writers[bucket].write_table(table)
        pending.clear()
        held = 0

    schema = None
    try:
        for chunk in chunks:
            ranks = rank_of[chunk.column("row").to_numpy()].astype(np.int64)
            rows = make_rows(chunk, ranks)
            schema = rows.schema
            picked = pick(rows)
            if picked.any():
                gathered.tables.append(rows.filter(pa.array(picked)))
            which = ranks // bucket_rows
            for bucket in np.unique(which):
                pending.setdefault(int(bucket), []).append(rows.filter(pa.array(which == bucket)))
            held += rows.num_rows
            if held >= buffered_rows:
                flush()
        flush()
        del rank_of  # pass 1 done: the buckets are sorted from their files
        for writer in writers.values():
            writer.close()
        writers.clear()
        out = None
        try:
            for bucket in range(buckets):
                path = folder / f"{bucket:06d}.parquet"
                if not path.exists():
                    continue
                table = pq.read_table(path).sort_by("rank")
                path.unlink()
                if finish is not None:
                    table = finish(table)
                if out is None:
                    out = pq.ParquetWriter(target, table.schema, compression="zstd")
                out.write_table(table)
            if out is None and schema is not None:  # no rows at all
                table = schema.empty_table()
                pq.write_table(finish(table) if finish is not None else table, target, compression="zstd")
        finally:
            if out is not None:
                out.close()
    finally:
        for writer in writers.values():
            writer.close()
        for leftover in folder.glob("*.parquet"):
            leftover.unlink()
        folder.rmdir()
    return gathered


@dataclass
class Ranking:
    """The written ranking, looked up without loading it: the rows of given galaxies, and the
    rank a new score would take among the usable ones."""

    path: Path
    usable_scores: np.ndarray  # highest first

    def rows_of(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The ranking's rows of these galaxies ("brickname:objid"), by key: one scan over its
        row groups, reading the rest of a row group only where one of them is in it."""
        import pyarrow.parquet as pq

        from core.schemas import galaxy_keys

        wanted, found = set(keys), {}
        if not wanted:
            return found
        handle = pq.ParquetFile(self.path)
        for group in range(handle.metadata.num_row_groups):
            ids = handle.read_row_group(group, columns=["brickname", "objid"])
            here = galaxy_keys(ids.column("brickname").to_pylist(), ids.column("objid").to_pylist())
            hits = [i for i, k in enumerate(here) if k in wanted]
            if hits:
                rows = handle.read_row_group(group).take(hits).to_pylist()
                found.update((here[i], row) for i, row in zip(hits, rows, strict=True))
        return found

    def rank_of(self, score: float) -> int:
        """The rank `score` would take among the usable galaxies (ties: before them)."""
        return int(1 + np.searchsorted(-self.usable_scores, -score, side="left"))
