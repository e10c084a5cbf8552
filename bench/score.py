"""Scoring at scale: peak memory of `score` at 10k, 100k and 1M galaxies and its growth per
galaxy (goal: < 0.05 KB a galaxy: DR10's 8.5 M LRGs then add < 0.43 GB), and its throughput
as a ratio to the bare model forward pass on the same batches (goal: >= 0.7).

A mock survey's bricks, a catalogue of N positions spread over them, a run whose checkpoint
is the demo's architecture (small_cnn) with fresh weights (memory and speed do not depend on
what it learnt). The smallest size is cut by the `cutouts` stage; a larger one is those
cutouts repeated (each copy its own rows, names and patch of sky; the stamps
dictionary-encoded in the file, ~11 KB a row on disk: cutting a million positions at ~350
stamps/s a core would take the better part of an hour, and score's memory depends on its
rows, not on their pixels). A copy's positions are moved off the mock's bricks, so the mock's
known lenses stay among the first copy's galaxies: a known lens is one galaxy, not a share of
the sample (its stamp is kept, however many galaxies are scored), as DR10's galaxies meet
lenscat's lenses. `score --catalog` (the path
that holds the most per galaxy: its rows' keys) runs as a process of its own on each, its
cutting step handed the folder; its peak RSS is the kernel's high-water mark. The
throughput pair is measured in this process on the smallest cutouts:
`jobs.learn.scoring.stream_logits` (read, decode, normalise, forward) against the model's
forward pass alone over the same batches, decoded and normalised beforehand.

    python bench/score.py [--sizes 10000 100000 1000000] [--arch small_cnn] [--device cpu|cuda]
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

from core.layout import cutouts_dir
from jobs.survey.catalogs import catalog_stem


def workspace(root: Path, arch: str) -> None:
    import torch

    from core.layout import runs_dir
    from jobs.learn.models import build
    from jobs.mock import survey as mock_survey

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
import os, runpy, sys
sys.argv = sys.argv[1:]

def hwm_kb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])

if os.environ.get("BENCH_CUTOUTS"):  # score's cutting step: the folder made here
    import jobs.survey.cutting
    jobs.survey.cutting.run = lambda *_, **__: {"outputs": [os.environ["BENCH_CUTOUTS"]]}
    import jobs.runtime.allocator
    release = jobs.runtime.allocator.release_freed_memory

    def release_then_reset():  # score gives back the stream's blocks: its peak so far, then the rest's
        done = release()
        print("STREAM_PEAK_KB", hwm_kb(), file=sys.stderr)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM starts again from the RSS now
        return done

    jobs.runtime.allocator.release_freed_memory = release_then_reset
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as done:
    if done.code:
        raise
print("PEAK_KB", hwm_kb(), file=sys.stderr)
"""


