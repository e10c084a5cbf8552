"""The demo's closing report, as plain lines: where the results are, the shortcut audit, the
test figures with their independent counts and intervals (and why the unmeasurable ones are
not printed), the false-positive rates on real galaxies and lookalikes, and where the known
lenses landed. Read from the stages' JSON outputs; shown as plain text, never markup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import layout
from core.figures import figure

FIGURES = ("auroc", "tpr@fpr1e-2", "tpr@fpr1e-3", "tpr@fpr1e-4", "tpr@fpr0", "fpr@tpr0.85")


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _figure(ops: dict[str, Any], name: str) -> str:
    value = ops.get(name)
    bound = ops.get("fpr_upper_bounds", {}).get(name)
    text = f"{name} {figure(name, value, bound, ops.get('n_neg_independent'))}"
    if value is None:
        if bound is not None:
            return text + " (no negative above that completeness's threshold)"
        return f"{text}: {ops.get('unmeasured', {}).get(name, 'not measurable')}"
    interval = ops.get("intervals", {}).get(name)
    if interval:
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    if name == "tpr@fpr0":
        text += f" (above every negative: FPR < {ops['fpr_upper_bounds']['tpr@fpr0']:.1e})"
    return text


def _rate(cell: dict[str, Any]) -> str:
    if cell["k"] == 0:
        return f"0/{cell['n']} (< {cell['upper'] * 100:.2g}%)"
    value, lo, hi = (cell[k] * 100 for k in ("value", "lo", "hi"))
    return f"{value:.1f}% [{lo:.1f}, {hi:.1f}] ({cell['k']}/{cell['n']})"


def lines(root: Path, run: str, variant: str, grid: str) -> list[str]:
    """The report's lines for a workspace's demo run."""
    evaluation = layout.eval_dir(root, run) / layout.eval_report("test")
    out = [
        f"stamps:     {layout.stamps_dir(root, variant, grid)}",
        f"run:        {layout.runs_dir(root) / run} (metrics.jsonl, best.pt)",
        f"evaluation: {evaluation.with_suffix('.md')}",
        f"candidates: {layout.candidates_file(root, run)}",
    ]
    audit = _json(layout.stamps_dir(root, variant, grid) / "shortcut_audit.json")
    if audit and audit.get("auroc") is not None:
        scored = audit["scored_on"]
        out.append(
            f"shortcut audit: pixel-statistic AUROC {audit['auroc']:.3f} (limit {audit['max_auroc']:.2f}; "
            f"{scored['n_pos']} positive and {scored['n_neg']} control galaxies of {scored['split']}); "
            f"flux alone {audit['flux_baseline']['auroc']:.3f}"
        )
    result = _json(evaluation)
    if result is None:
        return [*out, f"no evaluation at {evaluation}"]
    ops = result["operating_points"]
    out.append(
        f"test split: {ops['n_pos']} positives on {ops['n_pos_independent']} host galaxies, "
        f"{ops['n_neg']} negatives on {ops['n_neg_independent']} independent galaxies "
        "(95 % intervals: bootstrap over galaxies)"
    )
    out += [f"  {_figure(ops, name)}" for name in FIGURES]
    thresholds = [t["name"] for t in result["thresholds"]]
    if thresholds:
        first = thresholds[0]
        out.append(f"false positives at the {first} threshold:")
        real = result["real_galaxies"]
        out.append(f"  parent galaxies never trained on: {_rate(real[first])}")
        for population, table in sorted(result["lookalikes"].items()):
            out.append(f"  {population}: {_rate(table[first])}")
    out += _real_lenses(result)
    candidates = _json(layout.candidates_dir(root, run) / "summary.json") or {}
    ranks = {k["name"]: k for k in candidates.get("known_lenses", [])}
    known = result.get("known_lenses", [])
    first = thresholds[0] if thresholds else None
    passing = sum(1 for lens in known if first in lens["passes"])
    out.append(
        f"known lenses in the footprint (every split): {len(known)}, {passing} above the {first} threshold"
        + ("; the highest and lowest ranked:" if len(known) > SHOWN else ":")
    )
    shown = known if len(known) <= SHOWN else [*known[: SHOWN // 2], None, *known[-(SHOWN // 2) :]]
    for lens in shown:
        if lens is None:
            out.append(f"  … {len(known) - 2 * (SHOWN // 2)} more (eval-test.md lists them all)")
            continue
        cand = ranks.get(lens["name"])
        where = f"#{cand['rank']} of {cand['of']} candidates" if cand and cand.get("rank") else "not ranked"
        score = "flagged" if lens["score"] is None else f"score {lens['score']:.3f}"
        passes = ", ".join(lens["passes"]) or "no threshold"
        out.append(f"  {lens['name']} ({lens['grade']}): {score}, {where}, passes {passes}")
    return out


SHOWN = 6  # known lenses listed by name (half the top, half the bottom)


def _real_lenses(result: dict[str, Any]) -> list[str]:
    """Recall of the test split's known lenses per tier, and the realism probe."""
    real = result.get("real_lenses")
    if not real or not real.get("tiers"):
        return []
    names = [t["name"] for t in real["thresholds"]]
    out = [
        f"real lenses of the test split ({real['n']}, never trained on; thresholds set on "
        f"{real['n_negatives']} real galaxies never trained on):"
    ]
    for tier, cells in real["tiers"].items():
        rates = ", ".join(f"at {n} {_rate(cells[n])}" for n in names)
        out.append(f"  recall, {'all tiers' if tier == 'all' else tier} ({cells['n']}): {rates}")
    gate = result.get("realism") or {}
    if gate.get("finder"):
        finder, pixels = gate["finder"], gate["pixels"]
        out.append(
            f"realism probe (real lenses vs {gate['n_injections']} brightness-matched injections, "
            "0.5: alike): "
            f"finder's features AUC {finder['auc']:.3f} [{finder['lo']:.3f}, {finder['hi']:.3f}] "
            f"p = {finder['p_value']:.2g}; pixel statistics AUC {pixels['auc']:.3f} "
            f"[{pixels['lo']:.3f}, {pixels['hi']:.3f}] p = {pixels['p_value']:.2g}"
        )
    elif gate:
        out.append(f"realism probe: n/m ({gate.get('reason')})")
    return out


def next_steps(root: Path, run: str) -> list[str]:
    """What to do after the demo, with the workspace spelled as this shell reaches it: the
    console (its screens), the headless commands, and the workspace variable."""
    import os

    try:
        where = os.path.relpath(root)
        where = where if not where.startswith("..") else str(root)
    except ValueError:  # another drive
        where = str(root)
    return [
        f"next steps: the demo's workspace is {where}; give halo -w {where} (here it would use this folder)",
        f"  halo -w {where}                      the console: 1 jobs, 2 runs (enter monitor, c compare,"
        " g candidates), 3 candidates (grade them); ? lists the keys",
        f"  halo jobs list -w {where}            the jobs, headless (jobs show N: one job and why it failed)",
        f"  halo runs list -w {where}            the runs' figures; eval's report: {where}/"
        + str(layout.eval_dir(root, run).relative_to(root) / layout.eval_report("test", ".md")),
        f"  halo stage triage --run {run} -w {where}   after grading: the grades and each inspector's"
        " calibration as CSV",
        f"  export HALO_WORKSPACE={Path(root).resolve()}   to leave -w out",
    ]
