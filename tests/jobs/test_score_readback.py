"""score's read-back of the kept stamps (the top K and every known lens): each held once, in
the candidates' order, however the cutouts are laid out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.stamps import ROW_GROUP, arrow_metadata, decode, stamp_meta
from jobs.stages.score import _with_stamps

SIZE = 16  # (3, 16, 16) float32: 3 KiB a stamp
# the read-back's own Arrow pool: it outlives every buffer taken from it (this test's only)
POOL = pa.proxy_memory_pool(pa.default_memory_pool())


def _cutouts(folder: Path, n: int) -> list[str]:
    """Two parts of cutouts whose stamp i is filled with the value i."""
    folder.mkdir()
    stamps = np.repeat(np.arange(n, dtype=np.float32), 3 * SIZE * SIZE).reshape(n, 3 * SIZE * SIZE)
    files = []
    for part, rows in enumerate(np.array_split(np.random.default_rng(0).permutation(n), 2)):
        table = pa.table(
            {"row": pa.array(rows), "stamp": pa.array([stamps[r].tobytes() for r in rows], pa.binary())}
        ).replace_schema_metadata(arrow_metadata((3, SIZE, SIZE)))
        path = folder / f"part-{part:05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP)
        files.append(str(path))
    return files


def test_the_kept_stamps_come_back_in_rank_order_and_are_held_once(tmp_path: Path) -> None:
    """2,000 of 5,000 cutouts kept, one of them missing from the files: each kept row gets its
    own stamp (or none), and the read-back's Arrow peak stays within 1.6 times the kept stamps
    (a row group read beside them; a concatenation and a take after it held three copies)."""
    n, kept_n = 5000, 2000
    files = _cutouts(tmp_path / "cutouts", n)
    rows = np.random.default_rng(1).choice(n, kept_n, replace=False)
    rows[7] = n + 3  # not in the cutouts
    kept = pa.table({"rank": pa.array(np.arange(1, kept_n + 1))})
    before = pa.default_memory_pool()
    pa.set_memory_pool(POOL)
    try:
        table = _with_stamps(kept, rows, files, SIZE)
    finally:
        pa.set_memory_pool(before)
    stamp = table.column("stamp")
    assert stamp.null_count == 1 and not stamp[7].is_valid
    found = np.flatnonzero(np.arange(kept_n) != 7)
    images = decode(stamp.take(pa.array(found)), stamp_meta(table.schema))
    assert np.array_equal(images[:, 0, 0, 0], rows[found].astype(np.float32))
    held = (kept_n - 1) * 3 * SIZE * SIZE * 4
    assert POOL.max_memory() < 1.6 * held, f"{POOL.max_memory() / held:.2f} times the kept stamps"
