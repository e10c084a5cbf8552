"""Stamps/s of the training dataset in one worker, as a ratio to a bare pyarrow read of the
same files (stamp column turned into bytes, nothing else) measured in the same run:

- the worker as it runs when training on the GPU: row groups read and decoded, mixed in the
  shuffle pool and batched (normalisation and augmentation are then done on the GPU, on
  whole batches) — the issue's goal is >= 0.5;
- the worker as it runs when training on the CPU: the same, plus normalisation and
  augmentation of each batch in the worker;
- that preparation alone, on the CPU (numpy) and, where torch sees one, on the GPU.

Every row is counted exactly once per pass.

    python bench/loader.py [--rows 8000] [--files 8] [--batch 256]
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
from jobs.learn.dataset import StampStream
from jobs.lensing.injection import output_schema


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
            "src_clumps": np.zeros(n, np.int16),
            "src_cat_ident": [""] * n,
            "unit": [f"1499p022:{f * per + i}" for i in range(n)],
            "supersample": np.full(n, 11, np.int16),
            "psfsize_r": np.ones(n, np.float32),
            "psfdepth_r": np.ones(n, np.float32),
            "theta_over_psf": np.ones(n),
            "known_tier": [None] * n,
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


def bare(files: list[str], threads: bool = True) -> float:
    start = time.perf_counter()
    n = 0
    for f in files:
        table = pq.read_table(f, columns=["task_id", "stamp", "is_control"], use_threads=threads)
        n += len(table.column("stamp").to_pylist())
    return n / (time.perf_counter() - start)


def dataset(files: list[str], rows: int, batch: int, prepare: bool) -> float:
    data = StampStream(
        files, split="train", augment=True, shuffle_buffer=2048, batch_size=batch, prepare_in_worker=prepare
    )
    start = time.perf_counter()
    seen = [t for *_, task in data for t in task.tolist()]
    elapsed = time.perf_counter() - start
    assert sorted(seen) == list(range(rows)), "a row was lost or read twice"
    return len(seen) / elapsed


def preparation(batch: int, device: str) -> float:
    """Stamps/s of normalising and augmenting whole batches on `device`."""
    import torch

    from jobs.learn.dataset import augment, robust_normalise

    rng = np.random.default_rng(0)
    images = rng.normal(0, 0.01, (batch, 3, 64, 64)).astype(np.float32)
    data = images if device == "numpy" else torch.from_numpy(images).to(device)

    def once() -> None:
        augment(robust_normalise(data), rng)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    once()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        once()
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # one worker's share of the machine
    root = Path(tempfile.mkdtemp(prefix="halo-bench-loader-"))
    try:
        files = make_files(root, args.rows, args.files)
        rows = args.rows // args.files * args.files
        bare(files)  # warm the page cache for all
        base, single = bare(files), bare(files, threads=False)
        gpu_worker = dataset(files, rows, args.batch, prepare=False)
        cpu_worker = dataset(files, rows, args.batch, prepare=True)
        print(f"bare pyarrow read (its own threads; the baseline):           {base:9.0f} stamps/s")
        print(f"bare pyarrow read, one thread:                               {single:9.0f} stamps/s")
        print(
            f"worker, GPU training (decode, shuffle, batch):               {gpu_worker:9.0f} stamps/s"
            f"  ratio {gpu_worker / base:.3f}  (goal >= 0.5)"
        )
        print(
            f"worker, CPU training (+ normalise, augment in the worker):   {cpu_worker:9.0f} stamps/s"
            f"  ratio {cpu_worker / base:.3f}"
        )
        numpy_rate = preparation(args.batch, "numpy")
        print(f"normalise + augment whole batches, numpy, one core:          {numpy_rate:9.0f} stamps/s")
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            print(
                f"normalise + augment whole batches, {name}: {preparation(args.batch, 'cuda'):9.0f} stamps/s"
            )
        else:
            print("normalise + augment on the GPU: no CUDA device here")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
