"""`eval` (seed Phase 6): a trained run on a held-out split -> the seed's two tables.

Table 1: the FPR at each completeness (TPR 0.99 … 0.70); table 2: the completeness at each
FPR (1e-2 … 1e-5). Both overall and stratified by θE bins and θE/PSF bins: in a bin, the
completeness counts that bin's positives, the FPR always all negatives (controls have no θE).
Every figure carries its counts and a 95 % Clopper–Pearson interval; an FPR below
1/n_negatives is "not measurable", never a number.

    python -m jobs.eval --workspace DIR --variant V [--grid G] [--run NAME] [--split test]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from jobs import stage_runtime

COMPLETENESS = (0.99, 0.95, 0.90, 0.85, 0.80, 0.70)
FPRS = (1e-2, 1e-3, 1e-4, 1e-5)
THETA_E_BINS = (0.0, 0.75, 1.0, 1.5, 2.0, np.inf)
THETA_PSF_BINS = (0.0, 0.5, 0.75, 1.0, 1.5, np.inf)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    from scipy.stats import beta

    if n == 0:
        return None, None
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = clopper_pearson(k, n)
    return {"value": k / n if n else None, "k": k, "n": n, "lo": lo, "hi": hi}


def fpr_at_completeness(neg: np.ndarray, pos: np.ndarray, target: float) -> dict[str, Any]:
    """The FPR (over all negatives) at the threshold where `target` of `pos` is recovered."""
    if pos.size == 0:
        return {"value": None, "reason": "no positives in this bin", "n_pos": 0}
    threshold = np.sort(pos)[::-1][int(np.ceil(target * pos.size)) - 1]
    k = int(np.sum(neg >= threshold))
    out = {**_rate(k, neg.size), "threshold": float(threshold), "n_pos": int(pos.size)}
    if k == 0:
        out.update(value=None, reason=f"below 1/n_neg = {1 / neg.size:.1e}: not measurable")
    return out


def completeness_at_fpr(neg: np.ndarray, pos: np.ndarray, target: float) -> dict[str, Any]:
    """The fraction of `pos` above the threshold that lets `target` of the negatives through."""
    if target < 1.0 / max(neg.size, 1):
        return {
            "value": None,
            "reason": f"FPR {target:g} is below 1/n_neg = {1 / max(neg.size, 1):.1e}: not measurable",
            "n_neg": int(neg.size),
        }
    allowed = int(np.floor(target * neg.size))
    threshold = np.sort(neg)[::-1][allowed] if allowed < neg.size else -np.inf
    k = int(np.sum(pos > threshold))
    return {**_rate(k, pos.size), "threshold": float(threshold), "n_neg": int(neg.size)}


def tables(
    labels: np.ndarray, scores: np.ndarray, theta_e: np.ndarray, theta_psf: np.ndarray
) -> dict[str, Any]:
    """Both tables, overall and per θE and θE/PSF bin."""
    labels = labels.astype(bool)
    neg, pos_all = scores[~labels], scores[labels]

    def table_for(mask: np.ndarray) -> dict[str, Any]:
        pos = scores[labels & mask]
        return {
            "n_pos": int(pos.size),
            "n_neg": int(neg.size),
            "fpr_at_completeness": {f"{t:.2f}": fpr_at_completeness(neg, pos, t) for t in COMPLETENESS},
            "completeness_at_fpr": {f"{f:.0e}": completeness_at_fpr(neg, pos, f) for f in FPRS},
        }

    out: dict[str, Any] = {"overall": table_for(np.ones_like(labels))}
    for name, values, edges in (
        ("theta_e", theta_e, THETA_E_BINS),
        ("theta_over_psf", theta_psf, THETA_PSF_BINS),
    ):
        out[name] = {}
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            label = f"[{lo:g}, {hi:g})"
            out[name][label] = table_for((values >= lo) & (values < hi))
    del pos_all
    return out


def _fmt(cell: dict[str, Any], percent: bool) -> str:
    if cell.get("value") is None:
        return "n/m"
    value = cell["value"] * 100 if percent else cell["value"]
    lo = cell["lo"] * 100 if percent else cell["lo"]
    hi = cell["hi"] * 100 if percent else cell["hi"]
    if percent:
        return f"{value:.1f}% [{lo:.1f}, {hi:.1f}] ({cell['k']}/{cell['n']})"
    return f"{value:.2e} [{lo:.1e}, {hi:.1e}] ({cell['k']}/{cell['n']})"


def markdown(result: dict[str, Any]) -> str:
    """The seed's two tables, then the stratified completeness at each FPR."""
    overall = result["tables"]["overall"]
    lines = [
        f"# Evaluation of {result['run']} on the {result['split']} split",
        f"n_pos = {overall['n_pos']}, n_neg = {overall['n_neg']}; 95 % Clopper-Pearson intervals; "
        "n/m = not measurable",
        "",
        "| Completeness (TPR) | FPR |",
        "|---|---|",
    ]
    lines += [
        f"| {float(t) * 100:.1f}% | {_fmt(c, False)} |" for t, c in overall["fpr_at_completeness"].items()
    ]
    lines += ["", "| Target FPR | Completeness (TPR) |", "|---|---|"]
    lines += [f"| {f} | {_fmt(c, True)} |" for f, c in overall["completeness_at_fpr"].items()]
    for name, title in (("theta_e", "θE (arcsec)"), ("theta_over_psf", "θE / PSF FWHM")):
        header = "| " + title + " bin | n_pos | " + " | ".join(f"TPR@FPR {f:.0e}" for f in FPRS) + " |"
        lines += ["", header, "|" + "---|" * (2 + len(FPRS))]
        for label, table in result["tables"][name].items():
            cells = [_fmt(table["completeness_at_fpr"][f"{f:.0e}"], True) for f in FPRS]
            lines.append(f"| {label} | {table['n_pos']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def score_split(run_dir: Path, stamps: Path, split: str, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The run's best model over one split of the stamps: scores with labels and θE."""
    import pyarrow.parquet as pq
    import torch

    from jobs.dataset import StampStream
    from jobs.models import load_run

    model, meta_cols = load_run(run_dir)
    data = StampStream(str(stamps), split, meta_cols=meta_cols)
    scores, ids, labels = [], [], []
    with torch.no_grad():
        for images, y, meta, task in torch.utils.data.DataLoader(data, batch_size=batch_size):
            scores.append(model(images, meta if meta_cols else None).numpy())
            labels.append(y.numpy())
            ids.append(task.numpy())
    if not scores:
        raise stage_runtime.StageError(f"{stamps}: no usable rows in the {split} split")
    task_id = np.concatenate(ids)
    info = pq.read_table(
        sorted(stamps.glob("part-*.parquet")), columns=["task_id", "theta_e_arcsec", "theta_over_psf"]
    )
    lookup = {t: i for i, t in enumerate(info.column("task_id").to_pylist())}
    rows = np.array([lookup[t] for t in task_id])
    return {
        "task_id": task_id,
        "score": np.concatenate(scores),
        "label": np.concatenate(labels),
        "theta_e": info.column("theta_e_arcsec").to_numpy()[rows],
        "theta_over_psf": np.nan_to_num(
            info.column("theta_over_psf").to_numpy(zero_copy_only=False)[rows].astype(float)
        ),
        "skipped": data.skipped,
    }


def run(
    workspace: Path, variant: str, grid: str | None = None, run_name: str | None = None, split: str = "test"
) -> dict[str, Any]:
    from core.names import check_name
    from jobs.inject import stamps_dir
    from jobs.train import default_run_name, runs_dir

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    run_name = check_name(
        "run", run_name or default_run_name(variant, grid, config.variants[variant].default_preset)
    )
    run_dir = runs_dir(workspace) / run_name
    scored = score_split(run_dir, stamps_dir(workspace, variant, grid), split)
    result = {
        "run": run_name,
        "variant": variant,
        "grid": grid,
        "split": split,
        "tables": tables(scored["label"], scored["score"], scored["theta_e"], scored["theta_over_psf"]),
    }
    from jobs.operating_points import operating_points

    result["operating_points"] = operating_points(scored["label"], scored["score"])
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    (out / f"eval-{split}.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (out / f"eval-{split}.md").write_text(text)
    print(text, flush=True)
    ops = result["operating_points"]
    return {
        "outputs": [str(out / f"eval-{split}.json"), str(out / f"eval-{split}.md")],
        "run": run_name,
        "split": split,
        "n_pos": ops["n_pos"],
        "n_neg": ops["n_neg"],
        "auroc": ops["auroc"],
        **{k: ops[k] for k in ops if k.startswith(("tpr@", "fpr@"))},
    }


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser(
        "eval", "Operating-point tables, overall and stratified by theta_E and theta_E/PSF."
    )
    p.add_argument("--grid", help="the stamps' grid [default: the variant's]")
    p.add_argument("--run", help="run name [default: <variant>-<grid>-<default preset>]")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = p.parse_args(argv)
    return stage_runtime.main("eval", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(args.workspace.resolve(), args.variant, args.grid, args.run, args.split)


if __name__ == "__main__":
    raise SystemExit(main())
