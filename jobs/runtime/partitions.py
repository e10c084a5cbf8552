"""Running a per-partition function over a table, locally: the stamps stages' runner.

The table is sorted by brick (a partition touches few bricks) and cut in slices; each slice
goes through the stage's function (`module:function`, taking the batch and the settings as
JSON, so a Spark executor can run the same one) and is written as `part-NNNNN.parquet` in a
staging folder, atomically (a temporary name, then a rename). A killed run resumes: parts
whose footer reads are kept, a damaged one is written again. The stage then moves the parts
into its output folder, all at once (`stage_runtime.atomic_dir`)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from core.errors import file_system_said
from jobs.runtime import stage as stage_runtime

ROWS_PER_PART = stage_runtime.declared_default("inject", "rows_per_part")  # core.stages._partitioned


def partitions(table: Any, rows_per_part: int, order: tuple[str, ...]) -> list[Any]:
    """The table sorted by `order` (brick first), cut in slices of `rows_per_part`."""
    table = table.sort_by([(name, "ascending") for name in order])
    return [table.slice(start, rows_per_part) for start in range(0, table.num_rows, rows_per_part)]


def staging_for(final: Path, digest: str, force: bool) -> Path:
    """The staging folder beside `final`, emptied unless it holds a run of the same inputs."""
    staging = final.parent / f".{final.name}.staging"
    marker = staging / "_inputs.json"
    if force or not marker.exists() or json.loads(marker.read_text()).get("inputs") != digest:
        shutil.rmtree(staging, ignore_errors=True)  # other inputs: nothing to resume
        staging.mkdir(parents=True)
        marker.write_text(json.dumps({"inputs": digest}))
    return staging


def complete(part: Path, stage: str) -> bool:
    """Whether a staged part was written whole (its parquet footer reads)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(part)
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a damaged part: written again
        print(f"{stage}: {part.name} is damaged: writing it again", flush=True)
        return False
    return True


def partition_function(name: str) -> Any:
    """The per-partition function `module:name`."""
    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)


def _write_part(args: tuple[str, int, Any, str, str, str]) -> tuple[int, int, int]:
    """One partition through the stage's function, written as `part-NNNNN.parquet`."""
    import pyarrow as pa

    from core.stamps import write_stamps

    function, index, table, settings_json, folder, codec = args
    batch = partition_function(function)(table, settings_json)
    final = Path(folder) / f"part-{index:05d}.parquet"
    tmp = final.with_suffix(f".tmp-{os.getpid()}")
    try:
        write_stamps(pa.Table.from_batches([batch]), tmp, codec)
        os.replace(tmp, final)
    except OSError as err:  # disk full, a file-size limit: name the part, keep what is written
        tmp.unlink(missing_ok=True)
        raise stage_runtime.StageError(f"{final}: could not be written ({file_system_said(err)})") from None
    return index, batch.num_rows, sum(batch.column("ok").to_pylist())


def _share_cores(threads: int) -> None:
    """A pool worker's torch threads (if it uses torch): the cores shared among the workers;
    and the allocator its parent has (a worker not forked starts without it)."""
    from jobs.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_local(
    stage: str,
    function: str,
    parts: list[Any],
    settings_json: str,
    staging: Path,
    codec: str,
    workers: int,
) -> int:
    """Every partition not yet written into `staging`; returns the number written now."""
    todo = [(i, p) for i, p in enumerate(parts) if not complete(staging / f"part-{i:05d}.parquet", stage)]
    print(f"{stage}: {len(parts)} partitions, {len(parts) - len(todo)} already written", flush=True)
    jobs = [(function, i, p, settings_json, str(staging), codec) for i, p in todo]
    done = 0
    pool = None
    if workers <= 1:
        results: Iterator[tuple[int, int, int]] = map(_write_part, jobs)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_share_cores, initargs=(threads,))
        results = pool.map(_write_part, jobs)
    try:
        for index, n, ok in results:
            done += 1
            print(
                f"{stage}: partition {index} written ({n} rows, {n - ok} flagged) [{done}/{len(todo)}]",
                flush=True,
            )
    except stage_runtime.StageError as err:
        raise stage_runtime.StageError(f"{err}; {_kept(staging)}") from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return done


def _kept(staging: Path) -> str:
    """What a failed run leaves of its staging: the parts written whole, for a rerun to resume
    from; or, where none was, nothing (the folder goes)."""
    written = sorted(staging.glob("part-*.parquet"))
    if not written:
        shutil.rmtree(staging, ignore_errors=True)
        return "no partition was written: nothing was replaced"
    return (
        f"the {len(written)} partition(s) written so far stay in {staging}, and a rerun resumes from them"
        " (delete that folder to free their space); nothing was replaced"
    )


def parts_in(folder: str | Path) -> list[str]:
    """The part files under a folder or s3:// prefix (the local runner's and Spark's)."""
    from core import storage

    if not storage.is_s3(folder) and not Path(folder).is_dir():
        return []
    return storage.list_files(str(folder), "part-*.parquet")


def summarise(
    folder: str | Path, expected: int, key: str, label: str, what: str, columns: tuple[str, ...] = ()
) -> tuple[dict[str, Any], Any]:
    """Counts over the parts in `folder` (local or s3://; every input row exactly once, by
    `key`, else the stage fails), and the table of `key`, ok, fail_reason and `columns`."""
    from collections import Counter

    import numpy as np

    from core import storage

    parts = parts_in(folder)
    table = storage.read_parquet(parts, [key, "ok", "fail_reason", *columns]) if parts else None
    rows = table.num_rows if table is not None else 0
    if rows != expected or (rows and len(np.unique(table.column(key).to_numpy())) != rows):
        raise stage_runtime.StageError(f"{label} hold {rows} rows for {expected} {what} (or duplicates)")
    ok = table.column("ok").to_numpy(zero_copy_only=False) if rows else np.zeros(0, bool)
    reasons = table.column("fail_reason").to_pylist() if rows else []
    kinds = Counter(reason.split(":", 1)[0] for reason in reasons if reason)
    summary = {"rows": rows, "ok": int(ok.sum()), "flagged": int((~ok).sum()), "flag_kinds": dict(kinds)}
    return summary, table


def publish(staging: Path, final: Path, digest: str, extra: dict[str, Any]) -> None:
    """Move the staged parts (renumbered) and the JSON files `extra` into `final` at once."""
    with stage_runtime.atomic_dir(final, digest) as tmp:
        for index, part in enumerate(sorted(staging.rglob("part-*.parquet"))):
            os.replace(part, tmp / f"part-{index:05d}.parquet")
        for name, value in extra.items():
            (tmp / name).write_text(json.dumps(value, indent=2))
    shutil.rmtree(staging, ignore_errors=True)
