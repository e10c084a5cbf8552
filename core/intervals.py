"""Binomial intervals at one confidence level, for counts of independent units (galaxies,
blind items): Clopper–Pearson, exact, and where none passed the one-sided upper bound to
print as "< upper". jobs/rates.py builds the grouped (bootstrap) case on these; the console's
inspector calibration (core/grades.py) uses `binomial` directly."""

from __future__ import annotations

from typing import Any

LEVEL = 0.95


def upper_bound_zero(n: int, level: float = LEVEL) -> float:
    """One-sided upper bound on a rate of which 0 of `n` independent trials passed
    (Clopper–Pearson: 1 − (1 − level)^(1/n))."""
    return 1.0 - (1.0 - level) ** (1.0 / n) if n > 0 else 1.0


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float | None, float | None]:
    from scipy.stats import beta

    if n == 0:
        return None, None
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def binomial(k: int, n: int) -> dict[str, Any]:
    """{value, k, n, n_independent, lo, hi[, upper]}: `k` of `n` independent units."""
    if n == 0:
        return {"value": None, "k": 0, "n": 0, "n_independent": 0, "lo": None, "hi": None}
    out: dict[str, Any] = {"value": k / n, "k": k, "n": n, "n_independent": n}
    if k == 0:
        bound = upper_bound_zero(n)
        return out | {"lo": 0.0, "hi": bound, "upper": bound}
    lo, hi = clopper_pearson(k, n)
    return out | {"lo": lo, "hi": hi}
