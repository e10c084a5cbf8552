"""How figures read: rounded, a bound with its count where nothing passed, n/m where not
measurable (issue 15: `0.9981375743465307`, and `n/m` for 0 false positives in 1,000)."""

from core.figures import figure, score
from core.intervals import upper_bound_zero


def test_figures_are_rounded_and_bounds_carry_their_counts() -> None:
    assert figure("auroc", 0.9981375743465307) == "0.9981"
    assert figure("tpr@fpr1e-2", 0.328) == "0.3280"
    assert figure("fpr@tpr0.85", 0.0671) == "6.71e-02"
    assert figure("fpr@tpr0.85", None, upper_bound_zero(1000), 1000) == "< 3.0e-03 (0/1,000)"
    assert figure("fpr@tpr0.85", None, upper_bound_zero(343)) == "< 8.7e-03"
    assert figure("tpr@fpr1e-4", None) == "n/m"
    assert figure("epochs", 6) == "6" and figure("variant", "v4_sota") == "v4_sota"
    assert score(0.9981375743465307) == "0.9981" and score(0.9981375743465307, 3) == "0.998"
    assert score(None) == "-"
