"""What eval measures on scored stamps and galaxies: operating thresholds on the negatives,
the seed's tables, completeness maps, real galaxies' FPR, known-lens recovery, real-lens
recall and the realism gate (jobs/stages/eval.py reads and writes; this computes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.stats.rates import bins_of, levels_of, purity, rate

COMPLETENESS = (0.99, 0.95, 0.90, 0.85, 0.80, 0.70)


FPRS = (1e-2, 1e-3, 1e-4, 1e-5)


THETA_PSF_BINS = (0.0, 0.5, 0.75, 1.0, 1.5, np.inf)


ARC_SNR_BINS = (0.0, 3.0, 5.0, 10.0, 20.0, 50.0, np.inf)


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
