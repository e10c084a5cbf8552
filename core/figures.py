"""How a figure reads wherever people see it (reports, tables, the console): rounded, `n/m`
where it cannot be measured, and `< bound (0/n)` where no negative passed, so only an upper
bound on the rate is known. JSON keeps the exact values."""

from __future__ import annotations

from typing import Any


def figure(metric: str, value: Any, bound: float | None = None, negatives: int | None = None) -> str:
    """One metric's value: `0.9672`, `6.71e-02` for a false-positive rate, `< 8.7e-03 (0/343)`
    where none of `negatives` independent negatives passed, `n/m` where not measurable."""
    if value is None:
        if bound is None:
            return "n/m"
        return f"< {bound:.1e}" + (f" (0/{negatives:,})" if negatives else "")
    if isinstance(value, bool) or isinstance(value, int) or metric == "seconds":
        return str(value)
    if isinstance(value, float):
        return f"{value:.2e}" if metric.startswith("fpr@") else f"{value:.4f}"
    return str(value)


def degrees(value: float | None) -> str:
    """A position in degrees to 1e-6 (4 milliarcseconds), as people read and paste it."""
    return "" if value is None else f"{value:.6f}"


def score(value: float | None, digits: int = 4) -> str:
    """A model score (a probability), rounded; `-` where there is none."""
    return "-" if value is None else f"{value:.{digits}f}"
