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
from jobs.runtime import stage as stage_runtime
from jobs.stats.rates import bins_of, levels_of, purity, rate, reliability

COMPLETENESS = (0.99, 0.95, 0.90, 0.85, 0.80, 0.70)
FPRS = (1e-2, 1e-3, 1e-4, 1e-5)
THETA_PSF_BINS = (0.0, 0.5, 0.75, 1.0, 1.5, np.inf)
ARC_SNR_BINS = (0.0, 3.0, 5.0, 10.0, 20.0, 50.0, np.inf)
DEFAULT_PREVALENCE = stage_runtime.declared_default("eval", "prevalence")
DEFAULT_REAL_GALAXIES = stage_runtime.declared_default("eval", "real_galaxies")
EVAL_BRICKS = 48  # bricks the coadd reader keeps open


# -- thresholds and tables ---------------------------------------------------------------


def operating_thresholds(neg: np.ndarray, neg_groups: np.ndarray) -> list[dict[str, Any]]:
    """A threshold (pass: score > threshold) for each FPR level the independent negatives
    can measure, and the highest negative's score (FPR 0, the HOLISMOKES convention)."""
    from jobs.stats.operating_points import measurable_fpr

    if neg.size == 0:
        return []
    n_ind = int(np.unique(neg_groups).size)
    ordered = np.sort(neg)[::-1]
    out = []
    for f in FPRS:
        if measurable_fpr(f, n_ind):
            allowed = int(np.floor(f * neg.size))
            out.append(
                {"name": f"FPR {f:.0e}", "fpr": f, "threshold": float(ordered[min(allowed, neg.size - 1)])}
            )
    out.append({"name": "FPR 0", "fpr": 0.0, "threshold": float(ordered[0])})
    return out


def fpr_at_completeness(
    neg: np.ndarray, neg_groups: np.ndarray, pos: np.ndarray, target: float
) -> dict[str, Any]:
    """The FPR (over the negatives, counted by galaxy) at the score where `target` of `pos`
    is recovered; where no negative passes, the upper bound instead of a value."""
    if pos.size == 0:
        return {"value": None, "reason": "no positives", "n_pos": 0}
    threshold = np.sort(pos)[::-1][int(np.ceil(target * pos.size)) - 1]
    out = {**rate(neg >= threshold, neg_groups), "threshold": float(threshold), "n_pos": int(pos.size)}
    if out["k"] == 0:
        out["value"] = None
        out["reason"] = f"no negative passes: FPR < {out['upper']:.1e} (95 % upper bound)"
    return out


def completeness(pos: np.ndarray, pos_groups: np.ndarray, threshold: float) -> dict[str, Any]:
    """The fraction of positives scoring above `threshold`, counted by host galaxy."""
    return rate(pos > threshold, pos_groups)


def tables(scored: dict[str, Any], thresholds: list[dict[str, Any]], ops: dict[str, Any]) -> dict[str, Any]:
    """The seed's two tables, overall. Where the operating points hold the same figure, its
    interval is theirs (the bootstrap re-derives the threshold from each resample's
    negatives), not the narrower one of a fixed threshold."""
    label, logit, galaxy = scored["label"], scored["logit"], scored["galaxy"]
    neg, neg_g, pos, pos_g = logit[~label], galaxy[~label], logit[label], galaxy[label]
    by_fpr = {t["fpr"]: t for t in thresholds}
    n_ind = int(np.unique(neg_g).size)
    at_fpr = {}
    for f in FPRS:
        if f in by_fpr:
            cell = {**completeness(pos, pos_g, by_fpr[f]["threshold"]), "threshold": by_fpr[f]["threshold"]}
            interval = ops.get("intervals", {}).get(f"tpr@fpr{f:.0e}".replace("e-0", "e-"))
            if interval:
                cell["lo"], cell["hi"] = interval
            at_fpr[f"{f:.0e}"] = cell
        else:
            at_fpr[f"{f:.0e}"] = {
                "value": None,
                "reason": f"FPR {f:g} needs {int(np.ceil(1 / f)):,} independent negatives; "
                f"there are {n_ind:,}",
            }
    at_completeness = {}
    for t in COMPLETENESS:
        cell = fpr_at_completeness(neg, neg_g, pos, t)
        interval = ops.get("intervals", {}).get(f"fpr@tpr{t:.2f}")
        if interval and cell.get("value") is not None:
            cell["lo"], cell["hi"] = interval
        at_completeness[f"{t:.2f}"] = cell
    return {"fpr_at_completeness": at_completeness, "completeness_at_fpr": at_fpr}


