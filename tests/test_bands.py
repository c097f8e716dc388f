"""Repeated trainings as bands (hzg.results.bands): per-trial curves on a common grid, their lowest, highest
and mean value at every point, on hand-made curves."""

import warnings

import numpy as np
import pytest

from hzg.results import bands


def test_band_is_the_min_max_and_mean_over_the_trials_at_every_point():
    b = bands.band([1.0, 2.0, 3.0], [[1.0, 2.0, 3.0], [3.0, 0.0, 5.0], [2.0, 1.0, 7.0]])
    np.testing.assert_array_equal(b.x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(b.lower, [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(b.upper, [3.0, 2.0, 7.0])
    np.testing.assert_allclose(b.mean, [2.0, 1.0, 5.0])
    np.testing.assert_array_equal(b.n, [3, 3, 3])


def test_band_counts_only_the_trials_with_a_value_and_is_nan_where_none_has():
    values = [[1.0, np.nan, np.nan, 4.0], [3.0, 4.0, np.nan, np.inf], [2.0, 6.0, np.nan, np.nan]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" or "Mean of empty slice" warning
        b = bands.band(np.arange(4), values)
    np.testing.assert_array_equal(b.n, [3, 2, 0, 1])
    np.testing.assert_array_equal(b.defined, [True, True, False, True])
    np.testing.assert_array_equal(b.lower, [1.0, 4.0, np.nan, 4.0])
    np.testing.assert_array_equal(b.upper, [3.0, 6.0, np.nan, 4.0])
    np.testing.assert_allclose(b.mean, [2.0, 5.0, np.nan, 4.0])


def test_one_trial_is_its_own_band():
    b = bands.band([0.0, 1.0], [[0.5, 0.25]])
    for edge in (b.lower, b.upper, b.mean):
        np.testing.assert_array_equal(edge, [0.5, 0.25])


def test_band_refuses_values_off_the_grid():
    with pytest.raises(ValueError, match="3 points per trial, the grid 2"):
        bands.band([0.0, 1.0], [[1.0, 2.0, 3.0]])


def test_roc_band_interpolates_each_trial_on_the_signal_efficiency_grid():
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    # (background efficiency, signal efficiency) along each curve
    kinked = (np.array([0.0, 0.1, 1.0]), np.array([0.0, 0.5, 1.0]))  # 0.05 at 0.25, 0.55 at 0.75
    diagonal = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    b = bands.roc_band([kinked, diagonal], grid)
    np.testing.assert_array_equal(b.x, grid)
    np.testing.assert_allclose(b.lower, [0.0, 0.05, 0.1, 0.55, 1.0])
    np.testing.assert_allclose(b.upper, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(b.mean, [0.0, 0.15, 0.3, 0.65, 1.0])
    np.testing.assert_array_equal(b.n, [2] * 5)


def test_roc_band_on_the_default_grid_matches_the_single_trial_roc_curve():
    rng = np.random.default_rng(3)
    tpr = np.r_[0.0, np.sort(rng.uniform(size=40)), 1.0]
    fpr = tpr**3
    b = bands.roc_band([(fpr, tpr)])
    np.testing.assert_array_equal(b.x, np.linspace(0.0, 1.0, 501))
    np.testing.assert_allclose(b.mean, np.interp(b.x, tpr, fpr))


def test_roc_band_refuses_a_curve_whose_signal_efficiency_decreases():
    with pytest.raises(ValueError, match="must not decrease"):
        bands.roc_band([(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.6, 0.4]))])
    with pytest.raises(ValueError, match="no ROC curve"):
        bands.roc_band([])


def test_history_band_is_per_epoch_over_the_trials_that_have_the_epoch():
    # trial 0 ran 3 epochs, trial 1 only 2 (its epoch 2 not evaluated), trial 2 is given out of order
    histories = [
        (np.array([1, 2, 3]), np.array([1.0, 0.8, 0.6])),
        (np.array([1, 2]), np.array([1.2, np.nan])),
        (np.array([2, 1]), np.array([0.7, 0.9])),
    ]
    b = bands.history_band(histories)
    np.testing.assert_array_equal(b.x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(b.n, [3, 2, 1])
    np.testing.assert_allclose(b.lower, [0.9, 0.7, 0.6])
    np.testing.assert_allclose(b.upper, [1.2, 0.8, 0.6])
    np.testing.assert_allclose(b.mean, [31 / 30, 0.75, 0.6])


def test_history_band_refuses_an_epoch_twice_or_a_value_count_off_the_epochs():
    with pytest.raises(ValueError, match="twice"):
        bands.history_band([(np.array([1, 1]), np.array([0.5, 0.4]))])
    with pytest.raises(ValueError, match="one value per epoch"):
        bands.history_band([(np.array([1, 2]), np.array([0.5]))])
