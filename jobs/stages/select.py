"""`select` (seed Phase 3): Tractor catalogues -> the LRG parent sample with region splits.

Reads DR10 tractor or sweep FITS files (the mock survey's, or real ones; local or `s3://`),
applies the variant's cuts with magnitudes from nanomaggies, and writes the parent sample
parquet with a `split` column drawn from a deterministic hash of the brick name, so a brick's
galaxies (and their neighbours) never straddle two splits. A catalogue that cannot be read,
lacks a column or has a wrong type is named and skipped; the others go on, and the stage ends
non-zero with the failures in its summary.

    python -m jobs.stages.select --workspace DIR --variant v3_color_relaxed [--catalogs PATH] [--force]
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from core import storage
from core.layout import PARENT_FILE, parent_dir, parent_file, survey_catalogs
from core.schemas import PARENT_COLUMNS, SPLITS, TRACTOR_COLUMNS, nanomaggies_to_mag
from jobs.runtime import stage as stage_runtime

CATALOGUE_NAME = re.compile(r"^(tractor|sweep)-.+\.fits(\.gz)?$")
GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {name: dtype for name, dtype, _ in TRACTOR_COLUMNS}
NEEDED = tuple(dict.fromkeys((*PARENT_COLUMNS, "brick_primary")))


def split_of(brickname: str, fractions: dict[str, float]) -> str:
    """The split of a brick: a hash of its name, uniform in [0, 1), cut at the fractions."""
    digest = hashlib.blake2b(brickname.encode(), digest_size=8, person=b"halo-split").digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    edge = 0.0
    for split in SPLITS:
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return SPLITS[-1]


def catalogue_files(source: str) -> list[str]:
    """The Tractor and sweep catalogues under a folder, S3 prefix or glob, by name: a release
    root also holds coadd images and other FITS files, which are not catalogues. A single file
    names itself, whatever its name."""
    files = storage.list_files(source, "*.fits*")
    if files == [str(source)]:
        return files
    return [f for f in files if CATALOGUE_NAME.match(f.rsplit("/", 1)[-1])]


def read_catalogue(uri: str) -> dict[str, np.ndarray]:
    """The columns the pipeline needs from one Tractor/sweep file, checked by name and type."""
    from astropy.io import fits

    name = uri if storage.is_s3(uri) else str(uri)
    try:
        raw = storage.read_bytes(uri)
        if raw[:2] == GZIP_MAGIC:  # astropy does not look for gzip inside a file object
            raw = gzip.decompress(raw)
        with fits.open(io.BytesIO(raw), memmap=False) as hdus:
            table = next((h for h in hdus if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                raise stage_runtime.StageError(f"{name}: no table extension (truncated, or not a catalogue)")
            data = table.data
            present = {c.lower(): c for c in data.columns.names}
            out: dict[str, np.ndarray] = {}
            for column in NEEDED:
                if column not in present:
                    if column == "brick_primary":
                        continue
                    raise stage_runtime.StageError(f"{name}: missing column {column!r}")
                values = np.asarray(data[present[column]])
                out[column] = _typed(name, column, values)
    except stage_runtime.StageError:
        raise
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as err:
        raise stage_runtime.StageError(f"{name}: not a readable FITS table ({err})") from None
    return out


def _typed(name: str, column: str, values: np.ndarray) -> np.ndarray:
    want = np.dtype(_DTYPES[column])
    if want.kind == "U":
        if values.dtype.kind not in "SU":
            raise stage_runtime.StageError(
                f"{name}: column {column!r} should hold text, holds {values.dtype}"
            )
        return np.char.strip(values.astype(str)).astype(object)
    if want.kind == "b":
        if values.dtype.kind not in "bui":
            raise stage_runtime.StageError(
                f"{name}: column {column!r} should be boolean, holds {values.dtype}"
            )
        return values.astype(bool)
    if values.dtype.kind not in "biuf":
        raise stage_runtime.StageError(f"{name}: column {column!r} should be numeric, holds {values.dtype}")
    return values.astype(want.newbyteorder("="))


def apply_cuts(cat: dict[str, np.ndarray], cuts: Any) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The selection mask and the rows left after each cut, in order."""
    n = len(cat["ra"])
    keep = np.ones(n, dtype=bool)
    counts = [("input", n)]

    def step(label: str, mask: np.ndarray) -> None:
        nonlocal keep
        keep &= mask
        counts.append((label, int(keep.sum())))

    if "brick_primary" in cat:
        step("brick_primary", cat["brick_primary"])
    step(f"type not in {cuts.exclude_types}", ~np.isin(cat["type"], cuts.exclude_types))
    for band in cuts.positive_flux:
        step(f"flux_{band} > 0", cat[f"flux_{band}"] > 0)
    mag = {b: nanomaggies_to_mag(cat[f"flux_{b}"]) for b in ("r", "z", "w1")}
    with np.errstate(invalid="ignore"):
        step(f"z < {cuts.z_mag_max}", mag["z"] < cuts.z_mag_max)
        step(f"r - z > {cuts.rz_min}", (mag["r"] - mag["z"]) > cuts.rz_min)
        step(f"z - W1 > {cuts.zw1_min}", (mag["z"] - mag["w1"]) > cuts.zw1_min)
    return keep, counts


