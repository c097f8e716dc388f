"""Tests for hzg.metrics: weighted quantiles, Asimov significance and the paper's binned significance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hzg.metrics import (
    asimov_significance,
    bin_index,
    binned_significance,
    binned_significance_detail,
    background_variance_shares,
    effective_events,
    equal_signal_bin_edges,
    low_background_mc_bins,
    significance_mc_error,
    weighted_quantile,
)


# ---------------------------------------------------------------- Asimov significance
def test_asimov_at_hand_values():
    # s=10, b=100: 110 ln(1.1) = 10.484119778, minus 10 = 0.484119778, times 2 = 0.968239557 -> Z = 0.98399164
    assert asimov_significance(10.0, 100.0) == pytest.approx(0.9839916447569484, rel=1e-12)
    # s=1, b=4: 5 ln(1.25) = 1.115717757, minus 1, times 2 = 0.231435513 -> Z = 0.48107745
    assert asimov_significance(1.0, 4.0) == pytest.approx(0.48107745025317655, rel=1e-12)
    # s=b=1: 2 ln 2 - 1 = 0.386294361, times 2 = 0.772588722 -> Z = 0.87896
    assert asimov_significance(1.0, 1.0) == pytest.approx(math.sqrt(4 * math.log(2) - 2), rel=1e-12)


def test_asimov_is_elementwise_and_zero_without_signal_or_background():
    z = asimov_significance(np.array([10.0, 0.0, -1.0, 5.0, 5.0]), np.array([100.0, 100.0, 100.0, 0.0, -2.0]))
    assert z.shape == (5,)
    assert z[0] == pytest.approx(0.9839916447569484)
    assert np.all(z[1:] == 0.0)


@pytest.mark.parametrize("s, b", [(1.0, 1e10), (3.0, 1e6), (0.01, 1e4), (1e-6, 1.0)])
def test_asimov_large_background_limit_is_s_over_sqrt_b(s, b):
    # Z = s/sqrt(b) (1 - s/(6b) + ...): relative deviation ~ s/(6b)
    assert asimov_significance(s, b) == pytest.approx(s / math.sqrt(b), rel=max(s / b, 1e-12))
    assert asimov_significance(s, b) < s / math.sqrt(b)


# ---------------------------------------------------------------- weighted quantiles
def test_weighted_quantile_hand_values():
    # hazen: mid-point probabilities p = (C - w/2)/W
    assert weighted_quantile([1, 2, 3, 4], [1, 1, 1, 1], 0.5) == pytest.approx(2.5)
    # values 0, 10 with weights 3, 1: p = 1.5/4, 3.5/4 = 0.375, 0.875; q=0.5 -> 10 * 0.125/0.5 = 2.5
    assert weighted_quantile([10, 0], [1, 3], 0.5) == pytest.approx(2.5)
    assert weighted_quantile([10, 0], [1, 3], [0.0, 0.2, 0.9, 1.0]).tolist() == [0.0, 0.0, 10.0, 10.0]
    # inverted_cdf: smallest value whose cumulative fraction reaches q; C/W = .75, 1
    assert weighted_quantile([10, 0], [1, 3], [0.75, 0.7501], method="inverted_cdf").tolist() == [0.0, 10.0]
    # weights <= 0 are ignored
    assert weighted_quantile([1, 2, 3, 100], [1, 1, 1, -5], 0.5) == pytest.approx(2.0)
    assert weighted_quantile([1, 2, 3, 100], [1, 1, 1, 0], 1.0) == pytest.approx(3.0)


def test_weighted_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    v, w, q = rng.normal(size=101), rng.random(101), np.linspace(0, 1, 17)
    np.testing.assert_allclose(weighted_quantile(v, np.ones(101), q), np.quantile(v, q, method="hazen"))
    np.testing.assert_allclose(
        weighted_quantile(v, w, q, method="inverted_cdf"), np.quantile(v, q, weights=w, method="inverted_cdf")
    )


def test_weighted_quantile_rejects_bad_input():
    with pytest.raises(ValueError, match="q must lie"):
        weighted_quantile([1, 2], [1, 1], 1.5)
    with pytest.raises(ValueError, match="positive weight"):
        weighted_quantile([1, 2], [0, -1], 0.5)
    with pytest.raises(ValueError, match="method"):
        weighted_quantile([1, 2], [1, 1], 0.5, method="linear")


# ---------------------------------------------------------------- equal-signal bins
def test_equal_signal_edges_split_equal_weights_exactly():
    rng = np.random.default_rng(1)
    score = rng.random(1200)
    sig = np.arange(1200) < 800
    edges = equal_signal_bin_edges(score, np.ones(1200), sig, n_bins=8)
    assert edges.shape == (9,) and edges[0] == -np.inf and edges[-1] == np.inf and np.all(np.diff(edges) > 0)
    counts = np.bincount(bin_index(score[sig], edges), minlength=8)
    assert counts.tolist() == [100] * 8


def test_equal_signal_edges_split_weighted_signal_equally():
    rng = np.random.default_rng(2)
    score, w = rng.random(5000), rng.exponential(1.0, 5000)
    sig = rng.random(5000) < 0.5
    edges = equal_signal_bin_edges(score, w, sig, n_bins=8)
    per_bin = np.bincount(bin_index(score[sig], edges), weights=w[sig], minlength=8)
    total = w[sig].sum()
    # every cumulative boundary lies within one event weight of k/8 of the signal
    np.testing.assert_allclose(np.cumsum(per_bin)[:-1], total * np.arange(1, 8) / 8, atol=w[sig].max())
    np.testing.assert_allclose(per_bin, total / 8, rtol=0.02)


def test_bins_are_right_closed():
    edges = np.array([-np.inf, 0.4, 0.7, np.inf])
    assert bin_index(np.array([0.1, 0.4, 0.41, 0.7, 0.9]), edges).tolist() == [0, 0, 1, 1, 2]


def test_a_tied_block_of_scores_forms_the_highest_bin_it_spans():
    """30 % of the signal saturated at exactly 1: the top two inner edges are 1, and the block is the top bin
    (the paper's code keeps it there), the bins between stay empty; untied edges stay right-closed."""
    rng = np.random.default_rng(4)
    score = np.concatenate([rng.uniform(0, 0.99, 700), np.ones(300)])
    sig = np.ones(1000, bool)
    edges = equal_signal_bin_edges(score, np.ones(1000), sig, n_bins=8)
    assert edges[6] == edges[7] == 1.0
    counts = np.bincount(bin_index(score, edges), minlength=8)
    assert counts[7] == 300 and counts[6] == 0 and counts[:6].sum() == 700
    assert bin_index(np.array([edges[3]]), edges).tolist() == [2]  # an untied edge: right-closed
    middle = np.array([-np.inf, 0.2, 0.5, 0.5, 0.5, 0.8, np.inf])
    assert bin_index(np.array([0.2, 0.5, 0.50001, 0.8]), middle).tolist() == [0, 4, 4, 4]


# ---------------------------------------------------------------- binned significance
def test_binned_significance_hand_sample():
    # (score, mass, weight); 4 signal events of weight 0.5 -> signal-score median edge at 0.4 (cum. 1.0 of
    # 2.0)
    signal = [(0.2, 124.0, 0.5), (0.4, 126.0, 0.5), (0.6, 123.0, 0.5), (0.8, 125.0, 0.5)]
    background = [
        (0.1, 125.0, 2.0),  # bin 0, in window [124, 126]
        (0.3, 126.0, 1.0),  # bin 0, on the (closed) window edge
        (0.35, 127.0, 5.0),  # bin 0, outside the window
        (0.4, 124.0, 1.0),  # score on the edge -> bin 0 (right-closed), in window
        (0.45, 124.0, 3.0),  # bin 1, in window [123, 125]
        (0.9, 122.9, 4.0),  # bin 1, outside
        (0.7, 125.0, 2.0),  # bin 1, in window
    ]
    rows = np.array(signal + background)
    sig = np.arange(len(rows)) < len(signal)
    total, bins = binned_significance(rows[:, 0], rows[:, 1], rows[:, 2], sig, n_bins=2)
    # With 2 signal events per bin the 5 % / 95 % (hazen) quantiles are the bin's lowest / highest mass.
    assert [b["edges"] for b in bins] == [(-np.inf, 0.4), (0.4, np.inf)]
    assert [b["window"] for b in bins] == [(124.0, 126.0), (123.0, 125.0)]
    assert [(b["s"], b["b"]) for b in bins] == [(1.0, 4.0), (1.0, 5.0)]
    z0 = math.sqrt(2 * (5 * math.log(1.25) - 1))  # 0.48107745
    z1 = math.sqrt(2 * (6 * math.log(1.2) - 1))  # 0.43342667
    assert [b["z"] for b in bins] == pytest.approx([z0, z1], rel=1e-12)
    assert total == pytest.approx(math.hypot(z0, z1), rel=1e-12)  # 0.64752930


def _authors_bin_error(s: float, b: float, s_err: float, b_err: float) -> float:
    """The paper's code (jaebak/EventClassifierTransformer, EvaluateModel.py, calculate_significance),
    verbatim:
    significance_errs.append(math.sqrt(1/(significances[-1]**2)*((nevents_signal/nevents_background)**2)*(bin_s_err**2)
        + 1/(significances[-1]**2)/4*((nevents_signal/nevents_background)**4)*(bin_b_err**2)))"""
    z = math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))
    return math.sqrt(1 / (z**2) * ((s / b) ** 2) * (s_err**2) + 1 / (z**2) / 4 * ((s / b) ** 4) * (b_err**2))


