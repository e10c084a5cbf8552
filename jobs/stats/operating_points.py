"""Operating points from the ROC curve (scikit-learn), honest about what was measured.

The seed's insight 4: AUROC is dominated by easy cases; what matters is the completeness at
a fixed, very low false-positive rate. And a sample's size is its count of **independent**
units: a galaxy cut out 41 times is one negative, not 41. So every figure carries

- `n_pos`, `n_neg` (rows) and `n_pos_independent`, `n_neg_independent` (distinct galaxies);
- a 95 % interval from a bootstrap over galaxies (a galaxy drawn brings all its rows),
  for AUROC, tpr@fpr, fpr@tpr and the TPR at FPR = 0, under `intervals`;

and a figure is printed only where those galaxies can measure it:

- `tpr@fpr{f}` needs at least 1/f independent negatives; below that it is None with the
  reason (a measured "FPR 1e-3" on 24 galaxies is really FPR 0 on 24 galaxies);
- `fpr@tpr{t}` with no negative above its threshold is None, and `fpr_upper_bounds` holds the
  one-sided 95 % upper bound on that FPR, 1 − 0.05^(1/n_neg_independent), instead of a number;
- `tpr@fpr0` is the completeness above the highest-scoring negative, as HOLISMOKES reports
  it, with its FPR's upper bound under `fpr_upper_bounds["tpr@fpr0"]`.

Point estimates are sklearn's `roc_curve` / `roc_auc_score` on the rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.intervals import percentile_interval, resample_counts, unit_codes, upper_bound_zero
from core.metrics import FPR_AT_TPR, TPR_AT_FPR

# resamples of the galaxies: the ends of a 95 % interval must hold still across seeds. On the
# demo's test split (1,343 rows) tpr@fpr1e-2's upper end moved by 0.32 between seeds with
# 200 (its resamples have a long tail: a handful of negatives set the threshold), 0.08 with
# 1,000, 0.02 with 10,000 and 0.008 with 20,000, at ~2 s an evaluation
# (tests/jobs/test_operating_points.py checks every end < 0.02 on a sample like it)
N_BOOT = 20_000
EPOCH_N_BOOT = 1_000  # train's per-epoch figures, for watching a run (eval's are the ones to quote)
_CHUNK = 4_000_000  # the bootstrap's (resamples × galaxies or levels) held at once: ~32 MB an array


def pauc_max_fpr(n_neg_independent: int) -> float:
    """The FPR up to which a split's independent negatives can measure a partial AUROC."""
    return min(1.0, max(1e-3, 3.0 / max(n_neg_independent, 1)))


def roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


ROC_POINTS = 256  # points of a stored ROC curve


def roc_points(labels: np.ndarray, scores: np.ndarray, points: int = ROC_POINTS) -> dict[str, list[float]]:
    """The ROC curve (sklearn's, on the rows) thinned to at most `points` vertices for
    plotting: its first and last vertices kept, the rest evenly spaced in log FPR, where a
    lens finder's operating points are."""
    fpr, tpr = roc(labels, scores)
    if fpr.size > points:
        positive = np.flatnonzero(fpr > 0)
        grid = np.geomspace(fpr[positive[0]], 1.0, points - 2) if positive.size else np.array([])
        keep = np.unique(np.concatenate([[0, fpr.size - 1], np.searchsorted(fpr, grid, side="right") - 1]))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.round(8).tolist(), "tpr": tpr.round(8).tolist()}


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest completeness reached while the FPR stays at or below `target`."""
    return float(tpr[fpr <= target].max())


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The lowest FPR at which the completeness reaches `target`."""
    return float(fpr[tpr >= target].min())


def measurable_fpr(level: float, n_neg_independent: int) -> bool:
    """Whether an FPR of `level` can be measured on this many independent negatives."""
    return n_neg_independent * level >= 1.0 - 1e-9


