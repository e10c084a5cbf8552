"""eval's report for people: the headline figures and the markdown beside eval's JSON
(jobs/stages/eval.py), every figure with its count and interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.stats.rates import purity, rate


def _threshold_head(names: list[str]) -> list[str]:
    """A markdown table's head: a figure, its count, and one column per threshold."""
    return ["| figure | n | " + " | ".join(f"at {n}" for n in names) + " |", "|---" * (2 + len(names)) + "|"]


def cutouts_markdown(out: dict[str, Any]) -> str:
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


def purity_row(
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