def test_mc_stat_uncertainty_of_the_hand_sample_follows_the_authors_formula():
    # the sample of test_binned_significance_hand_sample
    signal = [(0.2, 124.0, 0.5), (0.4, 126.0, 0.5), (0.6, 123.0, 0.5), (0.8, 125.0, 0.5)]
    background = [
        (0.1, 125.0, 2.0),
        (0.3, 126.0, 1.0),
        (0.35, 127.0, 5.0),
        (0.4, 124.0, 1.0),
        (0.45, 124.0, 3.0),
        (0.9, 122.9, 4.0),
        (0.7, 125.0, 2.0),
    ]
    rows = np.array(signal + background)
    sig = np.arange(len(rows)) < len(signal)
    out = binned_significance_detail(rows[:, 0], rows[:, 1], rows[:, 2], sig, n_bins=2)
    bins = out["bins"]
    # bin 0 window [124, 126]: signal 0.5 + 0.5, background 2 + 1 + 1 (the 5.0 at 127 GeV is outside)
    # bin 1 window [123, 125]: signal 0.5 + 0.5, background 3 + 2 (the 4.0 at 122.9 GeV is outside)
    assert [(b["s_sumw2"], b["b_sumw2"]) for b in bins] == [(0.5, 6.0), (0.5, 13.0)]
    assert [(b["n_s_mc"], b["n_b_mc"]) for b in bins] == [(2, 3), (2, 2)]
    e0 = _authors_bin_error(1.0, 4.0, math.sqrt(0.5), math.sqrt(6.0))  # 0.40043020
    e1 = _authors_bin_error(1.0, 5.0, math.sqrt(0.5), math.sqrt(13.0))  # 0.36625591
    assert [b["z_mc_err"] for b in bins] == pytest.approx([e0, e1], rel=1e-12)
    assert [b["z_mc_err"] for b in bins] == pytest.approx(
        [0.40043019578531686, 0.36625590503329253], rel=1e-12
    )
    # the total adds the bins' errors in quadrature, as the authors' code
    assert out["significance_mc_err"] == pytest.approx(math.hypot(e0, e1), rel=1e-12)  # 0.54266724
    assert out["significance"] == pytest.approx(math.hypot(0.48107745025317655, 0.4334266738859785), rel=1e-9)
    # binned_significance keeps its (total, bins) result, the same numbers
    total, same_bins = binned_significance(rows[:, 0], rows[:, 1], rows[:, 2], sig, n_bins=2)
    assert total == out["significance"] and same_bins == bins
    assert low_background_mc_bins(bins, 3) == [1] and low_background_mc_bins(bins, 20) == [0, 1]
    assert low_background_mc_bins(bins, 2) == []