def completeness_maps(scored: dict[str, Any], thresholds: list[dict[str, Any]]) -> dict[str, Any]:
    """At each threshold: completeness by θE × src_dmag, by arc_snr, θE and θE/PSF."""
    label = scored["label"]
    pos = {
        k: np.asarray(scored[k])[label]
        for k in ("logit", "galaxy", "theta_e", "src_dmag", "arc_snr", "theta_over_psf")
    }
    theta_levels, dmag_levels = levels_of(pos["theta_e"]), levels_of(pos["src_dmag"])
    out: dict[str, Any] = {}
    for t in thresholds:
        passed = pos["logit"] > t["threshold"]

        def cell(mask: np.ndarray, passed: np.ndarray = passed) -> dict[str, Any]:
            return rate(passed[mask], pos["galaxy"][mask])

        out[t["name"]] = {
            "threshold": t["threshold"],
            "theta_e_x_src_dmag": {
                "theta_e": [label_ for label_, _ in theta_levels],
                "src_dmag": [label_ for label_, _ in dmag_levels],
                "cells": [[cell(tm & dm) for _, dm in dmag_levels] for _, tm in theta_levels],
            },
            "theta_e": {label_: cell(mask) for label_, mask in theta_levels},
            "arc_snr": {label_: cell(mask) for label_, mask in bins_of(pos["arc_snr"], ARC_SNR_BINS)},
            "theta_over_psf": {
                label_: cell(mask) for label_, mask in bins_of(pos["theta_over_psf"], THETA_PSF_BINS)
            },
        }
    return out


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


