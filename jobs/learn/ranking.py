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
SCAN_ROWS = 1 << 16  # keys compared at once where clashing ones are looked for
KEY_MASK = 0x7FFFFFFF  # a catalogue row's objid: a 31-bit digest of its name


def rank_order(logit: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Positions in rank order: usable ones by score, highest first (ties: the lower position
    first), then the unusable ones. Sorted on the score (not the logit): where the sigmoid
    saturates, equal scores keep the positions' order."""
    from jobs.learn.scoring import sigmoid

    key = sigmoid(logit)
    np.negative(key, out=key)
    key[~ok] = np.inf
    order = np.argsort(key, kind="stable")
    del key
    return order.astype(index_type(len(order)))  # four bytes a galaxy kept, not eight


def index_type(n: int) -> type:
    """The smallest integer type that numbers `n` rows: int32 below 2**31."""
    return np.int32 if n < 2**31 else np.int64


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
    rows only: beside the keys, their sorted copy (four bytes a row, no index of eight), and
    no set of n."""
    keys = base.copy()
    present = np.sort(base)  # every base key: is a number held
    clashing = np.unique(present[1:][present[1:] == present[:-1]])
    first_of: dict[int, int] = {}  # a held key's first holder, looked up as it is needed
    queue = []  # later holders of a key: they move
    for position in _holding(base, clashing).tolist():
        if first_of.setdefault(int(base[position]), position) != position:
            queue.append(position)
    heapq.heapify(queue)

    def first_holder(key: int) -> int | None:
        if key not in first_of:
            at = int(np.searchsorted(present, present.dtype.type(key)))  # its type: no copy of n
            if at == len(present) or present[at] != key:
                return None
            first_of[key] = int(np.flatnonzero(base == key)[0])  # held by one row: one scan
        return first_of[key]

    probed: set[int] = set()
    done: set[int] = set()
    while queue:
        position = heapq.heappop(queue)
        if position in done:
            continue
        done.add(position)
        key = int(base[position])
        if first_holder(key) == position and key not in probed:
            continue
        while key in probed or _before(first_holder(key), position):
            key = (key + 1) & KEY_MASK  # 31 bits: fits the int32 keys
        probed.add(key)
        keys[position] = key
        holder = first_holder(key)
        if holder is not None and holder > position:
            heapq.heappush(queue, holder)  # a later first holder of it moves on
    return keys


def _before(holder: int | None, position: int) -> bool:
    """Whether a key's first holder (None: no row holds it) comes before `position`."""
    return holder is not None and holder < position


def _holding(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The positions (ascending) whose key is one of `values` (sorted, few), looked up
    SCAN_ROWS at a time."""
    if not len(values):
        return np.zeros(0, np.int64)
    found = []
    for start in range(0, len(base), SCAN_ROWS):
        block = base[start : start + SCAN_ROWS]
        at = np.minimum(np.searchsorted(values, block), len(values) - 1)
        found.append(start + np.flatnonzero(values[at] == block))
    return np.concatenate(found)


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

    from jobs.runtime.allocator import release_freed_memory

    n = len(order)
    rank_of = np.empty(n, index_type(n))  # four bytes a galaxy
    rank_of[order] = np.arange(n, dtype=rank_of.dtype)
    buckets = max(1, -(-n // bucket_rows))
    folder = target.parent / f".{target.name}.buckets"
    folder.mkdir(exist_ok=True)
    # a bucket's file: an Arrow IPC stream (zstd buffers), whose open writer holds ~50 KB (a
    # parquet writer keeps pages and encoders: one open a bucket, that grew with the sample)
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    writers: dict[int, tuple[Any, Any]] = {}
    held: list[tuple[Any, np.ndarray, np.ndarray]] = []  # chunks' rows, buckets, picks
    gathered = Gathered()

    def flush() -> None:
        """The held rows, sorted by bucket (one copy) and each bucket's slice appended to its
        file: a chunk is never cut into a piece a bucket (n / bucket_rows of them)."""
        if not held:
            return
        table = pa.concat_tables([rows for rows, _, _ in held])
        which = np.concatenate([w for _, w, _ in held])
        picked = np.concatenate([p for _, _, p in held])
        held.clear()
        if picked.any():
            gathered.tables.append(table.filter(pa.array(picked)).combine_chunks())
        by = np.argsort(which, kind="stable")
        table, which = table.take(pa.array(by)), which[by]
        del by
        present, starts = np.unique(which, return_index=True)
        for bucket, start, stop in zip(
            present.tolist(), starts.tolist(), [*starts[1:].tolist(), len(which)], strict=True
        ):
            if bucket not in writers:
                sink = pa.OSFile(str(folder / f"{bucket:06d}.arrows"), "wb")
                writers[bucket] = (sink, pa.ipc.new_stream(sink, table.schema, options=options))
            writers[bucket][1].write_table(table.slice(start, stop - start))

    schema = None
    try:
        for chunk in chunks:
            ranks = rank_of[chunk.column("row").to_numpy()].astype(np.int64)
            rows = make_rows(chunk, ranks)
            schema = rows.schema
            held.append((rows, ranks // bucket_rows, np.asarray(pick(rows), bool)))
            if sum(r.num_rows for r, _, _ in held) >= buffered_rows:
                flush()
        flush()
        del rank_of  # pass 1 done: the buckets are sorted from their files
        _close(writers)
        release_freed_memory()  # pass 1's blocks: pass 2 starts from what is live
        out = None
        try:
            for bucket in range(buckets):
                path = folder / f"{bucket:06d}.arrows"
                if not path.exists():
                    continue
                with pa.OSFile(str(path)) as source:
                    table = pa.ipc.open_stream(source).read_all().sort_by("rank")
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
        _close(writers)
        for leftover in folder.glob("*.arrows"):
            leftover.unlink()
        folder.rmdir()
    return gathered


def _close(writers: dict[int, Any]) -> None:
    """Close the buckets' stream writers and their files."""
    for sink, writer in writers.values():
        writer.close()
        sink.close()
    writers.clear()


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
