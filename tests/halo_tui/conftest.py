"""The console's tests: a truecolor terminal whatever the machine's TERM and COLORTERM (what
a screen draws depends on the terminal's colours, core.colour.neutral_sky, and the snapshots
must not), a candidates file (tests/conftest.py's make_candidates), and an evaluation as the
eval stage writes it (make_evaluation)."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture
def candidates(tmp_path: Path, make_candidates) -> Path:
    return make_candidates(tmp_path / "candidates.parquet", 30)


def evaluation(completeness: float) -> dict:
    """An eval-test.json built by the eval stage's own functions on a made-up split (a copy of
    the one made for this level: the bootstrap takes a second or two, and many tests ask)."""
    return json.loads(_evaluation(completeness))


@functools.cache
def _evaluation(completeness: float) -> str:
    from jobs.learn.evaluation import completeness_maps, operating_thresholds
    from jobs.stats.operating_points import operating_points, roc_points

    rng = np.random.default_rng(0)
    n_pos, n_neg = 400, 300
    theta = np.repeat([0.5, 1.0, 2.0], [150, 150, 100])
    dmag = np.tile([0.5, 1.0, 1.5, 2.0], 100)
    label = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    logit = np.r_[rng.normal(3 * completeness - 1.5 * dmag, 1), rng.normal(-2, 1, n_neg)]
    galaxy = np.r_[np.arange(n_pos) % 150, 1000 + np.arange(n_neg)]
    scored = {
        "label": label,
        "logit": logit,
        "galaxy": galaxy,
        "theta_e": np.r_[theta, np.zeros(n_neg)],
        "src_dmag": np.r_[dmag, np.zeros(n_neg)],
        "arc_snr": np.r_[rng.uniform(3, 80, n_pos), np.zeros(n_neg)],
        "theta_over_psf": np.r_[theta / 1.2, np.zeros(n_neg)],
    }
    thresholds = operating_thresholds(logit[~label], galaxy[~label])
    return json.dumps(
        {
            "operating_points": operating_points(label, logit, galaxy),
            "thresholds": thresholds,
            "completeness": completeness_maps(scored, thresholds),
            "roc": roc_points(label, logit),
        }
    )


@pytest.fixture
def make_evaluation():
    """`make(completeness)`: an eval-test.json's content, built by the eval stage's functions."""
    return evaluation