def fpr_table(logits: np.ndarray, ok: np.ndarray, thresholds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each threshold's FPR over the usable positions (each its own galaxy)."""
    usable = logits[ok]
    return {"n": int(usable.size), **{t["name"]: rate(usable > t["threshold"]) for t in thresholds}}


def _passes(logit: float, thresholds: list[dict[str, Any]]) -> list[str]:
    return [t["name"] for t in thresholds if np.isfinite(logit) and logit > t["threshold"]]


def known_lens_recovery(
    known: dict[str, np.ndarray],
    scored_lenses: list[tuple[int, float, str]],
    reference: np.ndarray,
    thresholds: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each scored known lens: its score, rank among the real galaxies scored (1 = top) and
    the thresholds it passes; `scored_lenses` holds (table index, logit, how it was found)."""
    from jobs.learn.scoring import sigmoid

    everyone = np.concatenate([reference, [lg for _, lg, _ in scored_lenses if np.isfinite(lg)]])
    out = []
    for index, logit, found in scored_lenses:
        finite = bool(np.isfinite(logit))
        out.append(
            {
                "name": str(known["name"][index]),
                "ra": float(known["ra"][index]),
                "dec": float(known["dec"][index]),
                "grade": str(known["grade"][index]),
                "reference": str(known["reference"][index]),
                "found_as": found,
                "score": float(sigmoid(logit)) if finite else None,
                "logit": float(logit) if finite else None,
                "rank": int(np.sum(everyone > logit)) + 1 if finite else None,
                "of": int(everyone.size),
                "passes": _passes(logit, thresholds),
            }
        )
    return sorted(out, key=lambda r: (r["rank"] is None, r["rank"] or 0))


def real_lens_recall(
    lenses: dict[str, np.ndarray], neg: np.ndarray, neg_units: np.ndarray, prevalence: float
) -> dict[str, Any]:
    """Recall of the split's known lenses (real pixels, never trained on), per tier and over
    all, at thresholds set on real parent galaxies never trained on (FPR 1e-2, 1e-3 … where
    their independent count can measure it), counted by unit with intervals; and the purity
    each threshold reaches at `prevalence` lenses per galaxy."""
    from core.config import TIERS

    thresholds = [t for t in operating_thresholds(neg, neg_units) if t["fpr"] > 0]
    logit, units, tier = lenses["logit"], lenses["galaxy"], lenses["tier"]
    out: dict[str, Any] = {
        "negatives": "parent sample, never in training, no known lens in the stamp",
        "n_negatives": int(np.unique(neg_units).size),
        "thresholds": thresholds,
        "n": int(np.unique(units).size),
        "tiers": {},
    }
    for name in [*(t for t in TIERS if (tier == t).any()), "all"]:
        mask = np.ones(tier.size, bool) if name == "all" else tier == name
        out["tiers"][name] = {
            t["name"]: rate(logit[mask] > t["threshold"], units[mask]) for t in thresholds
        } | {"n": int(np.unique(units[mask]).size)}
    out["purity"] = {}
    for t in thresholds:
        recall = out["tiers"]["all"][t["name"]]
        fpr = rate(neg > t["threshold"], neg_units)
        bound = fpr["k"] == 0
        out["purity"][t["name"]] = {
            "purity": purity(recall["value"] or 0.0, fpr["upper"] if bound else fpr["value"], prevalence),
            "is_lower_bound": bound,
            "prevalence": prevalence,
        }
    return out


def realism_gate(scored: dict[str, Any], probe: dict[str, np.ndarray]) -> dict[str, Any]:
    """The realism probe (jobs/learn/realism.py) on the split: its known lenses against
    brightness-matched injections of the same split."""
    from jobs.learn import realism

    index = {int(t): i for i, t in enumerate(scored["task_id"])}
    rows = np.array([index.get(int(t), -1) for t in probe["task_id"]], dtype=np.int64)
    ok = rows >= 0
    rows = rows[ok]
    tier, label, galaxy = scored["tier"][rows], scored["label"][rows], scored["galaxy"][rows]

    def part(mask: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "features": probe["features"][ok][mask],
            "pixels": probe["pixels"][ok][mask],
            "flux": probe["flux"][ok][mask],
            "galaxy": galaxy[mask],
        }

    return realism.gate(part(tier != ""), part((tier == "") & label))


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
    from jobs.learn.scoring import OUTSIDE, footprint_bricks, score_positions, score_split, sigmoid
    from jobs.stats.operating_points import operating_points, pauc_max_fpr, roc_points
    from jobs.survey import known_lenses
    from jobs.survey.catalogs import SAME_OBJECT_ARCSEC, read_positions
    from jobs.survey.coadd_reader import CoaddReader
    from jobs.survey.layout import brick_at

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
        looks = read_positions(looks_path, default_population="lookalike")
        clear = ~known_lenses.in_stamp(
            looks["ra"], looks["dec"], known, config.variants[variant].injection.stamp_size
        )
        if not clear.all():
            print(
                f"eval: {int((~clear).sum())} lookalike(s) left out: a known lens in their stamp", flush=True
            )
        seen = known_lenses.match(looks["ra"], looks["dec"], trained_on, SAME_OBJECT_ARCSEC) >= 0
        if seen.any():
            print(f"eval: {int(seen.sum())} lookalike(s) left out: galaxies of the train split", flush=True)
        clear &= ~seen
        looks = {k: v[clear] for k, v in looks.items()}
        scored_looks = score_positions(model, meta_cols, reader, looks)
        for population in sorted(set(looks["population"])):
            mask = looks["population"] == population
            result["lookalikes"][population] = fpr_table(
                scored_looks["logit"][mask], scored_looks["ok"][mask], thresholds
            )
        result["lookalikes_file"] = str(looks_path)
        parts.append(_rows(f"lookalike: {p}" for p in looks["population"]) | _positions(looks, scored_looks))

    scored_lenses: list[tuple[int, float, str]] = []
    if lens_index.size:
        got = score_positions(model, meta_cols, reader, parent_lenses)
        scored_lenses += [
            (int(i), float(lg), f"parent sample, {split_name} split")
            for i, lg, split_name in zip(lens_index, got["logit"], parent_lenses["split"], strict=True)
        ]
    footprint = footprint_bricks(cache)
    matched = {i for i, _, _ in scored_lenses}
    outside = [
        i
        for i in range(known["ra"].size)
        if i not in matched and brick_at(float(known["ra"][i]), float(known["dec"][i])).name in footprint
    ]
    if outside:
        positions = {"ra": known["ra"][outside], "dec": known["dec"][outside]}
        got = score_positions(model, meta_cols, reader, positions)
        scored_lenses += [
            (i, float(lg), "position")
            for i, lg, why in zip(outside, got["logit"], got["fail_reason"], strict=True)
            if not (why or "").startswith(OUTSIDE)  # in the brick's name, not on its image
        ]
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
            _purity_row(t, tpr_by[t["name"]], result, logit, label, galaxy, prevalence) for t in thresholds
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
    text = _cutouts_markdown(out)
    for suffix, body in ((".json", json.dumps(out, indent=2)), (".md", text)):
        atomic_write(target / f"{stem}{suffix}", body)  # a fresh name renamed: never through a link
    print(text, flush=True)
    return [str(target / f"{stem}.json"), str(target / f"{stem}.md")]


def _threshold_head(names: list[str]) -> list[str]:
    """A markdown table's head: a figure, its count, and one column per threshold."""
    return ["| figure | n | " + " | ".join(f"at {n}" for n in names) + " |", "|---" * (2 + len(names)) + "|"]


def _cutouts_markdown(out: dict[str, Any]) -> str:
    names = [t["name"] for t in out["thresholds"]]
    lines = [
        f"# Cutout files of {out['folder']}, judged by {out['run']}",
        "",
        f"{out['files']} files: {out['lenses']} labelled lenses, {out['non_lenses']} labelled non-lenses, "
        f"{out['unlabelled']} unlabelled, {out['not_cutouts']} not grz cutouts; {out['labels_without_file']} "
        f"label(s) naming no file. Thresholds: the {out['split']} split's, set on real parent galaxies "
        "never trained on.",
        "",
        *_threshold_head(names),
    ]
    for tier, cells in out["recall"].items():
        label = "recall, all labelled lenses" if tier == "all" else f"recall, {tier}"
        lines.append(f"| {label} | {cells['n']} | " + " | ".join(_pct(cells[n]) for n in names) + " |")
    lines.append(
        f"| FPR, labelled non-lenses | {out['non_lenses']} | "
        + " | ".join(_pct(out["fpr"][n]) for n in names)
        + " |"
    )
    ops = out.get("operating_points")
    if ops:
        lines += [
            "",
            f"AUROC {_figure(ops, 'auroc')} on {ops['n_pos']} lenses and {ops['n_neg']} non-lenses.",
        ]
    return "\n".join(lines) + "\n"


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


def _purity_row(
    t: dict[str, Any],
    tpr: float | None,
    result: dict[str, Any],
    logit: np.ndarray,
    label: np.ndarray,
    galaxy: np.ndarray,
    prevalence: float,
) -> dict[str, Any]:
    """The purity at one threshold: from the real galaxies' FPR (the test controls' if none);
    where no galaxy passed, a lower bound from the FPR's upper bound."""
    cell = result["real_galaxies"].get(t["name"]) if result["real_galaxies"]["n"] else None
    if cell is None:
        cell = rate(logit[~label] > t["threshold"], galaxy[~label])
    bound = cell["k"] == 0
    fpr = cell["upper"] if bound else cell["value"]
    return {
        "threshold": t["name"],
        "completeness": tpr,
        "fpr": cell["value"],
        "fpr_upper": cell.get("upper"),
        "purity": purity(tpr or 0.0, fpr, prevalence),
        "purity_is_lower_bound": bound,
    }


# -- markdown ----------------------------------------------------------------------------


def _pct(cell: dict[str, Any]) -> str:
    """A rate as "45.0% [30.1, 60.2] (9/20)", "< 3.1%" where nothing passed, "n/m" if unmeasured."""
    if cell.get("value") is None and "upper" in cell:
        return f"< {cell['upper'] * 100:.2g}% (0/{cell['n']})"
    if cell.get("value") is None:
        return "n/m"
    counts = f"{cell['k']}/{cell['n']}"
    if cell.get("n_independent") not in (None, cell["n"]):
        counts += f", {cell['n_independent']} gal."
    if cell["k"] == 0:
        return f"0% [0, {cell['hi'] * 100:.2g}] ({counts})"
    return f"{cell['value'] * 100:.1f}% [{cell['lo'] * 100:.1f}, {cell['hi'] * 100:.1f}] ({counts})"


def _fpr(cell: dict[str, Any]) -> str:
    if cell.get("value") is None and "upper" in cell:
        return f"< {cell['upper']:.1e} (0/{cell['n_independent']})"
    if cell.get("value") is None:
        return "n/m"
    if cell["k"] == 0:
        return f"< {cell['upper']:.1e} (0/{cell['n_independent']})"
    return f"{cell['value']:.2e} [{cell['lo']:.1e}, {cell['hi']:.1e}] ({cell['k']}/{cell['n']})"


def _figure(ops: dict[str, Any], name: str) -> str:
    from core.figures import figure

    value = ops.get(name)
    bound = ops.get("fpr_upper_bounds", {}).get(name)
    interval = ops.get("intervals", {}).get(name) if value is not None else None
    text = figure(name, value, bound, ops.get("n_neg_independent"))
    return text + (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "")


def headline(result: dict[str, Any]) -> list[str]:
    """The report's first table: recall on the split's real (known) lenses by tier, at
    thresholds set on real galaxies never trained on, beside injection completeness, at
    thresholds set on the split's controls; then the realism probe where there is one."""
    from core.runs import REAL_FPRS

    real = result.get("real_lenses") or {"tiers": {}, "thresholds": [], "n": 0}
    names = [f"FPR {f:.0e}" for f in REAL_FPRS]
    lines = [
        "## Real lenses and injections, side by side",
        "",
        f"Real-lens recall: the {result['split']} split's known lenses (real pixels, never trained on), "
        f"thresholds set on {real.get('n_negatives', 0)} real parent galaxies never trained on. "
        "Injection completeness: the selection function under the injection model (a lower bound "
        f"on real lenses' recall only if the injections are realistic), thresholds on the {result['split']} "
        "split's controls.",
        "",
        *_threshold_head(names),
    ]
    for tier, cells in real["tiers"].items():
        label = f"real-lens recall, {'all tiers' if tier == 'all' else tier} (real-galaxy thresholds)"
        row = [_pct(cells[n]) if n in cells else "n/m" for n in names]
        lines.append(f"| {label} | {cells['n']} | " + " | ".join(row) + " |")
    if not real["tiers"]:
        lines.append(f"| real-lens recall | 0 | {' | '.join('n/m' for _ in names)} |")
    ops = result["operating_points"]
    at_fpr = result["tables"]["overall"]["completeness_at_fpr"]
    row = [_pct(at_fpr[f"{f:.0e}"]) for f in REAL_FPRS]
    lines.append(
        f"| injection completeness (controls' thresholds) | {ops['n_pos_independent']} | "
        + " | ".join(row)
        + " |"
    )
    if real.get("purity"):
        row = []
        for n in names:
            cell = real["purity"].get(n)
            row.append(
                "n/m"
                if cell is None
                else f"{'≥ ' if cell['is_lower_bound'] else ''}{cell['purity'] * 100:.2g}%"
            )
        prevalence = next(iter(real["purity"].values()))["prevalence"]
        lines.append(
            f"| real-lens purity at {prevalence:g} lenses per galaxy (real-galaxy thresholds) | | "
            + " | ".join(row)
            + " |"
        )
    return [*lines, "", *realism_lines(result.get("realism") or {})]


def realism_lines(gate: dict[str, Any]) -> list[str]:
    """The realism gate's section: both probes' AUCs with interval and p-value, and how the
    injections were matched."""
    lines = ["## The realism gate", ""]
    if not gate.get("finder"):
        return [*lines, f"n/m: {gate.get('reason', 'not run')}"]
    lines += [
        f"A logistic probe, {gate['finder']['folds']}-fold cross-validated by galaxy, tries to tell the "
        f"split's {gate['n_real']} known lenses from {gate['n_injections']} injections matched on "
        f"{gate['matched_on']} (median |Δmag| {gate['median_dmag']:.3f}). 0.5: alike; 1: told apart. "
        "Intervals: bootstrap over galaxies; p: label permutations over galaxies.",
        "",
        "| probe on | AUC | 95 % interval | p | reads |",
        "|---|---|---|---|---|",
    ]
    for probe, label in (("finder", "the finder's penultimate features"), ("pixels", "pixel statistics")):
        cell = gate[probe]
        apart = cell["p_value"] < 0.05 and cell["lo"] > 0.5
        reads = "told apart" if apart else "not told apart at 95 %"
        lines.append(
            f"| {label} | {cell['auc']:.3f} | [{cell['lo']:.3f}, {cell['hi']:.3f}] | "
            f"{cell['p_value']:.3g} ({cell['permutations']} permutations) | {reads} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The evaluation as a markdown report."""
    from core.metrics import FPR_AT_TPR, TPR_AT_FPR

    ops = result["operating_points"]
    lines = [
        f"# Evaluation of {result['run']} on the {result['split']} split",
        "",
        f"positives: {ops['n_pos']} rows on {ops['n_pos_independent']} host galaxies; "
        f"negatives: {ops['n_neg']} rows, {ops['n_neg_independent']} independent galaxies. "
        "Intervals: 95 %, bootstrap over galaxies; `< x`: one-sided 95 % upper bound where nothing "
        "passed; n/m: not measurable (an FPR below 1/n independent negatives).",
        "",
        *headline(result),
        "",
        "## Operating points",
        "",
        "| figure | value | note |",
        "|---|---|---|",
    ]
    names = [
        "auroc",
        "pauc",
        *(f"tpr@fpr{f}" for f in TPR_AT_FPR),
        "tpr@fpr0",
        *(f"fpr@tpr{t}" for t in FPR_AT_TPR),
    ]
    for name in names:
        if name not in ops:
            continue
        note = ops.get("unmeasured", {}).get(name, "")
        if name == "tpr@fpr0":
            note = f"HOLISMOKES: above every negative (FPR < {ops['fpr_upper_bounds']['tpr@fpr0']:.1e})"
        if name == "pauc":
            note = f"partial AUROC up to FPR {ops.get('pauc_max_fpr', 0):.1e} (standardised)"
        lines.append(f"| {name} | {_figure(ops, name)} | {note} |")
    overall = result["tables"]["overall"]
    lines += ["", "## The seed's tables", "", "| Completeness (TPR) | FPR |", "|---|---|"]
    lines += [f"| {float(t) * 100:.0f}% | {_fpr(c)} |" for t, c in overall["fpr_at_completeness"].items()]
    lines += ["", "| Target FPR | Completeness (TPR) |", "|---|---|"]
    lines += [f"| {f} | {_pct(c)} |" for f, c in overall["completeness_at_fpr"].items()]
    for t in result["thresholds"]:
        maps = result["completeness"][t["name"]]
        grid = maps["theta_e_x_src_dmag"]
        lines += [
            "",
            f"## Completeness at {t['name']} (score > {t['threshold']:.3g})",
            "",
            "Intervals at this fixed threshold, bootstrap over host galaxies.",
            "",
            "| θE (″) \\ src_dmag | " + " | ".join(grid["src_dmag"]) + " |",
            "|---" * (1 + len(grid["src_dmag"])) + "|",
        ]
        for theta, row in zip(grid["theta_e"], grid["cells"], strict=True):
            lines.append(f"| {theta} | " + " | ".join(_pct(c) for c in row) + " |")
        for key, title in (("arc_snr", "arc S/N"), ("theta_over_psf", "θE / PSF FWHM")):
            lines += ["", f"| {title} | completeness |", "|---|---|"]
            lines += [f"| {b} | {_pct(c)} |" for b, c in maps[key].items() if c["n"]]
    lines += ["", "## False positives on real galaxies", ""]
    names = [t["name"] for t in result["thresholds"]]
    lines += [
        "| population | n | " + " | ".join(f"FPR at {n}" for n in names) + " |",
        "|---" * (2 + len(names)) + "|",
    ]
    populations = [("parent sample, never trained on", result["real_galaxies"])]
    populations += sorted(result["lookalikes"].items())
    for population, table in populations:
        lines.append(f"| {population} | {table['n']} | " + " | ".join(_fpr(table[n]) for n in names) + " |")
    lines += [
        "",
        "## Known lenses in the scored footprint",
        "",
        "Every split's (the train split's were trained on when the run learned from known lenses); "
        "`passes`: the controls' thresholds (real-lens recall above uses the real galaxies').",
        "",
    ]
    if result["known_lenses"]:
        lines += [
            "| name | found as | score | rank | passes | grade | reference |",
            "|---|---|---|---|---|---|---|",
        ]
        for lens in result["known_lenses"]:
            score = "flagged" if lens["score"] is None else f"{lens['score']:.3f}"
            rank = "-" if lens["rank"] is None else f"#{lens['rank']} of {lens['of']}"
            passes = ", ".join(lens["passes"]) or "none"
            lines.append(
                f"| {lens['name']} | {lens['found_as']} | {score} | {rank} | {passes} | "
                f"{lens['grade']} | {lens['reference']} |"
            )
    else:
        lines.append("none: no known lens lies in the cached coadds' footprint")
    calibration = result["calibration"]
    lines += [
        "",
        "## Calibration",
        "",
        f"ECE {calibration['ece']:.4f}, Brier {calibration['brier']:.4f} on {calibration['n']} stamps "
        f"(the {result['split']} split's own mix of lenses and controls, not the sky's).",
        "",
        "| predicted | n | mean predicted | observed |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['bin']} | {b['n']} | {b['predicted']:.3f} | {b['observed']:.3f} |" for b in calibration["bins"]
    ]
    purity_ = result["purity"]
    lines += [
        "",
        f"## Purity at a prevalence of {purity_['prevalence']:g} lenses per galaxy "
        f"(FPR from {purity_['fpr_from']})",
        "",
        "| threshold | completeness | FPR | purity |",
        "|---|---|---|---|",
    ]
    for row in purity_["rows"]:
        fpr = f"< {row['fpr_upper']:.1e}" if row["purity_is_lower_bound"] else f"{row['fpr']:.2e}"
        value = f"{'≥ ' if row['purity_is_lower_bound'] else ''}{row['purity'] * 100:.2g}%"
        lines.append(f"| {row['threshold']} | {(row['completeness'] or 0) * 100:.1f}% | {fpr} | {value} |")
    return "\n".join(lines) + "\n"


main = stage_runtime.entry("eval", run)


if __name__ == "__main__":
    raise SystemExit(main())
