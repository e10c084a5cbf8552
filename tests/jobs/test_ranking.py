"""score's ranking by a partitioned sort (jobs/learn/ranking.py) against the plain in-memory
ranking it replaces: the same rows in the same order, however the rows arrive and however
small the buckets, and catalogue keys as a one-by-one assignment gives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.learn import ranking
from jobs.learn.scoring import sigmoid


def _sequential(base: np.ndarray) -> np.ndarray:
    """The assignment unique_keys must equal: one row at a time, in rank order."""
    taken: set[int] = set()
    out = []
    for key in base.tolist():
        while key in taken:
            key = (key + 1) & ranking.KEY_MASK
        taken.add(key)
        out.append(key)
    return np.array(out, np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_catalogue_keys_clash_as_a_one_by_one_assignment_would(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 40 + 30 * seed, size=300).astype(np.int64)  # many clashes, runs of them
    keys = ranking.unique_keys(base)
    assert np.array_equal(keys, _sequential(base))
    assert len(set(keys.tolist())) == len(keys)


def test_catalogue_keys_hold_no_index_of_eight_bytes_a_row() -> None:
    """A million keys (a hundred of them one key): unique_keys holds their copy and a sorted
    copy, four bytes a row each (numpy's unique with its argsort held 33 bytes a row: 280 MB
    more at DR10's 8.5 M galaxies)."""
    import tracemalloc

    n = 1 << 20
    base = np.random.default_rng(0).integers(0, 2**31, n).astype(np.int32)
    base[::10000] = base[0]
    tracemalloc.start()
    try:
        keys = ranking.unique_keys(base)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(np.unique(keys)) == n
    assert peak < 12 * n, f"{peak / n:.1f} bytes a row"


def test_the_rank_order_puts_unusable_last_and_keeps_ties_in_position_order() -> None:
    logit = np.array([0.0, 50.0, np.nan, 60.0, 0.0, -3.0])  # 50 and 60 saturate: equal scores
    ok = np.array([True, True, False, True, True, False])
    order = ranking.rank_order(logit, ok)
    assert order.tolist() == [1, 3, 0, 4, 2, 5] and order.dtype == np.int32  # four bytes a galaxy
    key = np.where(ok, -sigmoid(logit), np.inf)
    assert np.array_equal(order, np.argsort(key, kind="stable"))


@pytest.mark.parametrize(("bucket_rows", "buffered_rows"), [(7, 5), (64, 1000), (10**6, 10**6)])
def test_the_partitioned_ranking_equals_the_in_memory_one(
    tmp_path: Path, bucket_rows: int, buffered_rows: int
) -> None:
    """1,000 rows arriving in shuffled chunks of 37, ranked through buckets of 7 rows (143
    bucket files, flushed every 5 rows) or 64, or one bucket: the file equals a sort in
    memory, and the gathered rows are exactly those picked."""
    rng = np.random.default_rng(3)
    n = 1000
    logit = rng.normal(size=n)
    logit[rng.choice(n, 40, replace=False)] = 40.0  # saturated: ties broken by position
    ok = rng.random(n) > 0.1
    names = np.array([f"g{i}" for i in range(n)])
    order = ranking.rank_order(logit, ok)
    shuffled = rng.permutation(n)
    chunks = [
        pa.table(
            {
                "row": pa.array(part),
                "brickname": pa.array(["b"] * len(part)),
                "objid": pa.array(part),
                "name": pa.array(names[part]),
            }
        )
        for part in (shuffled[s : s + 37] for s in range(0, n, 37))
    ]

    def make_rows(chunk: pa.Table, ranks: np.ndarray) -> pa.Table:
        index = chunk.column("row").to_numpy()
        return chunk.append_column("rank", pa.array(ranks + 1)).append_column("logit", pa.array(logit[index]))

    target = tmp_path / "ranking.parquet"
    gathered = ranking.write_ranking(
        iter(chunks),
        order,
        target,
        make_rows,
        lambda t: t.column("rank").to_numpy() <= 25,
        lambda t: t.drop_columns(["row"]),
        bucket_rows=bucket_rows,
        buffered_rows=buffered_rows,
    ).table()
    written = pq.read_table(target)
    assert written.column_names == ["brickname", "objid", "name", "rank", "logit"]
    assert written.column("rank").to_pylist() == list(range(1, n + 1))
    assert written.column("name").to_pylist() == names[order].tolist()
    assert gathered.column("row").to_pylist() == order[:25].tolist()
    assert list(tmp_path.iterdir()) == [target]  # no bucket file left
    whole = ranking.Ranking(target, np.sort(sigmoid(logit[ok]))[::-1])
    found = whole.rows_of(["b:5", "b:999", "nope:1"])
    assert sorted(found) == ["b:5", "b:999"] and found["b:5"]["name"] == "g5"
    assert found["b:999"]["rank"] == int(np.flatnonzero(order == 999)[0]) + 1
    assert whole.rank_of(float(sigmoid(np.array([logit[order[0]]]))[0])) == 1
