"""The realism gate (issue 23, part 4): a grouped, cross-validated logistic probe with a
bootstrap interval and a permutation p-value, checked against sklearn's own pipeline."""

import numpy as np
import pytest

from jobs.learn import realism


def _data(shift: float, n: int = 40, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    real = rng.normal(0, 1, (n, d))
    real[:, 0] += shift
    inj = rng.normal(0, 1, (n, d))
    x = np.concatenate([real, inj])
    y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    groups = np.array([f"r{i}" for i in range(n)] + [f"i{i // 2}" for i in range(n)])  # hosts serve two
    return x, y, groups


@pytest.mark.parametrize("d", [16, 128])  # fewer features than rows, and more (the finder's 128)
def test_out_of_fold_scores_are_sklearns_pipeline_on_grouped_folds(d: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, groups = _data(1.0, d=d)
    folds = realism._folds(y, groups, 0)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])  # a galaxy never on both sides
    ours = realism._oof_scores(x, y, folds)
    # liblinear run to its optimum (its default tol stops ~1e-4 short of it)
    probe = LogisticRegression(C=1.0, solver="liblinear", max_iter=10_000, tol=1e-10)
    theirs = cross_val_predict(
        make_pipeline(StandardScaler(), probe), x, y, cv=folds, method="decision_function"
    )
    assert np.allclose(ours, theirs, atol=1e-5)


def test_auc_is_sklearns_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 90).astype(float)  # many ties
    y = rng.random(90) < 0.4
    assert realism.auc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_alike_populations_give_auc_near_half_and_distinct_ones_near_one() -> None:
    alike = realism.probe(*_data(0.0))
    assert alike["lo"] < 0.5 < alike["hi"] and alike["p_value"] > 0.05
    apart = realism.probe(*_data(3.0))
    assert apart["auc"] > 0.9 and apart["lo"] <= apart["auc"] <= apart["hi"]
    assert apart["p_value"] == pytest.approx(1 / (realism.N_PERMUTATIONS + 1))


def test_matching_is_nearest_in_magnitude_without_replacement() -> None:
    pool = np.array([1.0, 2.0, 4.0, 8.0, 100.0])
    got = realism.match_by_brightness(np.array([2.1, 2.0, 7.0]), pool)
    assert got[2] == 3 and got[0] == 1  # brightest first: 7 takes 8, then 2.1 takes 2
    assert len(set(got.tolist())) == 3 and got[1] in (0, 2)  # 2.0 cannot share row 1


def test_below_twenty_real_lenses_the_gate_says_why() -> None:
    x, y, groups = _data(1.0, n=12)
    part = {"features": x[:12], "pixels": x[:12], "flux": np.ones(12), "galaxy": groups[:12]}
    out = realism.gate(part, {**part, "galaxy": groups[12:]})
    assert out["auc"] is None and "12 real lenses" in out["reason"] and "needs 20" in out["reason"]


def test_pixel_features_see_an_arc_ring() -> None:
    from jobs.survey.layout import PIXSCALE

    rng = np.random.default_rng(1)
    size = 64
    r = realism._radius(size)
    galaxy = np.exp(-r / 0.8)[None, None] * np.array([0.2, 1.0, 2.0])[None, :, None, None]
    arc = (np.abs(r - 2.5) < 0.4) & (np.arctan2(*np.meshgrid(np.arange(size), np.arange(size))) > 0.8)
    plain = galaxy + rng.normal(0, 0.01, (20, 3, size, size))
    lensed = plain + 0.05 * arc[None, None] * np.array([1.0, 0.8, 0.6])[None, :, None, None]
    a, b = realism.pixel_features(plain), realism.pixel_features(lensed)
    assert a.shape == (20, 17) and np.isfinite(a).all()
    assert (b[:, 1] > a[:, 1]).all()  # more g light in the middle annulus
    assert PIXSCALE == 0.262


@pytest.mark.parametrize("seed", [7, 209, 378])  # where a plain Newton fit ends 300-700x above the optimum
def test_heavy_tailed_separable_features_reach_sklearns_optimum(seed: int) -> None:
    """Cauchy-tailed features on nearly separable classes: a full Newton step overshoots there
    (to 23,737 where the optimum is 62.5, seed 7); the line search reaches it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 900))
    y = rng.random(n) < 0.5
    x = rng.standard_cauchy((n, 17)) + rng.uniform(2, 30) * y[:, None]
    x = (x - x.mean(0)) / x.std(0)
    ours = realism.fit_logistic(x, y)
    sk = LogisticRegression(C=1.0, solver="liblinear", max_iter=100_000, tol=1e-12).fit(x, y)
    theirs = np.r_[sk.coef_[0], sk.intercept_]

    def objective(w: np.ndarray) -> float:
        margin = np.where(y, 1.0, -1.0) * (np.column_stack([x, np.ones(n)]) @ w)
        return 0.5 * w @ w + np.logaddexp(0, -margin).sum()

    assert objective(ours) <= objective(theirs) + 1e-6
    assert np.allclose(ours, theirs, atol=1e-3 * max(1.0, np.abs(theirs).max()))


def test_a_non_finite_feature_is_no_figure_but_a_reason() -> None:
    x, y, groups = _data(1.0, n=24)
    x[5, 2] = np.nan
    part = lambda rows: {"features": x[rows], "pixels": x[rows], "flux": np.ones(24), "galaxy": groups[rows]}  # noqa: E731
    out = realism.gate(part(slice(0, 24)), part(slice(24, 48)))
    assert out["auc"] is None and "NaN or infinite" in out["reason"] and "row 5" in out["reason"]
    with pytest.raises(ValueError, match="both classes"):
        realism.auc(np.arange(4.0), np.ones(4, bool))
    assert realism.auc(np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 1, 0])) == 1.0  # 0/1 labels