def test_significance_mc_error_limits():
    # their Z = 0 branch: no background -> no error
    assert significance_mc_error(1.0, 0.0, 0.5, 0.0) == 0.0
    assert significance_mc_error(1.0, -1.0, 0.5, 1.0) == 0.0
    # s = 0 (their code divides by zero): the limit of the s/sqrt(b) propagation, sigma_s / sqrt(b)
    assert significance_mc_error(0.0, 4.0, 0.25, 3.0) == pytest.approx(0.25)
    # s << b: Asimov Z -> s / sqrt(b), the error -> sqrt(sigma_s^2 / b + s^2 sigma_b^2 / (4 b^3))
    s, b, s2, b2 = 1e-3, 1e4, 1e-4, 50.0
    assert significance_mc_error(s, b, s2, b2) == pytest.approx(
        math.sqrt(s2 / b + s * s * b2 / (4 * b**3)), rel=1e-6
    )
    # elementwise, equal to the authors' expression wherever it is defined
    s_arr, b_arr = np.array([1.0, 3.0, 10.0]), np.array([4.0, 2.0, 1000.0])
    err = significance_mc_error(s_arr, b_arr, 0.1 * s_arr, 0.2 * b_arr)
    assert err == pytest.approx(
        [
            _authors_bin_error(si, bi, math.sqrt(0.1 * si), math.sqrt(0.2 * bi))
            for si, bi in zip(s_arr, b_arr)
        ],
        rel=1e-12,
    )