def peak_rss_mb(module: str, args: list[str], cutouts: Path | None = None) -> tuple[float, float, float]:
    """Run `python -m module args`; its own peak resident memory (MB, VmHWM: the kernel's
    high-water mark of this program, not of the process that forked it), its wall time and,
    scoring a folder made here, the peak after the stream of logits (the high-water mark
    reset once score has given the stream's freed blocks back: what grows with the galaxies
    is there; the stream's own peak is a few row groups of stamps however many galaxies, plus
    what glibc keeps of freed memory, up to jobs/runtime/allocator.py's 512 MiB)."""
    import os

    start = time.perf_counter()
    env = {**os.environ, "BENCH_CUTOUTS": str(cutouts) if cutouts else ""}
    done = subprocess.run(
        [sys.executable, "-c", PEAK, module, *args], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{module} failed: {done.stderr[-2000:]}")
    said = dict(
        line.split()[:2] for line in done.stderr.splitlines() if line.startswith(("PEAK_KB", "STREAM_"))
    )
    after = int(said["PEAK_KB"]) / 1024
    stream = int(said.get("STREAM_PEAK_KB", 0)) / 1024
    return max(after, stream), elapsed, after


COPY_STEP_DEG = 1.0  # a repeated copy's move in RA: the mock's bricks span ~0.25 deg


def repeated(cutouts: Path, n: int, folder: Path) -> Path:
    """`cutouts` (a folder of parts) repeated up to `n` rows: each copy its own `row` numbers,
    names and patch of sky (RA moved by COPY_STEP_DEG a copy: away from the mock's known
    lenses), its stamps drawn in turn from the first 64 (dictionary-encoded: a row group holds
    them once, a fourth of its plain size; each still decoded, normalised and scored one by
    one)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from core.stamps import ROW_GROUP

    source = pq.read_table(sorted(cutouts.glob("part-*.parquet")))
    m = source.num_rows
    pool = source.column("stamp").slice(0, 64).combine_chunks()
    source = source.set_column(
        source.schema.get_field_index("stamp"), "stamp", pool.take(np.arange(m) % len(pool))
    )
    folder.mkdir(parents=True)
    for copy in range(-(-n // m)):
        table = source.slice(0, min(m, n - copy * m))
        table = table.set_column(
            table.schema.get_field_index("row"), "row", pc.add(table.column("row"), copy * m)
        )
        table = table.set_column(
            table.schema.get_field_index("name"),
            "name",
            pc.binary_join_element_wise(table.column("name"), f"-{copy}", ""),
        )
        ra = (table.column("ra").to_numpy() + copy * COPY_STEP_DEG) % 360
        table = table.set_column(table.schema.get_field_index("ra"), "ra", pa.array(ra))
        pq.write_table(
            table.replace_schema_metadata(source.schema.metadata),
            folder / f"part-{copy:05d}.parquet",
            row_group_size=ROW_GROUP,
            compression="zstd",
            use_dictionary=True,
            dictionary_pagesize_limit=1 << 24,  # the 64 stamps' dictionary in one page
        )
    return folder


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
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    from jobs.runtime.allocator import keep_freed_memory

    keep_freed_memory()  # as every stage sets it: the throughput pair is measured as score runs
    root = Path(tempfile.mkdtemp(prefix="halo-bench-score-"))
    try:
        workspace(root, args.arch)
        common = ["--workspace", str(root), "--variant", "v4_sota", "--cache", str(root / "survey")]
        sizes = sorted(args.sizes)
        first = positions(root, sizes[0])
        cut_mb, cut_s, _ = peak_rss_mb("jobs.stages.cutouts", [*common, "--catalog", str(first)])
        print(f"cutouts of {sizes[0]:,} positions: {cut_s:.1f} s, peak RSS {cut_mb:.1f} MB")
        cut = cutouts_dir(root, f"catalog-{catalog_stem(str(first))}")
        peaks, after_stream = {}, {}
        for n in sizes:
            folder = cut if n == sizes[0] else repeated(cut, n, root / "repeated" / str(n))
            score_args = [*common, "--run", "bench", "--catalog", str(first), "--device", args.device]
            score_mb, score_s, after_mb = peak_rss_mb("jobs.stages.score", score_args, folder)
            peaks[n], after_stream[n] = score_mb, after_mb
            print(
                f"{n:>9,} galaxies: score {score_s:6.1f} s ({n / score_s:7.1f} galaxies/s end to end), "
                f"peak RSS {score_mb:7.1f} MB; after the stream {after_mb:7.1f} MB",
                flush=True,
            )
            if n != sizes[0]:
                shutil.rmtree(folder)
        streamed, bare = throughput(root, first, args.device)
        print(
            f"streamed scoring ({sizes[0]:,} galaxies) {streamed:8.1f} galaxies/s vs the bare forward "
            f"pass {bare:8.1f} (ratio {streamed / bare:.2f}; goal >= 0.7), {args.arch} on {args.device}, "
            f"torch threads {__import__('torch').get_num_threads()}"
        )
        for label, figures in (("peak RSS", peaks), ("peak RSS after the stream", after_stream)):
            for small, large in zip(sizes, sizes[1:], strict=False):
                slope = (figures[large] - figures[small]) * 1024 / (large - small)
                print(
                    f"{label} growth {small:,} -> {large:,} galaxies: {slope:.4f} KB a galaxy"
                    f" (goal < 0.05); {figures[large] / figures[small]:.2f}x"
                )
            slope = (figures[sizes[-1]] - figures[sizes[0]]) * 1024 / (sizes[-1] - sizes[0])
            print(f"  at DR10's 8.5 M LRGs that growth ({label}) adds {slope * 8.5e6 / 1024**2:.2f} GB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