# The helper columns a partition's rows carry: which catalogue (its index in the sorted list)
# and which row of it, so that any runner gives the rows in the same order; and `report`,
# set only on each catalogue's one report row (its counts after each cut, or why it failed).
ORDER = ("file_index", "file_row")
PARTITION = "jobs.stages.select:select_partition"  # the per-partition function, local and Spark
REPORT = "report"


def parent_schema() -> Any:
    """The parent sample's columns and types (DR10's Tractor types; magnitudes, split)."""
    import pyarrow as pa

    fields = [
        pa.field(c, pa.string() if _DTYPES[c].startswith("U") else pa.from_numpy_dtype(np.dtype(_DTYPES[c])))
        for c in PARENT_COLUMNS
    ]
    fields += [pa.field(f"mag_{b}", pa.float32()) for b in ("g", "r", "z", "w1")]
    return pa.schema([*fields, pa.field("split", pa.string())])


def partition_schema() -> Any:
    import pyarrow as pa

    extra = [pa.field(ORDER[0], pa.int64()), pa.field(ORDER[1], pa.int64()), pa.field(REPORT, pa.string())]
    return pa.schema([*parent_schema(), *extra])


def select_partition(batch: Any, settings_json: str) -> Any:
    """Catalogues (`file_index`, `uri` rows) -> their selected galaxies with magnitudes and
    split, and one report row per catalogue: the per-partition function of both runners."""
    import pyarrow as pa

    from core.config import Variant

    variant = Variant.model_validate_json(settings_json)
    schema = partition_schema()
    tables = []
    for index, uri in zip(
        batch.column("file_index").to_pylist(), batch.column("uri").to_pylist(), strict=True
    ):
        try:
            cat = read_catalogue(uri)
        except stage_runtime.StageError as err:
            report = {"file": uri, "failed": str(err)}
            tables.append(_report_row(schema, index, report))
            continue
        keep, counts = apply_cuts(cat, variant.cuts)
        columns: dict[str, Any] = {c: cat[c][keep] for c in PARENT_COLUMNS}
        for band in ("g", "r", "z", "w1"):
            columns[f"mag_{band}"] = nanomaggies_to_mag(columns[f"flux_{band}"]).astype(np.float32)
        columns["split"] = np.array([split_of(b, variant.splits) for b in columns["brickname"]], dtype=object)
        n = int(keep.sum())
        columns[ORDER[0]] = np.full(n, index, dtype=np.int64)
        columns[ORDER[1]] = np.flatnonzero(keep).astype(np.int64)
        columns[REPORT] = np.full(n, None, dtype=object)
        arrays = [
            pa.array(columns[f.name].tolist() if columns[f.name].dtype == object else columns[f.name], f.type)
            for f in schema
        ]
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
        tables.append(_report_row(schema, index, {"file": uri, "counts": counts}))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return (
        table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema)
    )


def _report_row(schema: Any, index: int, report: dict[str, Any]) -> Any:
    import pyarrow as pa

    row = {f.name: None for f in schema}
    row.update({ORDER[0]: index, ORDER[1]: -1, REPORT: json.dumps(report)})
    return pa.Table.from_pylist([row], schema=schema)