def test_mc_stat_uncertainty_scales_as_one_over_sqrt_of_the_mc_events():
    # the same physics with 4x the MC events (weights / 4): about the same Z, half the MC-statistical error
    # (the mass windows' quantile interpolation moves slightly with the copies, hence the tolerances)
    x, mass, weight, sig, _ = toy(1, n_sig=4_000, n_bkg=40_000)
    small = binned_significance_detail(x, mass, weight, sig)
    big = binned_significance_detail(np.tile(x, 4), np.tile(mass, 4), np.tile(weight, 4) / 4, np.tile(sig, 4))
    assert big["significance"] == pytest.approx(small["significance"], rel=0.01)
    assert big["significance_mc_err"] == pytest.approx(small["significance_mc_err"] / 2, rel=0.02)
    four_times = [4 * b["n_b_mc"] for b in small["bins"]]
    assert [b["n_b_mc"] for b in big["bins"]] == pytest.approx(four_times, rel=0.05, abs=8)
    for b in small["bins"] + big["bins"]:  # every bin's error from its own s, b and sums of w^2
        assert b["z_mc_err"] == pytest.approx(
            significance_mc_error(b["s"], b["b"], b["s_sumw2"], b["b_sumw2"])
        )
        assert b["s_sumw2"] <= b["s"] * 1.5 / 100 and b["b_sumw2"] <= b["b"] * 1.5  # w <= 0.015 (signal), 1.5


def test_mass_window_holds_5_to_95_percent_of_the_bin_signal():
    # 100 signal events at m = 1..100: hazen 5 % / 95 % quantiles are 5.5 and 95.5 -> 90 events inside
    mass_sig = np.arange(1.0, 101.0)
    mass_bkg = np.array([5.0, 5.5, 6.0, 95.0, 95.5, 96.0])
    mass = np.concatenate([mass_sig, mass_bkg])
    sig = np.arange(len(mass)) < 100
    total, bins = binned_significance(np.full(len(mass), 0.5), mass, np.ones(len(mass)), sig, n_bins=1)
    assert bins[0]["window"] == (5.5, 95.5)
    assert (bins[0]["s"], bins[0]["b"]) == (90.0, 4.0)
    assert total == pytest.approx(asimov_significance(90.0, 4.0))


def toy(seed: int, n_sig: int = 20_000, n_bkg: int = 200_000):
    """Signal peaked at 125 GeV, flat background; a feature x separating them (overlapping Gaussians)."""
    rng = np.random.default_rng(seed)
    mass = np.concatenate([rng.normal(125.0, 2.0, n_sig), rng.uniform(100.0, 180.0, n_bkg)])
    x = np.concatenate([rng.normal(1.0, 1.0, n_sig), rng.normal(-1.0, 1.0, n_bkg)])
    sig = np.arange(n_sig + n_bkg) < n_sig
    weight = np.where(sig, 0.01, 1.0) * rng.uniform(0.5, 1.5, n_sig + n_bkg)
    return x, mass, weight, sig, rng


def test_separating_score_beats_a_random_one():
    x, mass, weight, sig, rng = toy(3)
    z_good, _ = binned_significance(x, mass, weight, sig)
    z_random, _ = binned_significance(rng.random(len(x)), mass, weight, sig)
    assert z_good > 1.5 * z_random > 0