def _levels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's score level (0 = the highest score; tied rows share one) and their count,
    with neighbouring levels that hold only positives (or only negatives) as one: no figure
    here changes within such a run, whatever the weights (the FPR moves only at negatives, the
    TPR only at positives), and on a good finder's scores that leaves a few levels of many."""
    _, level_of = np.unique(-scores, return_inverse=True)
    level_of = level_of.reshape(-1)
    n_levels = int(level_of.max()) + 1
    kind = np.zeros(n_levels, np.int8)
    np.bitwise_or.at(kind, level_of, np.where(labels, 1, 2).astype(np.int8))  # 1, 2 or 3 (both)
    starts = np.r_[True, (kind[1:] != kind[:-1]) | (kind[1:] == 3)]
    run = np.cumsum(starts) - 1
    return run[level_of], int(run[-1]) + 1


def _unit_levels(unit: np.ndarray, level_of: np.ndarray, rows: np.ndarray, shape: tuple[int, int]) -> Any:
    """(units, levels), sparse: how many of the `rows` each unit has at each score level, so
    that (resamples × units) weights times it are each level's summed weight."""
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(int(rows.sum())), (unit[rows], level_of[rows])), shape=shape)


def _product(weights: np.ndarray, unit_levels: Any) -> np.ndarray:
    """(resamples, levels): `weights` (resamples, units) times the sparse (units, levels), in
    rows (scipy hands a dense-times-sparse product back transposed: the cumulative sums along
    the levels would stride across memory)."""
    return np.ascontiguousarray(unit_levels.T @ weights.T).T.copy(order="C")