def select_files(
    files: list[str], variant: Any, runner: str, output: str | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """Every catalogue through `select_partition`, here (`local`) or on Spark: the selected
    rows in catalogue order, and each catalogue's report. With `output`, Spark also writes
    the rows there as a folder of parts (a step on EMR)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    settings = variant.model_dump_json()
    listing = pa.table(
        {"file_index": pa.array(range(len(files)), pa.int64()), "uri": pa.array(files, pa.string())}
    )
    if runner == "spark":
        rows = _select_spark(listing, settings, output)
    else:
        rows = pa.Table.from_batches(
            [select_partition(b, settings) for b in listing.to_batches(max_chunksize=1)],
            schema=partition_schema(),
        )
    is_report = pc.is_valid(rows.column(REPORT))
    position = {uri: i for i, uri in enumerate(files)}
    reports = sorted(
        (json.loads(r) for r in rows.filter(is_report).column(REPORT).to_pylist()),
        key=lambda r: position[r["file"]],
    )
    selected = rows.filter(pc.invert(is_report)).sort_by([(c, "ascending") for c in ORDER])
    return selected.select(parent_schema().names), reports


def _select_spark(listing: Any, settings: str, output: str | None) -> Any:
    """`select_partition` over the catalogues on Spark (one task per catalogue, up to the
    session's parallelism); the rows come back to the driver (8.5 M parent galaxies of
    DR10 are ~2 GB), or, with `output`, are written there and only the reports come back."""
    from pyspark import StorageLevel

    from jobs.runtime.spark import map_partitions, session

    spark = session("halo-select")
    frame = spark.createDataFrame(listing)
    frame = frame.repartition(
        max(1, min(listing.num_rows, spark.sparkContext.defaultParallelism * 4)), "file_index"
    )
    out = map_partitions(frame, PARTITION, settings, partition_schema())
    out = out.persist(StorageLevel.MEMORY_AND_DISK)
    if output is None:
        return out.toArrow().cast(partition_schema())
    rows = out.filter(out[REPORT].isNull()).select(*parent_schema().names)
    rows.write.mode("overwrite").parquet(output)
    reports = out.filter(out[REPORT].isNotNull()).toArrow().cast(partition_schema())
    out.unpersist()
    return reports


def _counts(reports: list[dict[str, Any]]) -> tuple[dict[str, int], list[dict[str, str]]]:
    totals: dict[str, int] = {}
    failed = []
    for report in reports:
        if "failed" in report:
            print(f"select: skipped: {report['failed']}", flush=True)
            failed.append({"file": report["file"], "reason": report["failed"]})
            continue
        for label, count in report["counts"]:
            totals[label] = totals.get(label, 0) + count
    return totals, failed


def _summary(
    parent_name: str,
    variant_name: str,
    files: list[str],
    reports: list[dict[str, Any]],
    split: Any,
    brickname: Any,
) -> dict[str, Any]:
    totals, failed = _counts(reports)
    split = np.asarray(split, dtype=object)
    brickname = np.asarray(brickname, dtype=object)
    per_split = {s: int(np.sum(split == s)) for s in SPLITS}
    bricks_per_split = {s: sorted(set(brickname[split == s].tolist())) for s in SPLITS}
    return {
        "parent_sample": parent_name,
        "variant": variant_name,
        "catalogues": len(files),
        "failed_catalogues": failed,
        "rows_after_each_cut": totals,
        "selected": int(split.size),
        "per_split": per_split,
        "bricks_per_split": {s: len(b) for s, b in bricks_per_split.items()},
        "split_bricks": bricks_per_split,
    }


def run(
    workspace: Path,
    variant: str,
    *,
    catalogs: str | None = None,
    force: bool = False,
    runner: str = "local",
) -> dict[str, Any]:
    config, _ = stage_runtime.resolve(workspace, variant)
    parent_name = config.variants[variant].parent_sample
    cuts = config.variants[parent_name]  # the parent sample's own cuts and splits
    source = catalogs or str(survey_catalogs(workspace))
    files = catalogue_files(source)
    if not files:
        raise stage_runtime.StageError(
            f"{source}: no catalogue files (tractor-*.fits or sweep-*.fits, optionally .gz)"
        )
    out_dir = parent_dir(workspace, parent_name)
    digest = stage_runtime.fingerprint(
        "select", cuts.model_dump(mode="json"), [storage.signature(f) for f in files]
    )
    if not force and stage_runtime.up_to_date(out_dir, digest):
        stage_runtime.unchanged(f"select: the parent sample {out_dir} is")
        return {"outputs": [str(out_dir / PARENT_FILE)], "skipped": True}

    table, reports = select_files(files, cuts, runner)
    full = _summary(
        parent_name,
        variant,
        files,
        reports,
        table.column("split").to_pylist(),
        table.column("brickname").to_pylist(),
    )
    bricks_per_split = full.pop("split_bricks")
    summary = {**full, "outputs": [str(out_dir / PARENT_FILE)]}
    _print_table(summary)
    where = _where(variant, parent_name, out_dir)
    failed = summary["failed_catalogues"]
    kept = (out_dir / PARENT_FILE).exists()
    if table.num_rows == 0 or (failed and kept):  # never replace a parent sample with less
        _fail_on(failed, len(files), "the log", None, table.num_rows, where, kept)
    with stage_runtime.atomic_dir(out_dir, digest) as tmp:
        stage_runtime.write_parquet(table, tmp / PARENT_FILE, cuts.injection.codec)
        (tmp / "summary.json").write_text(json.dumps({**summary, "split_bricks": bricks_per_split}, indent=2))
    _fail_on(failed, len(files), out_dir / "summary.json", out_dir, table.num_rows, where, False)
    return summary


def _where(variant_name: str, parent_name: str, out_dir: Path | str) -> str:
    """Whose parent sample the stage writes, and where (a variant may use another's)."""
    owner = f"{variant_name}'s parent sample" + (
        f" is {parent_name}'s" if parent_name != variant_name else ""
    )
    return f"{owner}, in {out_dir}"


def _fail_on(
    failed: list[dict[str, str]],
    total: int,
    listed: str | Path,
    out_dir: Path | None,
    rows: int,
    where: str,
    kept: bool,
) -> None:
    """End the stage non-zero when catalogues could not be used (their rows are missing) or no
    galaxy was selected, saying whose parent sample it is, where, and whether the one in
    place was kept (a run that would give less never replaces it)."""
    if not failed and rows:
        return
    if out_dir is not None:
        (out_dir / stage_runtime.STAMP_FILE).unlink(missing_ok=True)  # redo once they are fixed
    said = "no galaxy passed the cuts" if not rows else ""
    if failed:
        reasons = "; ".join(f["reason"] for f in failed[:3])
        said = f"{len(failed)} of {total} catalogues could not be used (listed in {listed}): {reasons}" + (
            "; no galaxy passed the cuts in the others" if not rows else ""
        )
    state = (
        "nothing replaced"
        if kept
        else "written without the failed catalogues' rows"
        if rows
        else "nothing written"
    )
    raise stage_runtime.StageError(f"{said} ({where}: {state})")


def spark_run(job: Any) -> None:
    """The stage as a Spark step (jobs/runtime/spark.py): catalogues (`catalogs`, else the
    mock survey's under the workspace root) in; the parent sample out as a folder of parts
    named `parent.parquet` (the stages read a file or such a folder alike), its summary.json
    beside them."""
    parent_name = job.config.parent_sample
    variant = job.variants[parent_name]
    source = job.params.get("catalogs") or job.at(survey_catalogs(Path("")))
    files = catalogue_files(source)
    if not files:
        raise stage_runtime.StageError(f"{source}: no catalogue files (tractor-*.fits or sweep-*.fits)")
    final = job.at(parent_file(Path(""), parent_name))

    def write(out: str) -> None:
        _, reports = select_files(files, variant, "spark", out)
        rows = storage.read_parquet(out, ["split", "brickname"])
        summary = _summary(
            parent_name,
            job.variant,
            files,
            reports,
            rows.column("split").to_pylist(),
            rows.column("brickname").to_pylist(),
        )
        storage.write_bytes(f"{out}/_summary.json", json.dumps(summary, indent=2).encode())
        _print_table(summary)
        where = _where(job.variant, parent_name, final)
        failed = summary["failed_catalogues"]  # raised before the folder replaces the one in place
        _fail_on(failed, len(files), f"{out}/_summary.json", None, rows.num_rows, where, True)

    job.replace(final, write)


def _print_table(summary: dict[str, Any]) -> None:
    lines = [f"{'cut':<32} {'rows left':>10}"]
    lines += [f"{label:<32} {count:>10}" for label, count in summary["rows_after_each_cut"].items()]
    lines += ["", f"{'split':<32} {'galaxies':>10} {'bricks':>7}"]
    lines += [f"{s:<32} {summary['per_split'][s]:>10} {summary['bricks_per_split'][s]:>7}" for s in SPLITS]
    print("\n".join(lines), flush=True)


main = stage_runtime.entry("select", run)


if __name__ == "__main__":
    raise SystemExit(main())
