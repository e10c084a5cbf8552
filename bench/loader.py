"""Stamps/s of the training dataset (parquet decode, robust normalisation, flip + rot90,
shuffle buffer) in one worker, as a ratio to a bare pyarrow read of the same files (stamp
column decoded to bytes, nothing else) measured in the same run.

    python bench/loader.py [--rows 8000] [--files 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.stamps import write_stamps
from jobs.dataset import StampStream
from jobs.inject_batch import output_schema


def make_files(root: Path, rows: int, files: int) -> list[str]:
    rng = np.random.default_rng(0)
    schema = output_schema(64)
    per = rows // files
    out = []
    for f in range(files):
        n = per
        table = {
            "task_id": np.arange(f * per, f * per + n),
            "split": ["train"] * n,
            "brickname": ["1499p022"] * n,
            "objid": np.zeros(n, int),
            "ra": np.zeros(n),
            "dec": np.zeros(n),
            "is_control": rng.random(n) < 0.5,
            "config_id": np.zeros(n, np.int32),
            "theta_e_arcsec": np.ones(n),
            "src_dmag": np.ones(n),
            "src_reff_arcsec": np.ones(n),
            "src_e": np.zeros(n),
            "shear": np.zeros(n),
            "src_n": np.ones(n),
            **{f"src_mag_{b}": np.full(n, 22.0) for b in "grz"},
            "supersample": np.full(n, 11, np.int16),
            "psfsize_r": np.ones(n, np.float32),
            "psfdepth_r": np.ones(n, np.float32),
            "theta_over_psf": np.ones(n),
            "mu": np.ones(n),
            "arc_mag_r": np.ones(n),
            "arc_snr": np.ones(n),
            "ok": np.ones(n, bool),
            "fail_reason": [None] * n,
            "stamp": [rng.normal(0, 0.01, (3, 64, 64)).astype(np.float32).tobytes() for _ in range(n)],
        }
        path = root / f"part-{f:05d}.parquet"
        write_stamps(pa.table(table, schema=schema), path, "zstd")
        out.append(str(path))
    return out


def bare(files: list[str]) -> float:
    start = time.perf_counter()
    n = 0
    for f in files:
        table = pq.read_table(f, columns=["task_id", "stamp", "is_control"])
        n += len(table.column("stamp").to_pylist())
    return n / (time.perf_counter() - start)


def dataset(files: list[str]) -> float:
    data = StampStream(files, split="train", augment=True, shuffle_buffer=2048)
    start = time.perf_counter()
    n = sum(1 for _ in data)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="halo-bench-loader-"))
    try:
        files = make_files(root, args.rows, args.files)
        bare(files)  # warm the page cache for both
        base, ours = bare(files), dataset(files)
        print(f"bare pyarrow read: {base:9.0f} stamps/s")
        print(f"StampStream (decode, normalise, augment, shuffle), one worker: {ours:9.0f} stamps/s")
        print(f"ratio: {ours / base:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
