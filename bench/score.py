"""Scoring at scale: peak memory of `score` at 10k and 100k galaxies (goal: within 1.3x of
each other: memory must not grow with the number of galaxies) and its throughput as a ratio
to the bare model forward pass on the same batches (goal: >= 0.7).

A mock survey's bricks, a catalogue of N positions spread over them, a run whose checkpoint
is the demo's architecture (small_cnn) with fresh weights (memory and speed do not depend on
what it learnt). `cutouts` and then `score --catalog` run as separate processes; their peak
RSS is read from the kernel (wait4). The throughput pair is measured in this process on the
10k cutouts: `jobs.learn.scoring.stream_logits` (read, decode, normalise, forward) against the
model's forward pass alone over the same batches, decoded and normalised beforehand.

    python bench/score.py [--sizes 10000 100000] [--arch small_cnn] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def workspace(root: Path, arch: str) -> None:
    import torch

    from core.layout import runs_dir
    from jobs.learn.models import build
    from jobs.survey import mock as mock_survey

    mock_survey.run(mock_survey.MockConfig(bricks=4, seed=3), root)
    run = runs_dir(root) / "bench"
    run.mkdir(parents=True)
    model = build(arch, 0)
    torch.save({"arch": arch, "meta_cols": [], "model": model.state_dict()}, run / "best.pt")


def positions(root: Path, n: int) -> Path:
    """A CSV of n positions on the mock's bricks, away from their edges (usable stamps)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    images = sorted((root / "survey" / "coadd").rglob("*-image-r.fits.fz"))
    frames = []
    for path in images:
        header = fits.getheader(path, 1)
        frames.append((WCS(header), header["NAXIS1"], header["NAXIS2"]))
    rng = np.random.default_rng(n)
    lines = ["name,ra,dec"]
    for i in range(n):
        wcs, nx, ny = frames[i % len(frames)]
        ra, dec = wcs.all_pix2world(rng.uniform(40, nx - 40), rng.uniform(40, ny - 40), 0)
        lines.append(f"g{i},{float(ra):.7f},{float(dec):.7f}")
    path = root / "catalogs" / f"bench{n}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


PEAK = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as done:
    if done.code:
        raise
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print("PEAK_KB", hwm.split()[1], file=sys.stderr)
"""


def peak_rss_mb(module: str, args: list[str]) -> tuple[float, float]:
    """Run `python -m module args`; its own peak resident memory (MB, VmHWM: the kernel's
    high-water mark of this program, not of the process that forked it) and wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, module, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{module} failed: {done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK_KB"))
    return int(peak.split()[1]) / 1024, elapsed


def throughput(root: Path, catalog: Path, device: str) -> tuple[float, float]:
    """Galaxies/s of stream_logits and of the bare forward pass over the same batches."""
    import torch

    from core.layout import cutouts_dir, runs_dir
    from core.stamps import decode, stamp_meta
    from core.storage import parquet_file
    from jobs.learn.dataset import robust_normalise
    from jobs.learn.models import load_run
    from jobs.learn.scoring import stream_logits
    from jobs.survey.catalogs import catalog_stem

    model, _ = load_run(runs_dir(root) / "bench")
    files = sorted(
        str(p) for p in cutouts_dir(root, f"catalog-{catalog_stem(str(catalog))}").glob("part-*.parquet")
    )
    stream_logits(model, [], files[:1], device)  # warm
    start = time.perf_counter()
    rows, _ = stream_logits(model, [], files, device)
    streamed = len(rows) / (time.perf_counter() - start)
    batches = []
    for uri in files:
        handle = parquet_file(uri)
        for group in range(handle.metadata.num_row_groups):
            table = handle.read_row_group(group, columns=["stamp"])
            images = robust_normalise(decode(table.column("stamp"), stamp_meta(handle.schema_arrow)))
            batches.append(torch.from_numpy(images).to(device))
    model = model.to(device)
    n = sum(len(b) for b in batches)
    with torch.no_grad():
        model(batches[0])
        start = time.perf_counter()
        for images in batches:
            model(images).float().cpu()
    bare = n / (time.perf_counter() - start)
    return streamed, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="halo-bench-score-"))
    try:
        workspace(root, args.arch)
        common = ["--workspace", str(root), "--variant", "v4_sota", "--cache", str(root / "survey")]
        peaks, first = {}, None
        for n in args.sizes:
            catalog = positions(root, n)
            first = first or catalog
            cut_mb, cut_s = peak_rss_mb("jobs.stages.cutouts", [*common, "--catalog", str(catalog)])
            score_args = [*common, "--run", "bench", "--catalog", str(catalog), "--device", args.device]
            score_mb, score_s = peak_rss_mb("jobs.stages.score", score_args)
            peaks[n] = score_mb
            print(
                f"{n:>7,} galaxies: cutouts {cut_s:6.1f} s, peak RSS {cut_mb:7.1f} MB | "
                f"score {score_s:6.1f} s ({n / score_s:7.1f} galaxies/s end to end), "
                f"peak RSS {score_mb:7.1f} MB"
            )
        streamed, bare = throughput(root, first, args.device)
        print(
            f"streamed scoring ({min(args.sizes):,} galaxies) {streamed:8.1f} galaxies/s vs the bare forward "
            f"pass {bare:8.1f} (ratio {streamed / bare:.2f}; goal >= 0.7), {args.arch} on {args.device}, "
            f"torch threads {__import__('torch').get_num_threads()}"
        )
        small, large = min(args.sizes), max(args.sizes)
        print(
            f"peak RSS of score, {large:,} vs {small:,} galaxies: "
            f"{peaks[large] / peaks[small]:.2f}x (goal <= 1.3)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