def test_perfect_separation_leaves_only_the_first_bin_with_background():
    # A score that puts every signal event above every background one leaves bins 1..7 without background;
    # they contribute Z = 0 (b <= 0 convention of the paper's code), so only bin 0 counts.
    x, mass, weight, sig, _ = toy(4, n_sig=800, n_bkg=4000)
    score = np.where(sig, 2.0 + x, -10.0 + x * 0.01)
    total, bins = binned_significance(score, mass, weight, sig)
    assert all(b["b"] == 0.0 and b["z"] == 0.0 and b["s"] > 0 for b in bins[1:])
    assert bins[0]["b"] > 0 and total == pytest.approx(bins[0]["z"])


def test_significance_is_invariant_under_monotonic_score_transform():
    x, mass, weight, sig, _ = toy(5, n_sig=3000, n_bkg=30000)
    score = 1.0 / (1.0 + np.exp(-x))
    total, bins = binned_significance(score, mass, weight, sig)
    for transformed in (np.log(score / (1 - score)), score**3, np.exp(5 * score)):
        total_t, bins_t = binned_significance(transformed, mass, weight, sig)
        assert total_t == pytest.approx(total, rel=1e-12)
        assert [(b["s"], b["b"], b["window"]) for b in bins_t] == [
            (b["s"], b["b"], b["window"]) for b in bins
        ]


def test_binned_significance_rejects_nan_scores():
    with pytest.raises(ValueError, match="finite"):
        binned_significance(np.array([0.1, np.nan]), np.array([125.0, 125.0]), np.ones(2), np.array([1, 0]))


# ---------------------------------------------------------------- effective MC events and variance shares
def test_effective_events_hand_values():
    def from_weights(w):
        w = np.asarray(w, dtype=float)
        return effective_events(w.sum(), np.sum(w * w))

    assert from_weights(np.full(40, 0.3)) == pytest.approx(40.0)
    # one event of weight 10 among 10 of weight 1: (20)^2 / (100 + 10) = 3.636...
    assert from_weights(np.r_[np.ones(10), 10.0]) == pytest.approx(400 / 110)
    assert from_weights(np.array([])) == 0.0
    assert from_weights([2.0]) == pytest.approx(1.0)
    # histograms are summed first: the same as the sums
    assert effective_events(np.array([12.0, 8.0]), np.array([105.0, 5.0])) == pytest.approx(400 / 110)


def test_variance_shares_name_the_sample_that_limits_each_bin():
    """Two background samples with the same total weight: 1000 events of weight 1 and 10 of weight 100. The
    heavy sample holds half the weight but 100 / 101 of the sum of squared weights in every bin."""
    rng = np.random.default_rng(3)
    n_sig, light, heavy = 4000, 1000, 10
    score = np.r_[rng.random(n_sig), rng.random(light), rng.random(heavy)]
    mass = np.full(score.size, 125.0)
    weight = np.r_[np.ones(n_sig), np.ones(light), np.full(heavy, 100.0)]
    sig = np.r_[np.ones(n_sig), np.zeros(light + heavy)].astype(bool)
    group = np.r_[np.zeros(n_sig), np.full(light, 7), np.full(heavy, 9)].astype(int)
    detail = binned_significance_detail(score, mass, weight, sig, n_bins=1)
    (shares,) = background_variance_shares(detail["bins"], score, mass, weight, sig, group)
    assert set(shares) == {7, 9}  # background groups only
    assert shares[9]["sumw"] == pytest.approx(0.5) and shares[7]["sumw"] == pytest.approx(0.5)
    assert shares[9]["sumw2"] == pytest.approx(100 / 101) and shares[7]["sumw2"] == pytest.approx(1 / 101)
    assert shares[7]["n_eff"] == pytest.approx(light) and shares[9]["n_eff"] == pytest.approx(heavy)
    assert detail["bins"][0]["n_b_eff"] == pytest.approx(2000**2 / (1000 + 10 * 100**2))
    # per bin, the shares add up to one and follow the bins' edges and windows
    detail = binned_significance_detail(score, mass, weight, sig, n_bins=4)
    shares = background_variance_shares(detail["bins"], score, mass, weight, sig, group)
    for b, per_bin in zip(detail["bins"], shares):
        assert sum(v["sumw"] for v in per_bin.values()) == pytest.approx(1.0)
        assert sum(v["sumw2"] for v in per_bin.values()) == pytest.approx(1.0)
        assert sum(v["n_eff"] for v in per_bin.values()) >= b["n_b_eff"] - 1e-9
    with pytest.raises(ValueError, match="group"):
        background_variance_shares(detail["bins"], score, mass, weight, sig, group[:-1])
