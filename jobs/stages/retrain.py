"""`retrain` (one round of the loop): a run's grades -> a child run, judged beside its parent.

From the parent run and its grades (core.rounds: consensus A/B → real positives, consensus X →
hard negatives, weighted by each inspector's calibration; the evaluation split's galaxies set
aside, counted): the graded galaxies' own stamps (their parent-sample cutouts, untouched) are
written as `data/rounds/<child>/graded-<digest>/graded.parquet` (one folder per grades snapshot
and options: an earlier round's stays, with the child that names it, until the new child has
trained) beside the grid's injections, which stay as
the variant configures them with the known lenses; the child is trained on both, from the
parent's weights (`--init parent`, default) or from scratch, with its lineage in `run.json`
(the parent, the grades snapshot, inspectors and weights, labels used and set aside and why).
Then parent and child are evaluated on the same test split and compared in one table
(`data/rounds/<child>/report/compare.md`: real-lens recall, injection completeness, lookalike FPR,
the realism probe), and the child re-scores the parent sample. A re-run with unchanged grades
and options is up to date. The child trains through jobs/learn/training.py, as the train stage
does; the evaluations and the scoring are the eval and score stages, each run as a process of
its own (a stage never imports another: jobs/runtime/stage.py's run_stage).

    python -m jobs.stages.retrain --workspace DIR --from-run RUN --run NEW [--init parent|scratch]
        [--epochs N] [--preset P]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jobs.runtime import stage as stage_runtime


def round_dir(workspace: Path, child: str) -> Path:
    from core.layout import data_dir

    return data_dir(workspace) / "rounds" / child


GRADED = "graded"  # data/rounds/<child>/graded-<digest>/: the stamps a child trained on


def _drop_earlier_graded(here: Path, kept: Path) -> None:
    """The graded stamps of the child's earlier rounds, once the new child trained on `kept`
    (never before: until then the child in place names them)."""
    import shutil

    for old in here.iterdir():
        if old != kept and old.name.startswith(GRADED) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)


def graded_stamps(labels: Any, training: Any, cutouts: Path, stamps: Path, out: Path) -> int:
    """The labelled galaxies' cutouts (from the folder `cutouts`) as stamps rows the dataset
    reads (positives with the tier their rounded grade maps to in `training`, negatives as
    controls), task ids after those of the grid's `stamps`; returns how many were written (a
    galaxy without a usable cutout is said and left out)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.stamps import arrow_metadata, stamp_meta

    wanted = {(x.brickname, x.objid): x for x in labels.used}
    parts = sorted(cutouts.glob("part-*.parquet"))
    grid_parts = sorted(stamps.glob("part-*.parquet"))
    grid = pq.read_table(grid_parts, columns=["task_id", "brickname", "objid", "unit"])
    units = dict(
        zip(
            zip(grid.column("brickname").to_pylist(), grid.column("objid").to_pylist(), strict=True),
            grid.column("unit").to_pylist(),
            strict=True,
        )
    )
    next_task = int(grid.column("task_id").to_numpy().max()) + 1 if grid.num_rows else 0
    rows: list[dict[str, Any]] = []
    shape = None
    for part in parts:
        table = pq.read_table(
            part, columns=["brickname", "objid", "ra", "dec", "psfsize_r", "psfdepth_r", "ok"]
        )
        keys = zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), strict=True)
        hits = [i for i, key in enumerate(keys) if key in wanted]
        if not hits:
            continue
        shape = shape or stamp_meta(pq.read_schema(part))["shape"]
        picked = pq.read_table(part).take(hits).to_pylist()
        for row in picked:
            label = wanted.pop((row["brickname"], row["objid"]))
            if not row["ok"]:
                continue
            rows.append(
                {
                    "task_id": next_task + len(rows),
                    "split": label.split,
                    "brickname": row["brickname"],
                    "objid": int(row["objid"]),
                    "ra": row["ra"],
                    "dec": row["dec"],
                    "is_control": not label.label,
                    "known_tier": training.tier_of(label.grade) if label.label else "",
                    "theta_over_psf": float("nan"),
                    "psfsize_r": row["psfsize_r"],
                    "psfdepth_r": row["psfdepth_r"],
                    "unit": units.get((row["brickname"], row["objid"]))
                    or f"{row['brickname']}:{row['objid']}",
                    "ok": True,
                    "stamp": row["stamp"],
                }
            )
    if wanted:
        print(f"retrain: {len(wanted)} graded galaxies have no usable cutout: left out", flush=True)
    schema = pa.schema(
        [
            ("task_id", pa.int64()),
            ("split", pa.string()),
            ("brickname", pa.string()),
            ("objid", pa.int64()),
            ("ra", pa.float64()),
            ("dec", pa.float64()),
            ("is_control", pa.bool_()),
            ("known_tier", pa.string()),
            ("theta_over_psf", pa.float64()),
            ("psfsize_r", pa.float32()),
            ("psfdepth_r", pa.float32()),
            ("unit", pa.string()),
            ("ok", pa.bool_()),
            ("stamp", pa.binary()),
        ],
        metadata=arrow_metadata(tuple(shape)) if shape else None,
    )
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    tmp.replace(out)
    return len(rows)