def _figures(pos_w: np.ndarray, neg_w: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC, tpr@fpr, fpr@tpr and tpr@fpr0 of each resample from its positives' and
    negatives' summed weight at each score level, (resamples, levels), the highest level first."""
    n_levels = pos_w.shape[1]
    cum_pos, cum_neg = np.cumsum(pos_w, axis=1), np.cumsum(neg_w, axis=1)
    p_tot, n_tot = cum_pos[:, -1].astype(np.float64), cum_neg[:, -1].astype(np.float64)
    good = (p_tot > 0) & (n_tot > 0)
    p_div, n_div = np.where(p_tot > 0, p_tot, 1.0), np.where(n_tot > 0, n_tot, 1.0)

    def at(cum: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(cum, idx[:, None], 1)[:, 0].astype(np.float64)

    # AUROC: a positive beats the negatives below its level and half of those tied with it
    beaten = (pos_w * (2 * (cum_neg[:, -1:] - cum_neg) + neg_w)).sum(1, dtype=np.float64)
    out = {"auroc": beaten / (2 * np.where(good, p_tot * n_tot, 1.0))}
    for f in TPR_AT_FPR:  # the last level whose FPR stays within f
        idx = (cum_neg <= (float(f) + 1e-15) * n_tot[:, None]).sum(axis=1) - 1
        out[f"tpr@fpr{f}"] = np.where(idx >= 0, at(cum_pos, np.maximum(idx, 0)) / p_div, 0.0)
    for t in FPR_AT_TPR:  # the first level whose TPR reaches t
        idx = np.minimum((cum_pos < (float(t) - 1e-12) * p_tot[:, None]).sum(axis=1), n_levels - 1)
        out[f"fpr@tpr{t}"] = at(cum_neg, idx) / n_div
    first_neg = np.argmax(neg_w > 0, axis=1)  # the highest level holding a negative
    out["tpr@fpr0"] = (at(cum_pos, first_neg) - at(pos_w, first_neg)) / p_div
    return {name: values[good] for name, values in out.items()}


def weighted_figures(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, unit: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """AUROC, tpr@fpr, fpr@tpr and tpr@fpr0 of the rows weighted by each row of `weights`
    (resamples × units; a row's weight is its `unit`'s, each row its own unit by default),
    from one sort of the scores: the bootstrap's inner loop, vectorised over the resamples.
    Equal to sklearn's figures with `sample_weight` (tested)."""
    unit = np.arange(labels.size) if unit is None else unit
    level_of, n_levels = _levels(scores, labels)
    shape = (weights.shape[1], n_levels)
    pos = _unit_levels(unit, level_of, labels, shape)
    neg = _unit_levels(unit, level_of, ~labels, shape)
    return _figures(_product(weights, pos), _product(weights, neg))


def _bootstrap(
    labels: np.ndarray, scores: np.ndarray, group: np.ndarray, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Figures of `n_boot` resamples of the galaxies (multinomial multiplicities: a galaxy
    drawn k times brings all its rows k times), each level's weight a sparse product of the
    galaxies' multiplicities (never one weight per row and resample)."""
    n_groups = int(group.max()) + 1
    rng = np.random.default_rng(seed)
    level_of, n_levels = _levels(scores, labels)
    pos = _unit_levels(group, level_of, labels, (n_groups, n_levels))
    neg = _unit_levels(group, level_of, ~labels, (n_groups, n_levels))
    per_block = max(1, _CHUNK // max(n_groups, n_levels, 1))
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_boot, per_block):
        counts = resample_counts(rng, n_groups, min(per_block, n_boot - start)).astype(np.float64)
        for name, values in _figures(_product(counts, pos), _product(counts, neg)).items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(v) for name, v in out.items()}


def _interval(values: np.ndarray) -> list[float] | None:
    return list(percentile_interval(values)) if values.size >= 10 else None


def operating_points(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: Any = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    pauc_max_fpr: float | None = None,
) -> dict[str, Any]:
    """AUROC, tpr@fpr, fpr@tpr and tpr@fpr0 with their counts, galaxy-bootstrap intervals
    and upper bounds; None plus a reason where the independent negatives cannot measure it.
    `groups` names each row's galaxy (rows are independent when it is None). With
    `pauc_max_fpr`, also `pauc`: sklearn's standardised partial AUROC up to that FPR."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    group = unit_codes(groups, labels.size)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    ind_pos, ind_neg = int(np.unique(group[labels]).size), int(np.unique(group[~labels]).size)
    out: dict[str, Any] = {
        "n_pos": n_pos,
        "n_neg": n_neg,
        "n_pos_independent": ind_pos,
        "n_neg_independent": ind_neg,
    }
    reasons: dict[str, str] = {}
    names = [
        "auroc",
        *(f"tpr@fpr{f}" for f in TPR_AT_FPR),
        "tpr@fpr0",
        *(f"fpr@tpr{t}" for t in FPR_AT_TPR),
    ]
    if n_pos == 0 or n_neg == 0:
        for name in names:
            out[name] = None
            reasons[name] = f"needs positives and negatives (n_pos={n_pos}, n_neg={n_neg})"
        return {**out, "unmeasured": reasons, "intervals": {}, "fpr_upper_bounds": {}}
    bound = upper_bound_zero(ind_neg)
    out["auroc"] = float(roc_auc_score(labels, scores))
    if pauc_max_fpr is not None:
        out["pauc_max_fpr"] = float(pauc_max_fpr)
        out["pauc"] = (
            float(roc_auc_score(labels, scores, max_fpr=pauc_max_fpr)) if pauc_max_fpr < 1 else out["auroc"]
        )
    fpr, tpr = roc(labels, scores)
    for f in TPR_AT_FPR:
        name = f"tpr@fpr{f}"
        if measurable_fpr(float(f), ind_neg):
            out[name] = tpr_at_fpr(fpr, tpr, float(f))
        else:
            out[name] = None
            reasons[name] = (
                f"FPR {f} needs at least {int(np.ceil(1 / float(f))):,} independent negatives; "
                f"there are {ind_neg:,} (galaxies)"
            )
    top_negative = scores[~labels].max()
    out["tpr@fpr0"] = float(np.mean(scores[labels] > top_negative))
    upper = {"tpr@fpr0": bound}
    for t in FPR_AT_TPR:
        name = f"fpr@tpr{t}"
        value = fpr_at_tpr(fpr, tpr, float(t))
        if value == 0.0:
            out[name] = None
            upper[name] = bound
            reasons[name] = (
                f"no negative scores above this threshold: FPR < {bound:.1e} "
                f"(95 % upper bound, {ind_neg:,} independent negatives)"
            )
        else:
            out[name] = value
    boot = _bootstrap(labels, scores, group, n_boot, seed) if n_boot else {}
    intervals = {}
    for name in names:
        if out.get(name) is not None and name in boot:
            interval = _interval(boot[name])
            if interval is not None:
                intervals[name] = interval
    return {**out, "unmeasured": reasons, "intervals": intervals, "fpr_upper_bounds": upper}
