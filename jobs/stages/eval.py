"""`eval` (seed Phase 6): a trained run judged as a referee would judge it.

On a held-out split of the injection stamps (test by default), scored in float32:

- **operating points** (jobs/stats/operating_points.py): AUROC, tpr@fpr, fpr@tpr and the TPR at
  FPR = 0 (HOLISMOKES), each with n rows and n independent (galaxies), a bootstrap interval
  over galaxies, and "not measurable" or a one-sided upper bound where the independent
  negatives cannot measure it;
- **the seed's two tables** (FPR at each completeness, completeness at each FPR);
- **operating thresholds**: the score above which each measurable FPR level (1e-2 … 1e-5)
  holds on the negatives, and the highest negative's score (FPR 0);
- **completeness maps** at each threshold: by θE × src_dmag, by arc_snr, by θE and by
  θE/PSF, every cell with its counts (rows and host galaxies) and interval;
- **real galaxies**: the FPR at each threshold on parent-sample galaxies that were never in
  training (not in the train split, not known lenses; up to `--real-galaxies` of them) and
  on each lookalike population of `--lookalikes` (the workspace's catalogs/lookalikes.csv by
  default: spirals, rings, mergers, edge-on disks), with intervals;
- **known-lens recovery**: every known lens in the scored footprint (the shipped lenscat
  table and the workspace's own), its score, its rank among the real galaxies scored and
  the thresholds it passes;
- **calibration**: the reliability table and its ECE, and the purity each threshold would
  reach at `--prevalence` lenses per galaxy (default one per 10,000 LRGs), from the real
  galaxies' FPR;
- **roc**: the ROC curve on the rows, thinned to 256 vertices evenly in log FPR (the
  console plots it).

JSON and markdown land in `data/runs/<run>/eval/eval-<split>.{json,md}`.

    python -m jobs.stages.eval --workspace DIR --variant V [--grid G] [--run NAME] [--split test]
        [--lookalikes FILE] [--prevalence P] [--real-galaxies N] [--cache DIR]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.layout import eval_report
from jobs.learn.eval_report import cutouts_markdown, markdown, purity_row
from jobs.learn.evaluation import (
    completeness_maps,
    fpr_table,
    known_lens_recovery,
    operating_thresholds,
    real_lens_recall,
    realism_gate,
    tables,
)
from jobs.runtime import stage as stage_runtime
from jobs.stats.rates import rate, reliability

DEFAULT_PREVALENCE = stage_runtime.declared_default("eval", "prevalence")
DEFAULT_REAL_GALAXIES = stage_runtime.declared_default("eval", "real_galaxies")
EVAL_BRICKS = 48  # bricks the coadd reader keeps open


# -- thresholds and tables ---------------------------------------------------------------


# -- real galaxies, lookalikes, known lenses ---------------------------------------------


def real_galaxies(
    workspace: Path, variant: Any, known: Any, limit: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Parent-sample galaxies never in training (not in the train split) and with no known lens
    in their stamp, up to `limit`; the
    parent's known lenses (any split, each by its nearest galaxy); and those lenses' indexes
    in the known-lens table; and the positions of the train split (what the model saw). One
    read of the parent sample serves all three."""
    import pyarrow.parquet as pq

    from core.layout import parent_file
    from core.schemas import galaxy_keys, hash_order
    from jobs.survey import known_lenses

    path = parent_file(workspace, variant.parent_sample)
    if not path.exists():
        raise stage_runtime.StageError(f"{path}: no parent sample; run `halo stage select` first")
    table = pq.read_table(path)
    parent = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    lens_index, separation = known_lenses.match_with_separation(parent["ra"], parent["dec"], known)
    near = known_lenses.in_stamp(parent["ra"], parent["dec"], known, variant.injection.stamp_size)
    eligible = np.flatnonzero((parent["split"] != "train") & ~near)
    keys = galaxy_keys(parent["brickname"][eligible], parent["objid"][eligible])
    chosen = eligible[hash_order(keys)[:limit]]
    sample = {k: v[chosen] for k, v in parent.items()}
    lenses = known_lenses.nearest_per_lens(lens_index, separation)
    train = parent["split"] == "train"
    seen = {"ra": parent["ra"][train], "dec": parent["dec"][train]}
    return sample, {k: v[lenses] for k, v in parent.items()}, lens_index[lenses], seen


