"""`inject` (seed Phase 4c): grz cutouts + injected arcs -> stamps parquet: the runners.

The modules it is made of: jobs/survey/coadd_reader.py (cutouts from the coadd cache), jobs/lensing/
(params.py: an arc's parameters and numerics; engines.py: the lenstronomy engine; batched.py:
the batched PyTorch engine, CPU or CUDA, equal to it; convolution.py: the PSF at the
supersampled scale; psf.py; sources.py: the sources' light and structure),
jobs/lensing/injection.py (the per-partition function, its flags and measured columns). This
module runs that function over the manifest: locally (a process pool over manifest
partitions; parts written atomically, so a killed run resumes without duplicates) or on
Spark (`mapInArrow`, jobs/runtime/spark.py), then audits the stamps for pixel-statistic
shortcuts (jobs/learn/shortcut_audit.py) before they replace the previous ones.

Defaults are converged and realistic: supersampling per task from the source's size, a
Moffat PSF per band, the arc's photon noise, arcs on the coadd's quantisation lattice.

    python -m jobs.stages.inject --workspace DIR --variant V [--grid G] [--runner local|spark]
        [--engine lenstronomy|batched] [--device cpu|cuda] [--supersample N]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core import storage
from core.errors import UsageError
from core.layout import manifest_file, stamps_dir
from jobs.lensing.injection import InjectSettings, pixelised
from jobs.runtime import partitions as partitioned
from jobs.runtime import stage as stage_runtime
from jobs.runtime.partitions import ROWS_PER_PART

PARTITION = "jobs.lensing.injection:inject_partition"  # the per-partition function, local and Spark
# -- runners -----------------------------------------------------------------------------


def check_device(engine: str, device: str) -> None:
    """Refuse, before launch, a device the engine cannot use or this machine does not have."""
    if device == "cpu":
        return
    if engine != "batched":
        raise UsageError(f"--device {device} needs --engine batched (lenstronomy runs on the CPU)")
    stage_runtime.check_cuda(device)


def settings_for(root: str, variant: Any, source: Any, options: dict[str, Any]) -> InjectSettings:
    """The injection settings of a launch, locally and on Spark alike: `root` the workspace (a
    folder, or an s3:// prefix on EMR) its coadd cache, PSF files and the grid's source
    catalogue are under; `variant` its config (core.config.Variant); `source` the grid's
    source model; `options` the launch's cache, supersample (None: per task, converged),
    engine and device."""
    from core.layout import coadd_cache_dir, under
    from jobs.lensing import catalogue

    found = catalogue.path_for(root, source) if source is not None else None
    return InjectSettings.from_injection(
        variant.injection.model_dump(mode="json"),
        options.get("cache") or under(root, coadd_cache_dir(Path(""))),
        options.get("supersample"),
        options.get("engine", "lenstronomy"),
        options.get("device", "cpu"),
        root,
        found or "",
    )


def check_files(settings: InjectSettings, manifest: str | None = None) -> None:
    """Read each PSF file and the source catalogue once, before any work: a bad one is one line
    (StageError) naming it, locally and on a cluster's driver alike; and, given the manifest,
    that its catalogue sources are the catalogue's own entries."""
    for path in settings.psf_files:
        try:
            pixelised(path)
        except ValueError as err:
            raise stage_runtime.StageError(str(err)) from None
    if settings.source_catalogue:
        from jobs.lensing import catalogue

        try:
            galaxies = catalogue.load(settings.source_catalogue)
        except catalogue.CatalogueError as err:
            raise stage_runtime.StageError(str(err)) from None
        missing = galaxies.missing_files()
        if missing:  # a half-finished download: said before any row, not row by row
            raise stage_runtime.StageError(
                f"{galaxies.path.parent}: {len(missing)} image file(s) the catalogue names are missing,"
                f" first {missing[0]} (download {catalogue.DOWNLOAD})"
            )
    if manifest is not None and settings.source_catalogue:
        drawn = storage.read_parquet(manifest, ["src_cat_index", "src_cat_ident"]).to_pydict()
        try:
            for index, ident in zip(drawn["src_cat_index"], drawn["src_cat_ident"], strict=True):
                if index is not None and index >= 0:
                    galaxies.check_entry(index, ident)
        except catalogue.CatalogueError as err:
            raise stage_runtime.StageError(f"{manifest}: {err}") from None


def run(
    workspace: Path,
    variant: str,
    *,
    grid: str | None = None,
    runner: str = "local",
    cache: str | None = None,
    supersample: int | None = None,
    workers: int | None = None,
    force: bool = False,
    rows_per_part: int = ROWS_PER_PART,
    engine: str = "lenstronomy",
    device: str = "cpu",
) -> dict[str, Any]:
    check_device(engine, device)
    config, grid = stage_runtime.resolve(workspace, variant, grid)
    manifest_path = manifest_file(workspace, variant, grid)
    if not manifest_path.exists():
        raise stage_runtime.StageError(f"{manifest_path}: no manifest; run `halo stage manifest` first")
    launch = {"cache": cache, "supersample": supersample, "engine": engine, "device": device}
    settings = settings_for(str(workspace), config.variants[variant], config.grids[grid].source, launch)
    check_files(settings, str(manifest_path))
    codec = config.variants[variant].injection.codec
    final = stamps_dir(workspace, variant, grid)
    digest = stage_runtime.fingerprint(
        "inject",
        settings.to_json(),
        codec,
        runner,
        rows_per_part,
        stage_runtime.files_fingerprint(
            [
                manifest_path,
                *map(Path, settings.psf_files),
                *map(Path, filter(None, [settings.source_catalogue])),
            ]
        ),
    )
    if not force and stage_runtime.up_to_date(final, digest):
        stage_runtime.unchanged(f"inject: the stamps {final} are")
        return {"outputs": [str(final)], "skipped": True}

    staging = partitioned.staging_for(final, digest, force)
    manifest = storage.read_parquet(str(manifest_path))  # a damaged one is named
    if runner == "spark":
        inject_spark(str(manifest_path), settings, str(staging / "spark"), codec)
    else:
        parts = partitioned.partitions(manifest, rows_per_part, ("brickname", "task_id"))
        workers = workers or min(2, os.cpu_count() or 1)
        partitioned.run_local("inject", PARTITION, parts, settings.to_json(), staging, codec, workers)
    summary = _summarise(staging, manifest.num_rows)
    summary["shortcut_audit"] = _audit(staging, config.variants[variant].audit, final.parent / grid)
    audit = summary["shortcut_audit"]
    partitioned.publish(staging, final, digest, {"summary.json": summary, "shortcut_audit.json": audit})
    return {"outputs": [str(final)], "variant": variant, "grid": grid, "runner": runner, **summary}


def inject_spark(
    manifest: str, settings: InjectSettings, output: str, codec: str, partitions: int | None = None
) -> None:
    """Inject every manifest row with Spark and write the stamps parquet to `output`."""
    from jobs.lensing.injection import output_schema
    from jobs.runtime.spark import run_spark

    schema = output_schema(settings.stamp_size)
    order = ("brickname", "task_id")
    run_spark(manifest, PARTITION, settings.to_json(), schema, output, codec, order, partitions)


def spark_run(job: Any) -> None:
    """The stage as a Spark step (jobs/runtime/spark.py): the manifest and the coadd cache
    under the workspace root in, the stamps folder out, with its summary and the shortcut
    audit (run on the driver, over the new parts), as the local runner writes them."""

    here = Path("")
    grid = job.grid
    manifest = job.at(manifest_file(here, job.variant, grid))
    settings = settings_for(job.root, job.config, job.sources.get(grid), job.params)
    check_files(settings, manifest)
    expected = storage.read_parquet(manifest, ["task_id"]).num_rows

    def write(out: str) -> None:
        inject_spark(manifest, settings, out, job.codec, job.partitions)
        summary = _summarise(out, expected)
        audit = _audit(out, job.config.audit, job.at(stamps_dir(here, job.variant, grid)))
        written = {"summary.json": {**summary, "shortcut_audit": audit}, "shortcut_audit.json": audit}
        for name, value in written.items():
            storage.write_bytes(f"{out}/{name}", json.dumps(value, indent=2).encode())

    job.replace(job.at(stamps_dir(here, job.variant, grid)), write)


def _audit(staging: str | Path, settings: Any, name: str | Path) -> dict[str, Any]:
    """The shortcut audit over the new stamps (local or s3://); a failed audit fails the
    stage, keeps the stamps in staging and leaves `<grid>.shortcut-audit-failed.json`."""
    from jobs.learn.shortcut_audit import audit, summary_line

    report = audit(partitioned.parts_in(staging), settings.max_auroc, settings.rows_per_split)
    print(summary_line(report), flush=True)
    failed = f"{name}.shortcut-audit-failed.json"
    if not report["ok"]:
        storage.write_bytes(failed, json.dumps(report, indent=2).encode())
        raise stage_runtime.StageError(
            f"the stamps failed the shortcut audit (pixel-statistic AUROC {report['auroc']:.3f} > "
            f"{report['max_auroc']:.2f}: {', '.join(report['flagged'])}); report in {failed}"
        )
    if not storage.is_s3(failed):
        Path(failed).unlink(missing_ok=True)
    return report


def _summarise(folder: str | Path, expected: int) -> dict[str, Any]:
    """Counts over the written parts (every manifest row exactly once) and the share of
    positives their PSF leaves unresolved."""
    summary, table = partitioned.summarise(
        folder, expected, "task_id", "stamps", "manifest rows", ("is_control", "theta_over_psf", "known_tier")
    )
    from core.schemas import known_rows

    ratio = table.column("theta_over_psf").to_numpy(zero_copy_only=False).astype(float)
    pos = ~table.column("is_control").to_numpy(zero_copy_only=False) & ~known_rows(table)
    return {**summary, "unresolved_fraction": float(np.mean(ratio[pos] < 0.5)) if pos.any() else None}


main = stage_runtime.entry("inject", run)


if __name__ == "__main__":
    raise SystemExit(main())
