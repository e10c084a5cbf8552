"""The shortcut audit: can simple pixel statistics tell positives from controls?

A positive must differ from its control only by the arc. If a logistic regression on
statistics that say nothing about arcs separates the classes, the stamps carry a shortcut
(the seed-era float arc on a quantised coadd gave AUROC 1.000 from the exact-zero fraction
alone) that a CNN will find before it finds arcs.

Per band (g, r, z), two groups of features:

- **pixel statistics** (the audit's verdict), over the stamp's border (beyond 0.4 × its size
  from the centre, 6.7″ for 64 px: past the arcs of the shipped grids, whose light there is a
  small fraction of the noise): the fraction of exactly-zero pixels, the fraction of distinct
  values, the row-lattice residual (each border row's values in units of their smallest
  non-zero spacing: 0 on a quantisation lattice, ~0.25 off it), the noise (MAD) and the
  minimum. Inside the arc a real lens changes these too (its light spreads the values), so
  only the border can tell a shortcut from the signal;
- **flux** (reported, not judged): total flux, central flux (within 8 px) and the maximum.
  They separate the classes by the arc's own light, which is the signal, not a shortcut; their
  AUROC says how far a model could get by counting photons instead of seeing arcs.

The regression is fitted on the train split and scored on test (val if test has no stamps),
up to `rows_per_split` stamps each, drawn by row group at random, one per galaxy and class
(a galaxy repeated 41 times is one unit, not 41). Above `max_auroc` (default
0.60) the verdict fails, naming the features whose own AUROC exceeds it (or the strongest).
A verdict needs 100 galaxies of each class in the scored split; with fewer, the AUROC is
reported as too noisy to judge (±0.1 at 24 galaxies a class) and the stage goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.schemas import known_rows, unit_keys
from jobs.survey.layout import BANDS

PIXEL_STATS = ("zero_frac", "distinct_frac", "lattice_resid", "border_mad", "border_min")
FLUX_STATS = ("total_flux", "central_flux", "max")
CENTRAL_PX = 8
BORDER_FRAC = 0.4
MIN_PER_CLASS = 20  # galaxies of each class to fit and score at all
MIN_TO_JUDGE = 100  # galaxies of each class in the scored split for a verdict


def _row_lattice_residual(rows: np.ndarray) -> np.ndarray:
    """Per stamp and band: the mean distance (in steps) of each row's values from the lattice
    spanned by its smallest non-zero spacing. `rows`: (n, bands, n_rows, width)."""
    ordered = np.sort(rows.astype(np.float64), axis=-1)
    gaps = np.diff(ordered, axis=-1)
    gaps[gaps <= 0] = np.inf
    step = gaps.min(axis=-1, keepdims=True)
    finite = np.isfinite(step)
    units = (ordered - ordered[..., :1]) / np.where(finite, step, 1.0)
    resid = np.where(finite, np.abs(units - np.rint(units)), 0.0)
    return resid.mean(axis=(-1, -2))


def features(stamps: np.ndarray) -> dict[str, np.ndarray]:
    """The audit's features of (n, 3, H, W) stamps, one array of n values per name."""
    n, _, h, w = stamps.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h // 2, xx - w // 2)
    edge_r = BORDER_FRAC * min(h, w)
    border, central = r > edge_r, r < CENTRAL_PX
    edge_rows = np.flatnonzero(np.abs(np.arange(h) - h // 2) > edge_r)  # rows wholly in the border
    flat = stamps.reshape(n, 3, -1)
    edge = stamps[:, :, border]
    ordered = np.sort(edge, axis=-1)
    distinct = 1 + (np.diff(ordered, axis=-1) != 0).sum(axis=-1)
    med = np.median(edge, axis=-1, keepdims=True)
    per_band = {
        "zero_frac": (edge == 0).mean(axis=-1),
        "distinct_frac": distinct / edge.shape[-1],
        "lattice_resid": _row_lattice_residual(stamps[:, :, edge_rows, :]),
        "border_mad": np.median(np.abs(edge - med), axis=-1),
        "border_min": edge.min(axis=-1),
        "total_flux": flat.sum(axis=-1, dtype=np.float64),
        "central_flux": stamps[:, :, central].sum(axis=-1, dtype=np.float64),
        "max": flat.max(axis=-1),
    }
    return {
        f"{name}_{band}": values[:, i] for name, values in per_band.items() for i, band in enumerate(BANDS)
    }


def _sample(parts: list[Path], rows_per_split: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Features and labels of up to `rows_per_split` usable stamps per split, one per galaxy
    and class (a galaxy is one independent unit, however many tasks it served)."""
    from core.stamps import decode, stamp_meta
    from core.storage import parquet_file

    # local paths or s3:// URIs
    groups = [(p, g) for p in parts for g in range(parquet_file(p).metadata.num_row_groups)]
    order = np.random.default_rng(seed).permutation(len(groups))
    taken: dict[str, list[dict[str, np.ndarray]]] = {}
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for k in order:
        path, group = groups[k]
        file = parquet_file(path)
        wanted = ["split", "is_control", "ok", "brickname", "objid", "stamp"]
        table = file.read_row_group(
            group, columns=wanted + [c for c in ("unit", "known_tier") if c in file.schema_arrow.names]
        )
        unit = table.column("unit").to_pylist() if "unit" in table.column_names else None
        split = np.asarray(table.column("split").to_pylist(), dtype=object)
        label = ~table.column("is_control").to_numpy(zero_copy_only=False)
        units = [
            f"{s}|{g}|{y}"
            for s, g, y in zip(
                split,
                unit_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), unit),
                label,
                strict=True,
            )
        ]
        first = {u: i for i, u in reversed(list(enumerate(units)))}  # a unit's first row here
        fresh = np.array([first[u] == i and u not in seen for i, u in enumerate(units)])
        fresh &= table.column("ok").to_numpy(zero_copy_only=False)
        fresh &= ~known_rows(table)  # real lenses: not an injection, not a control
        for name in set(split[fresh]):
            room = rows_per_split - counts.get(name, 0)
            rows = np.flatnonzero(fresh & (split == name))[: max(room, 0)]
            if rows.size == 0:
                continue
            seen.update(units[i] for i in rows)
            values = features(decode(table.column("stamp").take(rows), stamp_meta(file.schema_arrow)))
            values["label"] = label[rows]
            taken.setdefault(name, []).append(values)
            counts[name] = counts.get(name, 0) + rows.size
        if all(counts.get(s, 0) >= rows_per_split for s in ("train", "test")):
            break
    return {s: {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]} for s, blocks in taken.items()}


def _auroc(fit: dict[str, np.ndarray], score: dict[str, np.ndarray], names: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_fit = np.column_stack([fit[n] for n in names])
    x_score = np.column_stack([score[n] for n in names])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(np.nan_to_num(x_fit), fit["label"])
    return float(roc_auc_score(score["label"], model.predict_proba(np.nan_to_num(x_score))[:, 1]))


def _single(score: dict[str, np.ndarray], names: list[str]) -> dict[str, float]:
    """Each feature's own AUROC on the scored split, folded to ≥ 0.5 (either direction)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for name in names:
        a = float(roc_auc_score(score["label"], np.nan_to_num(score[name])))
        out[name] = round(max(a, 1.0 - a), 4)
    return out


def audit(parts: list[Path], max_auroc: float = 0.60, rows_per_split: int = 20000) -> dict[str, Any]:
    """The audit's report: the pixel-statistic AUROC and verdict, each feature's AUROC, and
    the flux baseline."""
    data = _sample(parts, rows_per_split)
    fit = data.get("train")
    score_split = "test" if "test" in data else "val"
    score = data.get(score_split)

    def counts(d: dict[str, np.ndarray] | None) -> tuple[int, int]:
        return (0, 0) if d is None else (int(d["label"].sum()), int((~d["label"]).sum()))

    (fit_pos, fit_neg), (n_pos, n_neg) = counts(fit), counts(score)
    report: dict[str, Any] = {
        "max_auroc": max_auroc,
        "fitted_on": {"split": "train", "n_pos": fit_pos, "n_neg": fit_neg},
        "scored_on": {"split": score_split, "n_pos": n_pos, "n_neg": n_neg},
    }
    if min(fit_pos, fit_neg, n_pos, n_neg) < MIN_PER_CLASS:
        return {
            **report,
            "ok": True,
            "auroc": None,
            "reason": f"too few stamps to audit (needs {MIN_PER_CLASS} of each class in train and test)",
        }
    assert fit is not None and score is not None
    pixel = [f"{n}_{b}" for n in PIXEL_STATS for b in BANDS]
    flux = [f"{n}_{b}" for n in FLUX_STATS for b in BANDS]
    auroc = _auroc(fit, score, pixel)
    single = _single(score, pixel)
    flagged = sorted((n for n, a in single.items() if a > max_auroc), key=lambda n: -single[n])
    judged = min(n_pos, n_neg) >= MIN_TO_JUDGE
    ok = auroc <= max_auroc or not judged
    if not ok and not flagged:
        flagged = sorted(single, key=lambda n: -single[n])[:3]
    if not judged:
        report["reason"] = (
            f"too few galaxies to judge ({MIN_TO_JUDGE} of each class needed in {score_split}): "
            "AUROC reported, no verdict"
        )
    return {
        **report,
        "ok": ok,
        "judged": judged,
        "auroc": round(auroc, 4),
        "features": single,
        "flagged": flagged if not ok else [],
        "flux_baseline": {"auroc": round(_auroc(fit, score, flux), 4), "features": _single(score, flux)},
    }


def summary_line(report: dict[str, Any]) -> str:
    """One line for the log: the verdict, the AUROC and, if it failed, the features."""
    if report.get("auroc") is None:
        return f"shortcut audit: skipped ({report.get('reason')})"
    scored = report["scored_on"]
    line = (
        f"shortcut audit: pixel-statistic AUROC {report['auroc']:.3f} (limit {report['max_auroc']:.2f}; "
        f"{scored['split']}: {scored['n_pos']} positives, {scored['n_neg']} controls); "
        f"flux baseline {report['flux_baseline']['auroc']:.3f}"
    )
    if not report.get("judged", True):
        line += f"; {report['reason']}"
    if not report["ok"]:
        named = ", ".join(f"{n} {report['features'][n]:.3f}" for n in report["flagged"])
        line += f" - FAILED: positives differ from controls by {named}"
    return line
