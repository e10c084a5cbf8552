"""Rates with honest intervals: a fraction of rows that pass a threshold, counted in
independent units (galaxies), with a 95 % interval and, where nothing passed, the one-sided
upper bound instead of a zero.

- Rows that are independent (each its own galaxy): Clopper–Pearson, exact.
- Rows that share galaxies (a host that served several injections): a bootstrap over the
  galaxies, each drawn bringing all its rows (the ratio of summed passes to summed rows).
- None passed: `upper` = 1 − 0.05^(1/n_independent), the figure to print as "< upper".

Also the calibration figures eval reports: the reliability table with its expected
calibration error, and the purity a threshold would reach at a given lens prevalence."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.intervals import (
    binomial,
    clopper_pearson,
    percentile_interval,
    resample_counts,
    unit_codes,
    upper_bound_zero,
)

N_BOOT = 1000


def rate(passed: np.ndarray, groups: Any = None, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """{value, k, n, n_independent, lo, hi[, upper]} for the rows that `passed`."""
    passed = np.asarray(passed, dtype=bool)
    n, k = int(passed.size), int(passed.sum())
    if groups is None or n == 0:
        return binomial(k, n)
    code = unit_codes(groups, n)
    per_k = np.bincount(code, weights=passed.astype(float))
    per_n = np.bincount(code).astype(float)
    n_ind = int(np.count_nonzero(per_n))
    out: dict[str, Any] = {"value": k / n, "k": k, "n": n, "n_independent": n_ind}
    if k == 0:
        out.update(lo=0.0, hi=upper_bound_zero(n_ind), upper=upper_bound_zero(n_ind))
        return out
    if n_ind == n:
        lo, hi = clopper_pearson(k, n)
    else:
        rng = np.random.default_rng(seed)
        used = per_n > 0
        ks, ns = per_k[used], per_n[used]
        draws = resample_counts(rng, n_ind, n_boot).astype(float)
        ratios = (draws @ ks) / np.maximum(draws @ ns, 1e-12)
        lo, hi = percentile_interval(ratios)
    out.update(lo=lo, hi=hi)
    return out


def bins_of(values: np.ndarray, edges: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    """(label, mask) for each half-open bin [lo, hi) of `edges`."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        out.append((f"[{lo:g}, {hi:g})", (values >= lo) & (values < hi)))
    return out


def levels_of(values: np.ndarray, max_levels: int = 12) -> list[tuple[str, np.ndarray]]:
    """(label, mask) for each distinct value (a grid's levels), or quantile bins if many."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size <= max_levels:
        return [(f"{v:g}", values == v) for v in distinct]
    edges = np.unique(np.quantile(values[np.isfinite(values)], np.linspace(0, 1, 7)))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return bins_of(values, tuple(edges))


def reliability(labels: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """The reliability table (equal-width probability bins: count, mean predicted, observed
    fraction of positives) and its expected calibration error Σ (n_b/N)·|observed − predicted|."""
    labels = np.asarray(labels, bool)
    probability = np.asarray(probability, float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, n_bins - 1)
    rows, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        if count == 0:
            continue
        predicted, observed = float(probability[mask].mean()), float(labels[mask].mean())
        ece += count / labels.size * abs(observed - predicted)
        rows.append(
            {
                "bin": f"[{edges[b]:.1f}, {edges[b + 1]:.1f})",
                "n": count,
                "predicted": predicted,
                "observed": observed,
            }
        )
    brier = float(np.mean((probability - labels) ** 2)) if labels.size else None
    return {"ece": ece if labels.size else None, "brier": brier, "bins": rows, "n": int(labels.size)}


def purity(tpr: float, fpr: float, prevalence: float) -> float:
    """The fraction of candidates above a threshold that are lenses, at `prevalence` lenses
    per galaxy: π·TPR / (π·TPR + (1 − π)·FPR)."""
    lensed, false = prevalence * tpr, (1.0 - prevalence) * fpr
    return lensed / (lensed + false) if lensed + false > 0 else 0.0