def _held_out_rows(lenses: dict[str, np.ndarray]) -> dict[str, Any]:
    """The split's known lenses, as scored (`real lens: <tier>`)."""
    n = lenses["logit"].size
    return {
        "population": [f"real lens: {t}" for t in lenses["tier"]],
        "galaxy": [str(g) for g in lenses["galaxy"]],
        "task_id": lenses["task_id"],
        "label": np.ones(n, bool),
        "logit": lenses["logit"],
        "ok": np.ones(n, bool),
    }


# -- the stage ---------------------------------------------------------------------------


def run(
    workspace: Path,
    variant: str,
    *,
    grid: str | None = None,
    run: str | None = None,
    split: str = "test",
    lookalikes: str | None = None,
    prevalence: float = DEFAULT_PREVALENCE,
    real_galaxies: int = DEFAULT_REAL_GALAXIES,
    cache: str | None = None,
    force: bool = False,
    cutouts: str | None = None,
    labels: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run on a split; skipped when the model, stamps, parent sample, coadds,
    lookalikes, known lenses and options are those of the evaluation in place, unless `force`.
    With `cutouts` (a folder of FITS cutouts) and `labels`, those files are judged too, at the
    split's real-galaxy thresholds (`cutout_evaluation`)."""
    if cutouts is not None or labels is not None:  # said before the evaluation, not after it
        if cutouts is None or labels is None:
            raise stage_runtime.StageError("--cutouts and --labels go together (which files are lenses)")
        if not Path(cutouts).is_dir():
            raise stage_runtime.StageError(f"{Path(cutouts).resolve()}: no such folder of FITS cutouts")
        if not Path(labels).is_file():
            raise stage_runtime.StageError(f"{Path(labels).resolve()}: no such labels file")
    summary = _evaluate(
        workspace, variant, grid, run, split, lookalikes, prevalence, real_galaxies, cache, force
    )
    if cutouts is not None and labels is not None:
        summary["outputs"] += cutout_evaluation(
            workspace, variant, summary, Path(cutouts), Path(labels), force
        )
    return summary


def _evaluate(
    workspace: Path,
    variant: str,
    grid: str | None,
    run_name: str | None,
    split: str,
    lookalikes: str | None,
    prevalence: float,
    real_galaxy_limit: int,
    cache: str | None,
    force: bool,
) -> dict[str, Any]:
    """The evaluation of a run on a split (`run`'s, without cutout files)."""
    import pyarrow.parquet as pq

    from core.layout import (
        coadd_cache_dir,
        eval_dir,
        lookalikes_in_use,
        parent_file,
        run_checkpoint,
        run_name_of,
        runs_dir,
        stamps_dir,
    )
    from core.names import check_name
    from core.schemas import galaxy_keys
    from jobs.learn.models import load_run
    from jobs.learn.scoring import footprint_bricks, score_positions, score_split, sigmoid
    from jobs.stats.operating_points import operating_points, pauc_max_fpr, roc_points
    from jobs.survey import known_lenses
    from jobs.survey.coadd_reader import CoaddReader

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    run_name = check_name("run", run_name_of(config, variant, {"run": run_name, "grid": grid}))
    model, meta_cols = load_run(runs_dir(workspace) / run_name)
    cache = cache or str(coadd_cache_dir(workspace))
    looks_path = lookalikes_in_use(workspace, lookalikes)
    out, name = eval_dir(workspace, run_name), eval_report(split)
    digest = stage_runtime.fingerprint(
        "eval",
        split,
        prevalence,
        real_galaxy_limit,
        cache,
        sorted(footprint_bricks(cache)),
        stage_runtime.signatures(
            run_checkpoint(runs_dir(workspace) / run_name),
            stamps_dir(workspace, variant, grid) / stage_runtime.STAMP_FILE,
            *sorted(stamps_dir(workspace, variant, grid).glob("part-*.parquet")),  # each by its footer
            parent_file(workspace, config.variants[variant].parent_sample),
            looks_path,
            *(
                path
                for _, path in known_lenses.sources(workspace, config.variants[variant].training.catalogues)
            ),
        ),
    )
    if not force and stage_runtime.up_to_date(out, digest, key=name):
        stage_runtime.unchanged(f"eval: {out / name} is")
        return {**_summary(json.loads((out / name).read_text()), out), "skipped": True}
    scored = score_split(model, meta_cols, stamps_dir(workspace, variant, grid), split)
    realism = realism_gate(scored, scored.pop("probe"))
    is_known = scored["tier"] != ""  # the split's known lenses: real positives, judged apart
    held_out = {k: v[is_known] for k, v in scored.items() if isinstance(v, np.ndarray)}
    scored = {k: v[~is_known] if isinstance(v, np.ndarray) else v for k, v in scored.items()}
    label, logit, galaxy = scored["label"], scored["logit"], scored["galaxy"]
    n_neg_ind = int(np.unique(galaxy[~label]).size)
    ops = operating_points(label, logit, galaxy, pauc_max_fpr=pauc_max_fpr(n_neg_ind))
    thresholds = operating_thresholds(logit[~label], galaxy[~label])
    result: dict[str, Any] = {
        "run": run_name,
        "variant": variant,
        "grid": grid,
        "split": split,
        "operating_points": ops,
        "thresholds": thresholds,
        "tables": {"overall": tables(scored, thresholds, ops)},
        "completeness": completeness_maps(scored, thresholds),
        "calibration": reliability(label, sigmoid(logit)),
        "roc": roc_points(label, logit),  # thinned, for plots (halo_tui/components/plots.py)
    }

    # real galaxies never trained on, lookalikes, known lenses
    # real galaxies, lookalikes and known lenses are cut in three brick-sorted passes: bricks
    # stay open across them (a DR10 brick is read by section, never whole: cheap to keep)
    reader = CoaddReader(
        cache, config.variants[variant].injection.stamp_size, keep_bricks=EVAL_BRICKS, with_invvar=False
    )
    known = known_lenses.load(workspace, config.variants[variant].training.catalogues)
    sample, parent_lenses, lens_index, trained_on = real_galaxies(
        workspace, config.variants[variant], known, real_galaxy_limit
    )
    real = score_positions(model, meta_cols, reader, sample)
    parts = [_split_rows(scored), _rows("real galaxy" for _ in real["ok"]) | _positions(sample, real)]
    result["real_galaxies"] = {
        "population": "parent sample, never in training (val and test splits), no known lens in the stamp",
        **fpr_table(real["logit"], real["ok"], thresholds),
        "flagged": int((~real["ok"]).sum()),
    }
    real_keys = galaxy_keys(sample["brickname"], sample["objid"])
    result["real_lenses"] = real_lens_recall(
        held_out, real["logit"][real["ok"]], real_keys[real["ok"]], prevalence
    )
    parts.append(_held_out_rows(held_out))
    result["realism"] = realism
    result["lookalikes"] = {}
    if looks_path:
        size = config.variants[variant].injection.stamp_size
        result["lookalikes"], rows = _lookalike_fprs(
            model, meta_cols, reader, looks_path, known, trained_on, size, thresholds
        )
        result["lookalikes_file"] = str(looks_path)
        parts.append(rows)
    lens_positions = (lens_index, parent_lenses)
    scored_lenses = _known_lens_scores(
        model, meta_cols, reader, known, lens_positions, footprint_bricks(cache)
    )
    reference = real["logit"][real["ok"]]
    result["known_lenses"] = known_lens_recovery(known, scored_lenses, reference, thresholds)
    parts.append(
        _rows("known lens" for _ in scored_lenses)
        | {
            "name": [str(known["name"][i]) for i, _, _ in scored_lenses],
            "logit": np.array([lg for _, lg, _ in scored_lenses], dtype=np.float64),
            "ok": np.isfinite([lg for _, lg, _ in scored_lenses]),
        }
    )

    tpr_by = {t["name"]: rate(logit[label] > t["threshold"])["value"] for t in thresholds}
    result["purity"] = {
        "prevalence": prevalence,
        "fpr_from": "real galaxies" if result["real_galaxies"]["n"] else f"{split} controls",
        "rows": [
            purity_row(t, tpr_by[t["name"]], result, logit, label, galaxy, prevalence) for t in thresholds
        ],
    }

    text = markdown(result)
    scores_name = f"scores-{split}.parquet"
    written = (name, eval_report(split, ".md"), scores_name)
    with stage_runtime.atomic_dir(out, digest, replaces=written, key=name) as tmp:
        (tmp / name).write_text(json.dumps(result, indent=2))
        (tmp / eval_report(split, ".md")).write_text(text)
        pq.write_table(per_stamp_scores(parts), tmp / scores_name)
    print(text, flush=True)
    return _summary(result, out)


def _lookalike_fprs(
    model: Any,
    meta_cols: list[str],
    reader: Any,
    path: str,
    known: dict[str, np.ndarray],
    trained_on: dict[str, np.ndarray],
    size: int,
    thresholds: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each lookalike population's FPR at each threshold (those with a known lens in their
    stamp, and galaxies of the train split, left out and said), and their per-stamp rows."""
    from jobs.learn.scoring import score_positions
    from jobs.survey import known_lenses
    from jobs.survey.catalogs import SAME_OBJECT_ARCSEC, read_positions

    looks = read_positions(path, default_population="lookalike")
    clear = ~known_lenses.in_stamp(looks["ra"], looks["dec"], known, size)
    if not clear.all():
        print(f"eval: {int((~clear).sum())} lookalike(s) left out: a known lens in their stamp", flush=True)
    seen = known_lenses.match(looks["ra"], looks["dec"], trained_on, SAME_OBJECT_ARCSEC) >= 0
    if seen.any():
        print(f"eval: {int(seen.sum())} lookalike(s) left out: galaxies of the train split", flush=True)
    clear &= ~seen
    looks = {k: v[clear] for k, v in looks.items()}
    scored = score_positions(model, meta_cols, reader, looks)
    fprs = {}
    for population in sorted(set(looks["population"])):
        mask = looks["population"] == population
        fprs[population] = fpr_table(scored["logit"][mask], scored["ok"][mask], thresholds)
    return fprs, _rows(f"lookalike: {p}" for p in looks["population"]) | _positions(looks, scored)


def _known_lens_scores(
    model: Any,
    meta_cols: list[str],
    reader: Any,
    known: dict[str, np.ndarray],
    in_parent: tuple[np.ndarray, dict[str, np.ndarray]],
    footprint: set[str],
) -> list[tuple[int, float, str]]:
    """Every known lens scored where the coadds cover it, as (its index, logit, where from):
    at its parent-sample galaxy (`in_parent`: their indexes and rows), else at its position."""
    from jobs.learn.scoring import score_positions
    from jobs.survey.coadd_reader import OUTSIDE
    from jobs.survey.layout import brick_at

    lens_index, parent_lenses = in_parent
    scored: list[tuple[int, float, str]] = []
    if lens_index.size:
        got = score_positions(model, meta_cols, reader, parent_lenses)
        scored += [
            (int(i), float(lg), f"parent sample, {split_name} split")
            for i, lg, split_name in zip(lens_index, got["logit"], parent_lenses["split"], strict=True)
        ]
    matched = {i for i, _, _ in scored}
    outside = [
        i
        for i in range(known["ra"].size)
        if i not in matched and brick_at(float(known["ra"][i]), float(known["dec"][i])).name in footprint
    ]
    if outside:
        positions = {"ra": known["ra"][outside], "dec": known["dec"][outside]}
        got = score_positions(model, meta_cols, reader, positions)
        scored += [
            (i, float(lg), "position")
            for i, lg, why in zip(outside, got["logit"], got["fail_reason"], strict=True)
            if not (why or "").startswith(OUTSIDE)  # in the brick's name, not on its image
        ]
    return scored


# -- FITS cutout files with labels ------------------------------------------------------------


def cutout_evaluation(
    workspace: Path, variant: str, summary: dict[str, Any], folder: Path, labels: Path, force: bool
) -> list[str]:
    """A folder of FITS cutouts judged against its labels (jobs/survey/cutout_labels.py): the
    labelled lenses' recall (per tier where graded) and the non-lenses' FPR at the split's
    real-galaxy thresholds, AUROC where both kinds are there; `eval-<split>-cutouts-<folder>
    .{json,md}` beside the evaluation. Files that are not cutouts, unlabelled files and labels
    naming no file are counted and said."""
    import pyarrow.parquet as pq

    from core.layout import eval_dir, runs_dir
    from core.safe_io import atomic_write
    from jobs.learn.models import load_run
    from jobs.learn.scoring import stream_logits
    from jobs.stats.operating_points import operating_points
    from jobs.survey import cutout_labels, fits_cutouts
    from jobs.survey.catalogs import catalog_stem

    config, _ = stage_runtime.resolve(workspace, variant, None)
    training = config.variants[variant].training
    result = json.loads(Path(summary["outputs"][0]).read_text())
    model, meta_cols = load_run(runs_dir(workspace) / summary["run"])
    made = fits_cutouts.cached(
        workspace, folder, config.variants[variant].injection.stamp_size, force, "eval"
    )
    files = [str(p) for p in sorted(Path(made["outputs"][0]).glob("part-*.parquet"))]
    rows, logits = stream_logits(model, meta_cols, files, "cpu")
    info = pq.read_table(files, columns=["row", "name", "ok"]).sort_by("row")
    logit = np.full(info.num_rows, np.nan)
    logit[rows] = logits
    names = np.array(info.column("name").to_pylist(), dtype=object)
    usable = info.column("ok").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(logit)
    marks, said = cutout_labels.read(labels)
    for line in said:
        print(f"eval: {line}", flush=True)
    missing = sorted(set(marks) - set(names.tolist()))
    for name in missing:
        print(f"eval: {labels}: {name} is not a file of {folder}; left out", flush=True)
    labelled = usable & np.array([n in marks for n in names], dtype=bool)
    lens = np.array([marks[n].lens if n in marks else False for n in names], dtype=bool)
    tier = np.array([training.tier_of(marks[n].grade) if n in marks else "" for n in names], dtype=object)
    thresholds = (result.get("real_lenses") or {}).get("thresholds", [])
    out: dict[str, Any] = {
        "run": summary["run"],
        "split": result["split"],
        "folder": str(folder),
        "labels": str(labels),
        "files": int(names.size),
        "not_cutouts": int((~info.column("ok").to_numpy(zero_copy_only=False).astype(bool)).sum()),
        "unlabelled": int((usable & ~labelled).sum()),
        "labels_without_file": len(missing),
        "lenses": int((labelled & lens).sum()),
        "non_lenses": int((labelled & ~lens).sum()),
        "thresholds": thresholds,
        "recall": {},
        "fpr": {t["name"]: rate(logit[labelled & ~lens] > t["threshold"]) for t in thresholds},
    }
    for name in [*sorted({t for t in tier[labelled & lens] if t}), "all"]:
        mask = labelled & lens & ((tier == name) if name != "all" else True)
        out["recall"][name] = {t["name"]: rate(logit[mask] > t["threshold"]) for t in thresholds}
        out["recall"][name]["n"] = int(mask.sum())
    if out["lenses"] and out["non_lenses"]:
        out["operating_points"] = operating_points(lens[labelled], logit[labelled], names[labelled])
    stem = eval_report(f"{result['split']}-cutouts-{catalog_stem(str(folder))}", "")
    target = eval_dir(workspace, summary["run"])
    text = cutouts_markdown(out)
    for suffix, body in ((".json", json.dumps(out, indent=2)), (".md", text)):
        atomic_write(target / f"{stem}{suffix}", body)  # a fresh name renamed: never through a link
    print(text, flush=True)
    return [str(target / f"{stem}.json"), str(target / f"{stem}.md")]


# -- the per-stamp scores behind every figure ------------------------------------------------

SCORE_COLUMNS = {
    # injection / control (the split's stamps), real galaxy, lookalike: <kind>, known lens
    "population": "string",
    "galaxy": "string",  # the independent unit (brickname:objid, or the stamps' unit), else a name
    "task_id": "int64",
    "label": "bool",  # a lens (injection or known lens)
    "logit": "float64",
    "ok": "bool",
    "theta_e": "float64",
    "src_dmag": "float64",
    "arc_snr": "float64",
    "theta_over_psf": "float64",
    "name": "string",
}


def _rows(populations: Any) -> dict[str, Any]:
    return {"population": list(populations)}


def _split_rows(scored: dict[str, Any]) -> dict[str, Any]:
    """The split's stamps, as scored by `score_split`."""
    label = np.asarray(scored["label"], bool)
    return {
        "population": np.where(label, "injection", "control").tolist(),
        "galaxy": [str(g) for g in scored["galaxy"]],
        "label": label,
        "ok": np.ones(label.size, bool),
        **{c: scored[c] for c in ("task_id", "logit", "theta_e", "src_dmag", "arc_snr", "theta_over_psf")},
    }


def _positions(positions: dict[str, Any], scored: dict[str, Any]) -> dict[str, Any]:
    """Sky positions scored by `score_positions` (real galaxies, lookalikes)."""
    from core.schemas import galaxy_keys

    n = len(positions["ra"])
    if "brickname" in positions and "objid" in positions:
        galaxy = [str(k) for k in galaxy_keys(positions["brickname"], positions["objid"])]
    else:  # a catalogue's row: its name, else its position
        where = zip(positions["ra"], positions["dec"], strict=True)
        galaxy = [str(x) for x in positions.get("name", [f"{r:.6f},{d:.6f}" for r, d in where])]
    return {"galaxy": galaxy, "label": np.zeros(n, bool), "logit": scored["logit"], "ok": scored["ok"]}


def per_stamp_scores(parts: list[dict[str, Any]]) -> Any:
    """Every stamp and position eval scored, one row each, as a table (`scores-<split>.parquet`):
    enough to recompute every figure of the report."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {c: [] for c in SCORE_COLUMNS}
    for part in parts:
        n = len(part["population"])
        for c in SCORE_COLUMNS:
            values = part.get(c)
            columns[c].extend([None] * n if values is None else np.asarray(values).tolist())
    return pa.table({c: pa.array(columns[c], type=pa.type_for_alias(t)) for c, t in SCORE_COLUMNS.items()})


def _summary(result: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job's result: the outputs and the headline figures of an evaluation."""
    from core.runs import real_recall

    ops, split = result["operating_points"], result["split"]
    return {
        "outputs": [
            str(out / eval_report(split)),
            str(out / eval_report(split, ".md")),
            str(out / f"scores-{split}.parquet"),
        ],
        "run": result["run"],
        "split": split,
        **{
            k: ops.get(k)
            for k in ("n_pos", "n_neg", "n_pos_independent", "n_neg_independent", "auroc", "pauc")
        },
        **{k: ops[k] for k in ops if k.startswith(("tpr@", "fpr@"))},
        "real_galaxies": result["real_galaxies"]["n"],
        **real_recall(result),
        "lookalikes": {p: v["n"] for p, v in result["lookalikes"].items()},
        "known_lenses_scored": len(result["known_lenses"]),
    }


# -- markdown ----------------------------------------------------------------------------


main = stage_runtime.entry("eval", run)


if __name__ == "__main__":
    raise SystemExit(main())
