"""The BDT's weak learner: Gini trees grown from the grid's histograms take scikit-learn's splits."""

import numpy as np
import pytest
from sklearn.ensemble import AdaBoostClassifier
from sklearn.tree import DecisionTreeClassifier

from hzg.learn.grid_tree import GridTreeClassifier


def binned_sample(seed: int, n: int = 4000, n_features: int = 6, n_bins: int = 21):
    """Grid bins (some features using only part of the grid), labels that depend on them, and weights."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, n_bins, size=(n, n_features)).astype(np.float64)
    x[:, -1] = rng.integers(3, 9, size=n)  # a feature with empty bins at both ends
    logit = (x[:, 0] - 10) / 3 + (x[:, 1] - 10) / 5 - 2.0 * (x[:, 2] > 15) + 0.3 * (x[:, -1] - 6)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    w = rng.exponential(size=n)
    return x, y, w


def assert_same_tree(grid: GridTreeClassifier, sk: DecisionTreeClassifier) -> None:
    a, b = grid.tree_, sk.tree_
    np.testing.assert_array_equal(a.children_left, b.children_left)
    np.testing.assert_array_equal(a.children_right, b.children_right)
    np.testing.assert_array_equal(a.feature, b.feature)
    np.testing.assert_array_equal(a.threshold, b.threshold)
    leaves = a.children_left < 0
    np.testing.assert_allclose(a.value[leaves], b.value[leaves], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("depth", "min_fraction"), [(3, 0.025), (4, 0.01), (2, 0.2)])
def test_same_tree_as_scikit_learn(seed, depth, min_fraction):
    x, y, w = binned_sample(seed)
    grid = GridTreeClassifier(max_depth=depth, min_weight_fraction_leaf=min_fraction, n_bins=21).fit(x, y, w)
    sk = DecisionTreeClassifier(max_depth=depth, min_weight_fraction_leaf=min_fraction, random_state=0)
    assert_same_tree(grid, sk.fit(x, y, sample_weight=w))
    np.testing.assert_array_equal(grid.predict(x), sk.predict(x))


def test_leaves_respect_min_weight_and_pure_nodes_stay_leaves():
    x, y, w = binned_sample(7)
    tree = GridTreeClassifier(max_depth=6, min_weight_fraction_leaf=0.05, n_bins=21).fit(x, y, w).tree_
    leaf_of = tree.apply(x.astype(np.intp))
    weight = np.bincount(leaf_of, weights=w, minlength=tree.node_count)
    leaves = tree.children_left < 0
    assert np.all(weight[leaves] >= 0.05 * w.sum() * (1 - 1e-12))
    pure = np.zeros_like(y)  # one class only: nothing to split
    assert GridTreeClassifier(max_depth=3, n_bins=21).fit(x, pure, w).tree_.node_count == 1


def test_boosted_like_scikit_learn():
    """scikit-learn's AdaBoost over grid trees: the same trees, tree weights and probabilities as over
    scikit-learn's trees."""
    x, y, w = binned_sample(3, n=3000)
    kwargs = dict(n_estimators=40, learning_rate=0.5, random_state=1)
    grid = AdaBoostClassifier(GridTreeClassifier(3, 0.025, 21), **kwargs).fit(x, y, sample_weight=w)
    sk = AdaBoostClassifier(
        DecisionTreeClassifier(max_depth=3, min_weight_fraction_leaf=0.025), **kwargs
    ).fit(x, y, sample_weight=w)
    for a, b in zip(grid.estimators_, sk.estimators_, strict=True):
        assert_same_tree(a, b)
    np.testing.assert_allclose(grid.estimator_weights_, sk.estimator_weights_, rtol=1e-12)
    np.testing.assert_array_equal(grid.predict_proba(x), sk.predict_proba(x))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([[0.5, 1.0]]), "whole numbers"),
        (np.array([[21.0, 1.0]]), r"\[0, 21\)"),
        (np.array([[-1.0, 1.0]]), "whole numbers"),
        (np.array([1.0, 2.0]), "2-d"),
    ],
)
def test_refuses_what_is_not_grid_bins(x, message):
    with pytest.raises(ValueError, match=message):
        GridTreeClassifier(n_bins=21).fit(x, np.zeros(len(x), int))


def test_refuses_bad_labels_and_weights():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="labels 0 and 1"):
        GridTreeClassifier().fit(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="non-negative"):
        GridTreeClassifier().fit(x, np.array([0, 1, 1]), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="must match"):
        GridTreeClassifier().fit(x, np.array([0, 1]))


def test_fit_bdt_boosts_grid_trees_with_the_scores_of_scikit_learn_trees():
    """The default's BDT pipeline (grid discretiser + AdaBoost over grid trees) scores as the same pipeline
    over scikit-learn's trees, bit for bit."""
    from hzg.learn import boosted

    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 5))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    w = rng.exponential(size=len(x))
    hp = {"n_trees": 30, "max_depth": 3, "min_node_fraction": 0.025, "n_cuts": 20, "learning_rate": 0.5}
    grid = boosted.fit_bdt(x, y, w, hp, seed=1)
    assert all(isinstance(t, GridTreeClassifier) for t in grid[-1].estimators_)
    sk = boosted.fit_bdt(
        x, y, w, hp, seed=1, weak_learner=DecisionTreeClassifier(max_depth=3, min_weight_fraction_leaf=0.025)
    )
    np.testing.assert_array_equal(boosted.bdt_scores(grid, x), boosted.bdt_scores(sk, x))