def run(
    workspace: Path,
    *,
    from_run: str,
    run: str,
    init: str = "parent",
    epochs: int | None = None,
    preset: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """One round (module doc); refused in one line where core.rounds.check_retrain refuses."""
    from core import rounds, runs
    from core.errors import UsageError
    from core.layout import cutouts_dir, eval_dir, run_checkpoint, runs_dir, stamps_dir
    from core.names import check_name
    from jobs.learn import training

    check_name("run", from_run)
    run_name = check_name("run", run)
    myself = os.environ.get("HALO_JOB_ID")  # launched as a job: that job is live, and is this
    try:
        rounds.check_retrain(
            workspace, {"from_run": from_run, "run": run_name}, int(myself) if myself else None
        )
    except UsageError as err:
        raise stage_runtime.StageError(str(err)) from None
    parent_dir = runs_dir(workspace) / from_run
    info = json.loads((parent_dir / "run.json").read_text())
    variant, grid = info["variant"], info["grid"]
    preset = preset or info["preset"]
    config, grid = stage_runtime.resolve(workspace, variant, grid)
    labels = rounds.labels(workspace, from_run)
    checkpoint = run_checkpoint(parent_dir)
    here = round_dir(workspace, run_name)
    report = here / "report"
    digest = stage_runtime.fingerprint(
        "retrain",
        from_run,
        init,
        epochs,
        preset,
        labels.snapshot["labels"],
        stage_runtime.signatures(checkpoint),
    )
    if (
        not force
        and stage_runtime.up_to_date(report, digest)
        and run_checkpoint(runs_dir(workspace) / run_name)
    ):
        stage_runtime.unchanged(f"retrain: the round {here} (grades and options) is")
        return {"outputs": [str(here)], "skipped": True, **json.loads((report / "round.json").read_text())}
    print(
        f"retrain: {len(labels.positives)} positives, {len(labels.negatives)} hard negatives from"
        f" run {from_run}'s grades; {labels.set_aside} set aside (the {rounds.EVALUATION_SPLIT} split);"
        f" ignored: {labels.ignored or 'none'}",
        flush=True,
    )
    stamps = stamps_dir(workspace, variant, grid)
    cutouts = cutouts_dir(workspace, config.variants[variant].parent_sample)
    settings = config.variants[variant].training
    graded = here / f"{GRADED}-{digest[:12]}"
    with stage_runtime.atomic_dir(graded, digest) as tmp:  # where the child will read them
        written = graded_stamps(labels, settings, cutouts, stamps, tmp / "graded.parquet")
    lineage = {**labels.provenance(), "init": init, "graded_rows": written}
    trained = training.run(
        workspace,
        variant,
        grid=grid,
        preset=preset,
        run=run_name,
        force=True,
        epochs=epochs,
        extra_stamps=[str(graded / "graded.parquet")],
        init=checkpoint if init == "parent" else None,
        lineage=lineage,
    )
    _drop_earlier_graded(here, graded)
    for name in (from_run, run_name):  # the same test split, the same thresholds' sources
        stage_runtime.run_stage("eval", workspace, variant, grid=grid, run=name)
    table = runs.compare([runs.load(workspace, name) for name in (from_run, run_name)], config.targets)
    text = runs.markdown(table)
    scored = stage_runtime.run_stage("score", workspace, variant, grid=grid, run=run_name)
    summary = {
        "run": run_name,
        **lineage,
        "epochs": trained.get("epochs"),
        "compare": str(report / "compare.md"),
        "evaluations": [str(eval_dir(workspace, n)) for n in (from_run, run_name)],
        "candidates": scored["outputs"][0],
    }
    with stage_runtime.atomic_dir(report, digest) as tmp:
        (tmp / "compare.md").write_text(f"# Round: {from_run} -> {run_name}\n\n{text}\n")
        (tmp / "round.json").write_text(json.dumps(summary, indent=2))
    print(text, flush=True)
    return {"outputs": [str(here), str(runs_dir(workspace) / run_name)], **summary}


main = stage_runtime.entry("retrain", run)


if __name__ == "__main__":
    raise SystemExit(main())
