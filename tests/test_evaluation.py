"""Tests for hzg.results.evaluation: every Table I metric on constructed inputs with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from hzg.results import evaluation as ev
from hzg.results import tables
from hzg import metrics, registry
from hzg.data import features

CFG = {
    "n_score_bins": 8,
    "mass_bins": {"n": 80, "range": [100.0, 180.0]},
    "window": [120.0, 130.0],
    "overtraining_test": "chi2_ww",
    "overtraining_bins": 20,
    "random_seed": 7,
}
EDGES = ev.mass_edges(CFG["mass_bins"])


def toy_events(n_sig: int, n_bkg: int, seed: int = 0, separation: float = 1.0) -> pd.DataFrame:
    """Signal: mllg ~ N(125, 2); background: falling exponential in 100-180 GeV; a Gaussian score
    independent of mass; three equal random splits; unit weights scaled to 10 signal and 1e4 background
    events."""
    rng = np.random.default_rng(seed)
    m_sig = np.clip(rng.normal(125.0, 2.0, n_sig), 100.1, 179.9)
    m_bkg = 100.0 + rng.exponential(30.0, 3 * n_bkg)
    m_bkg = m_bkg[m_bkg < 180.0][:n_bkg]
    y = np.r_[np.ones(n_sig), np.zeros(len(m_bkg))].astype(np.int8)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, len(y)) + separation * (2 * y - 1))))
    weight = np.where(y == 1, 10.0 / n_sig, 1e4 / len(m_bkg))
    return pd.DataFrame(
        {
            "score": score,
            "mllg": np.r_[m_sig, m_bkg],
            "weight": weight,
            "is_signal": y,
            "split": rng.integers(0, 3, len(y)).astype(np.int8),
        }
    )


# ---------------------------------------------------------------- AUC
def test_auc_perfect_separation_inverted_and_window():
    mass = np.full(6, 125.0)
    y = np.array([0, 0, 0, 1, 1, 1])
    w = np.ones(6)
    assert ev.window_auc(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), mass, w, y, (120, 130)) == pytest.approx(
        1.0
    )
    assert ev.window_auc(np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), mass, w, y, (120, 130)) == pytest.approx(
        0.0
    )
    # events outside 120-130 GeV do not count, even when they would spoil the separation
    mass2 = np.r_[mass, 110.0, 150.0]
    score2 = np.r_[0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.99, 0.01]
    assert ev.window_auc(score2, mass2, np.ones(8), np.r_[y, 0, 1], (120, 130)) == pytest.approx(1.0)


def test_auc_sets_negative_weights_to_zero_and_matches_hand_value():
    mass = np.full(5, 125.0)
    y = np.array([0, 0, 1, 1, 0])
    score = np.array([0.1, 0.6, 0.5, 0.9, 0.95])
    # the negative-weight background at 0.95 counts as weight 0; left: bkg .1 and .6, sig .5 and .9
    # pairs (sig > bkg): (.5,.1), (.9,.1), (.9,.6) of 4 -> 0.75
    w = np.array([1.0, 1.0, 1.0, 1.0, -3.0])
    assert ev.window_auc(score, mass, w, y, (120, 130)) == pytest.approx(0.75)


def test_auc_of_one_class_is_refused():
    with pytest.raises(ValueError, match="only one class"):
        ev.window_auc(
            np.array([0.1, 0.2]), np.array([125.0, 125.0]), np.ones(2), np.array([1, 1]), (120, 130)
        )


# ---------------------------------------------------------------- background mass correlation
def test_shape_correlation_hand_values():
    assert ev.shape_correlation(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.5)
    assert ev.shape_correlation(np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])) == 0.0
    # a score bin without background (NaN row) is left out
    assert ev.shape_correlation(np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0]])) == pytest.approx(0.5)
    assert math.isnan(ev.shape_correlation(np.array([[1.0, 0.0], [np.nan, np.nan]])))


def test_identical_background_shapes_in_every_score_bin_give_zero():
    # every score value carries the same mass grid: every score bin has the same mllg histogram
    grid = np.linspace(100.5, 179.5, 80)
    score = np.repeat(np.linspace(0, 1, 64), 80)
    mass = np.tile(grid, 64)
    sig_score = np.linspace(0, 1, 800)
    s = np.r_[sig_score, score]
    m = np.r_[np.full(800, 125.0), mass]
    y = np.r_[np.ones(800), np.zeros(len(score))]
    assert ev.background_correlation(s, m, np.ones(len(s)), y, 8, EDGES) == pytest.approx(0.0, abs=1e-15)


def test_score_independent_of_mass_gives_only_statistical_noise_and_score_equal_mass_a_large_one():
    frame = toy_events(
        50_000, 800_000, seed=1, separation=0.0
    )  # about 100 000 background events per score bin
    s, m, w, y = (frame[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    independent = ev.background_correlation(s, m, w, y, 8, EDGES)
    # multinomial noise of a normalised histogram of N_k events: var = p (1 - p) / N_k per mass bin;
    # across K score bins the expected variance is (K - 1)/K mean_k var, so std <~ its square root
    shapes = ev.background_mass_shapes(s, m, w, y, 8, EDGES)
    n_k = np.bincount(metrics.bin_index(s[y == 0], metrics.equal_signal_bin_edges(s, w, y, 8)), minlength=8)
    p = np.nanmean(shapes, axis=0)
    noise = np.mean(np.sqrt(p * (1 - p) * np.mean(1 / n_k) * 7 / 8))
    assert 0.7 * noise < independent < 1.1 * noise
    assert independent < 0.5e-3
    sculpted = ev.background_correlation(m, m, w, y, 8, EDGES)  # score = mllg: every bin a slice of mass
    assert sculpted > 20 * noise and sculpted > 5e-3


def test_background_mass_shapes_are_normalised_per_score_bin():
    frame = toy_events(2_000, 20_000, seed=2)
    shapes = ev.background_mass_shapes(
        *(frame[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal")), 8, EDGES
    )
    assert shapes.shape == (8, 80)
    np.testing.assert_allclose(shapes.sum(axis=1), 1.0)


# ---------------------------------------------------------------- significance of the random classifier
def test_random_classifier_significance_equals_inclusive_asimov():
    frame = toy_events(200_000, 1_000_000, seed=3)
    s, m, w, y = (frame[c].to_numpy() for c in ("mllg", "mllg", "weight", "is_signal"))
    inclusive, _ = metrics.binned_significance(np.zeros(len(m)), m, w, y.astype(bool), n_bins=1)
    random, _ = metrics.binned_significance(ev.random_scores(len(m), 5), m, w, y.astype(bool), n_bins=8)
    assert random == pytest.approx(inclusive, rel=0.03)
    # and through trial_metrics (test split, weights scaled to the full yield), with the random trial frame
    features = frame.rename(columns={"split": "split_0"})
    res = ev.trial_metrics(ev.random_trial_frame(features, 0, 11), CFG)
    assert res["significance"] == pytest.approx(inclusive, rel=0.06)
    assert res["auc"] == pytest.approx(0.5, abs=0.01)
    assert res["best_epoch"] is None


def test_trial_records_the_mc_stat_uncertainty_and_the_background_mc_per_bin():
    frame = toy_events(3_000, 30_000, seed=5, separation=1.5)
    res = ev.trial_metrics(frame, {**CFG, "min_background_mc": 0})
    test = frame[frame["split"] == registry.TEST]
    s, m, w, y = (test[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    w = ev.scaled_weights(frame)[frame["split"].to_numpy() == registry.TEST]
    detail = metrics.binned_significance_detail(s, m, w, y.astype(bool), n_bins=8)
    assert res["significance"] == detail["significance"]
    assert 0 < res["significance_mc_err"] == detail["significance_mc_err"] < res["significance"]
    bins = res["significance_bins"]
    keys = {"s", "b", "s_sumw2", "b_sumw2", "n_s_mc", "n_b_mc", "z", "z_mc_err"}
    assert len(bins) == 8 and all(keys <= set(b) for b in bins)
    # the raw background MC events of each bin's mass window, counted here by hand
    bkg = ~y.astype(bool)
    counted = [
        int(np.sum(bkg & (s > lo) & (s <= hi) & (m >= m_lo) & (m <= m_hi)))
        for (lo, hi), (m_lo, m_hi) in ((b["edges"], b["window"]) for b in bins)
    ]
    assert res["background_mc_per_bin"] == [b["n_b_mc"] for b in bins] == counted
    assert sum(counted) > 0
    # equal unit weights per class within the split: sum w^2 = w * b
    w_bkg = w[bkg][0]
    assert [b["b_sumw2"] for b in bins] == pytest.approx([w_bkg * b["b"] for b in bins])
    assert res["min_background_mc"] == 0 and res["low_background_mc_bins"] == []
    # equal weights: the effective number of background MC events is the raw number
    assert res["background_mc_effective_per_bin"] == pytest.approx(counted)
    assert "background_mc_by_sample" not in res  # the toy has no sample_id column


def test_trial_records_each_background_sample_share_of_the_mc_variance():
    frame = toy_events(3_000, 30_000, seed=5, separation=1.5)
    bkg = frame["is_signal"].to_numpy() == 0
    heavy = bkg & (np.arange(len(frame)) % 50 == 0)  # 1 background event in 50 from a second sample ...
    frame = frame.assign(
        sample_id=np.where(frame["is_signal"] == 1, 1, np.where(heavy, 3, 2)),
        weight=np.where(heavy, frame["weight"] * 50.0, frame["weight"]),  # ... weighing 50 times more
    )
    res = ev.trial_metrics(frame, {**CFG, "min_background_mc": 0})
    by_sample = res["background_mc_by_sample"]
    # keyed by sample name where the config's names give the id
    named = ev.background_mc_by_sample(
        res["significance_bins"],
        *(frame[c].to_numpy() for c in ("score", "mllg")),
        frame["weight"].to_numpy(),
        frame["is_signal"].to_numpy() == 1,
        frame["sample_id"].map({2: features.sample_id("background"), 3: 3}).to_numpy(),
        ["signal", "background"],
    )
    assert any("background" in b for b in named) and all(set(b) <= {"background", "3"} for b in named)
    assert len(by_sample) == 8
    for per_bin, n_eff in zip(by_sample, res["background_mc_effective_per_bin"]):
        assert set(per_bin) <= {"2", "3"}
        if "3" in per_bin and per_bin["3"]["n_eff"] > 5:
            # half the weight, but 50 / 51 of the variance
            assert per_bin["3"]["sumw2"] > 0.9 > per_bin["3"]["sumw"]
        assert n_eff < sum(v["n_eff"] for v in per_bin.values()) + 1e-9
    json.dumps(res)  # JSON keys are strings


def test_too_few_background_mc_events_warn_and_are_recorded(caplog):
    frame = toy_events(3_000, 30_000, seed=6, separation=1.5)
    with caplog.at_level("WARNING", logger="hzg.results.evaluation"):
        quiet = ev.trial_metrics(frame, {**CFG, "min_background_mc": 0}, label="etn_bce trial 0")
    assert not caplog.records
    counts = quiet["background_mc_per_bin"]
    threshold = sorted(counts)[2] + 1  # the three bins with the fewest background MC events fall below it
    expected = [i for i, n in enumerate(counts) if n < threshold]
    with caplog.at_level("WARNING", logger="hzg.results.evaluation"):
        loud = ev.trial_metrics(frame, {**CFG, "min_background_mc": threshold}, label="etn_bce trial 0")
    assert loud["low_background_mc_bins"] == expected and len(expected) >= 3
    assert loud["min_background_mc"] == threshold
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "etn_bce trial 0" in record.getMessage()
    assert f"fewer than {threshold}" in record.getMessage() and str(expected) in record.getMessage()
    # the default threshold is 20 when the config lacks the key
    assert ev.trial_metrics(frame, CFG)["min_background_mc"] == metrics.MIN_BACKGROUND_MC == 20


def test_scaled_weights_restore_the_full_yield_of_the_test_split():
    frame = toy_events(3_000, 30_000, seed=4)
    w = ev.scaled_weights(frame)
    test = frame["split"].to_numpy() == 2
    for cls in (0, 1):
        sel = frame["is_signal"].to_numpy() == cls
        assert w[test & sel].sum() == pytest.approx(frame["weight"][sel].sum())


# ---------------------------------------------------------------- overtraining tests
def test_chi2_ww_hand_value_and_unit_weight_limit():
    # W1 = 30, W2 = 40; bin 1: (40*10 - 30*20)^2 / (30^2*20 + 40^2*10) = 40000/34000; bin 2: 40000/50000
    r = ev.chi2_ww(
        np.array([10.0, 20.0]), np.array([10.0, 20.0]), np.array([20.0, 20.0]), np.array([20.0, 20.0])
    )
    assert r["chi2"] == pytest.approx(40000 / 34000 + 40000 / 50000)
    assert r["ndf"] == 1
    assert r["p_value"] == pytest.approx(stats.chi2.sf(r["chi2"], 1))
    # unit weights and equal totals: Pearson's chi2 of the 2 x k contingency table
    a, b = np.array([30.0, 50.0, 20.0, 0.0]), np.array([40.0, 35.0, 25.0, 0.0])
    r = ev.chi2_ww(a, a, b, b)
    pearson = stats.chi2_contingency(np.array([a[:3], b[:3]]), correction=False)
    assert r["chi2"] == pytest.approx(pearson.statistic)
    assert r["ndf"] == 2  # the bin empty in both histograms does not count
    assert np.isnan(r["residuals"][3]) and np.all(np.isfinite(r["residuals"][:3]))


def test_chi2_ww_is_invariant_under_the_scale_of_each_histogram():
    rng = np.random.default_rng(5)
    w1, w2 = rng.random(15) * 10, rng.random(15) * 10
    base = ev.chi2_ww(w1, w1 * 0.3, w2, w2 * 0.2)
    scaled = ev.chi2_ww(7 * w1, 49 * w1 * 0.3, w2 / 3, w2 * 0.2 / 9)
    assert scaled["chi2"] == pytest.approx(base["chi2"])


@pytest.mark.parametrize("method", ["chi2_ww", "ks"])
def test_overtraining_p_value_is_uniform_for_identical_distributions_and_tiny_for_shifted_ones(method):
    rng = np.random.default_rng(6)
    edges = np.linspace(-4, 4, 21)
    p = [
        ev.compare_train_test(
            rng.normal(size=1000),
            np.full(1000, 0.3),
            rng.normal(size=1000),
            np.full(1000, 0.7),
            edges,
            method,
        )["p_value"]
        for _ in range(300)
    ]
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.4 < np.mean(p) < 0.6
    shifted = ev.compare_train_test(
        rng.normal(size=5000), np.ones(5000), rng.normal(0.3, 1, 5000), np.ones(5000), edges, method
    )
    assert shifted["p_value"] < 1e-6


def test_overtraining_of_a_trial_combines_the_classes():
    frame = toy_events(6_000, 60_000, seed=7)
    res = ev.overtraining(frame, (120, 130), 20, "chi2_ww")
    chi2 = res["signal"]["chi2"] + res["background"]["chi2"]
    ndf = res["signal"]["ndf"] + res["background"]["ndf"]
    assert res["p_value"] == pytest.approx(stats.chi2.sf(chi2, ndf))
    assert res["p_value"] > 1e-3  # train and test come from one distribution
    # an overtrained classifier: training events pushed to the extremes
    train = frame["split"] == 0
    y = frame["is_signal"] == 1
    over = frame.assign(
        score=np.where(
            train, np.where(y, 1 - 0.5 * (1 - frame["score"]), 0.5 * frame["score"]), frame["score"]
        )
    )
    assert ev.overtraining(over, (120, 130), 20, "chi2_ww")["p_value"] < 1e-6
    with pytest.raises(ValueError, match="overtraining_test"):
        ev.overtraining(frame, (120, 130), 20, "anderson")


# ---------------------------------------------------------------- aggregation and Table I
def test_mean_and_sample_std_over_trials():
    assert ev.aggregate([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3, "n_trials": 3}
    assert ev.aggregate([1.0, None, 3.0, float("nan")]) == {
        "mean": 2.0,
        "std": pytest.approx(math.sqrt(2)),
        "n": 2,
        "n_trials": 4,
    }
    assert ev.aggregate([None, None]) == {"mean": None, "std": None, "n": 0, "n_trials": 2}
    assert ev.aggregate([4.0]) == {"mean": 4.0, "std": None, "n": 1, "n_trials": 1}
    assert tables.format_mean_std({"mean": 1.5234, "std": 0.0312}, 2) == "1.52 ± 0.03"
    assert tables.format_mean_std({"mean": 0.756, "std": 0.004}, 1, scale=100) == "75.6 ± 0.4"
    assert tables.format_mean_std({"mean": 4.0, "std": None}, 0) == "4"
    assert tables.format_mean_std({"mean": None, "std": None}, 0) == "N.A."


def test_table_one_shows_how_many_trials_a_mean_is_over_and_the_log_says_why(caplog):
    trials = [
        {
            "trial": t,
            "significance": z,
            "significance_mc_err": 0.1,
            "auc": 0.75,
            "bkg_correlation": 1e-3,
            "best_epoch": None,
            "overtraining_p": 0.5,
        }
        for t, z in enumerate([1.42, float("nan"), 1.62])
    ]
    summary = ev.summarise(trials, "etn_bce")
    assert summary["significance"]["n"] == 2 and summary["significance"]["n_trials"] == 3
    assert (
        "etn_bce: significance is NaN or missing in trial(s) [1]; its mean and std are over the other 2 of 3"
        in caplog.text
    )
    assert "best_epoch" not in caplog.text  # N.A. in every trial (a tree): nothing dropped, nothing to say
    bce = {"kind": "bce", "disco_lambda": 0.0}
    table = tables.table_one([("etn", bce, {"summary": summary})])
    assert table.iloc[0]["Signi."] == "1.52 ± 0.14 (2/3)"
    assert table.iloc[0]["AUC (%)"] == "75.0 ± 0.0"  # all trials: no count
    assert table.iloc[0]["Best epoch"] == "N.A."
    assert "(n/N)" in tables.table_note([("etn", bce, {"summary": summary})])
    full = ev.summarise([{**t, "significance": 1.5} for t in trials])
    assert "(n/N)" not in tables.table_note([("etn", bce, {"summary": full})])


def _summary(z: float, epoch: float | None) -> dict:
    stat = {"mean": z, "std": 0.01}
    return {
        "summary": {
            "significance": stat,
            "auc": {"mean": 0.75, "std": 0.002},
            "bkg_correlation": {"mean": 1e-3, "std": 1e-4},
            "best_epoch": {"mean": epoch, "std": 5.0 if epoch else None},
            "overtraining_p": {"mean": 0.4, "std": 0.2},
        }
    }


def test_table_one_has_the_paper_columns_labels_and_order():
    bce, ext = {"kind": "bce", "disco_lambda": 0.0}, {"kind": "extreme", "disco_lambda": 0.0}
    bce_d, ext_d = {"kind": "bce", "disco_lambda": 10.0}, {"kind": "extreme", "disco_lambda": 50.0}
    rows = [
        ("etn", bce_d, _summary(1.52, 670)),
        ("dfnn", ext, _summary(1.46, 487)),
        ("xgboost", bce, _summary(1.49, None)),
        ("etn", bce, _summary(1.51, 570)),
        ("random", None, _summary(0.5, None)),
        ("fnn", ext_d, _summary(1.46, 327)),
        ("bdt", bce, _summary(1.17, None)),
    ]
    table = tables.table_one(rows)
    assert list(table.columns) == list(tables.TABLE_COLUMNS)
    assert list(zip(table["Technique"], table["Loss"])) == [
        ("Random", "N.A."),
        ("BDT", "N.A."),
        ("XGBoost", "N.A."),
        ("DFNN", "Ext"),
        ("ETN", "BCE"),
        ("FNN", "Ext+DisCo"),
        ("ETN", "BCE+DisCo"),
    ]
    first = table.iloc[-1]
    assert first["Signi."] == "1.52 ± 0.01" and first["AUC (%)"] == "75.0 ± 0.2"
    assert first["Bkg. Corr. (1e-3)"] == "1.0 ± 0.1" and first["Best epoch"] == "670 ± 5"
    assert table.iloc[1]["Best epoch"] == "N.A."


def test_table_one_beside_the_paper_sets_each_row_beside_the_papers_and_divides_disco_by_bce(tmp_path):
    """The paper's Table I beside each run's row (N.A. where the paper has no such row), the significance
    ratio, and DisCo's decorrelation: a DisCo row's correlation over its technique's without DisCo, raw and
    above noise, beside the paper's (1.0 / 2.3 for the ETN)."""

    def summary(z: float, corr: float, excess: float | None) -> dict:
        res = _summary(z, 50)
        res["summary"]["bkg_correlation"] = {"mean": corr, "std": 1e-4}
        res["summary"]["bkg_correlation_excess"] = {"mean": excess, "std": 1e-4 if excess else None}
        return res

    bce, bce_d = {"kind": "bce", "disco_lambda": 0.0}, {"kind": "bce", "disco_lambda": 5.0}
    rows = [
        ("etn", bce_d, summary(1.1, 2.0e-3, 1.1e-3)),
        ("etn_objects", bce, summary(1.26, 3.5e-3, 3.3e-3)),
        ("etn", bce, summary(1.2, 2.7e-3, 2.5e-3)),
        ("dfnn", bce_d, summary(1.0, 2.2e-3, None)),  # no BCE run of the DFNN, no excess
        ("random", None, summary(0.5, 0.9e-3, 0.0)),
    ]
    table = tables.paper_comparison(rows).set_index(["Technique", "Loss"])
    assert list(table.reset_index().columns) == list(tables.PAPER_COLUMNS)
    assert list(table.index) == [
        ("Random", "N.A."),
        ("ETN", "BCE"),
        ("ETN+objects", "BCE"),
        ("DFNN", "BCE+DisCo"),
        ("ETN", "BCE+DisCo"),
    ]
    etn, disco = table.loc[("ETN", "BCE")], table.loc[("ETN", "BCE+DisCo")]
    assert etn[["Signi.", "Signi., paper", "Signi. / paper", "AUC (%), paper"]].tolist() == [
        "1.20 ± 0.01",
        "1.51",
        "0.79",
        "76.2",
    ]
    assert etn["Bkg. Corr. DisCo / BCE"] == "" and etn["Bkg. Corr. (1e-3), paper"] == "2.3"
    assert disco["Bkg. Corr. (1e-3)"] == "2.0 ± 0.1" and disco["Bkg. Corr. above noise (1e-3)"] == "1.1 ± 0.1"
    assert disco[["Bkg. Corr. DisCo / BCE", "Bkg. Corr. DisCo / BCE, above noise"]].tolist() == [
        "0.74",
        "0.44",
    ]
    assert disco["Bkg. Corr. DisCo / BCE, paper"] == "0.43"
    assert table.loc[("DFNN", "BCE+DisCo"), "Bkg. Corr. DisCo / BCE, paper"] == "0.50"
    assert table.loc[("DFNN", "BCE+DisCo"), "Bkg. Corr. DisCo / BCE"] == "N.A."  # nothing to divide by
    assert table.loc[("ETN+objects", "BCE")][["Signi., paper", "Signi. / paper"]].tolist() == ["N.A.", "N.A."]
    assert table.loc[("Random", "N.A."), "Signi. / paper"] == "1.00"
    # two ETN BCE runs (another learning rate, say): both rows stay, and no DisCo ratio picks one of them
    twice = tables.paper_comparison(rows + [("etn", bce, summary(1.3, 2.9e-3, 2.6e-3))])
    assert len(twice) == len(rows) + 1
    assert (
        twice.set_index(["Technique", "Loss"]).loc[("ETN", "BCE+DisCo"), "Bkg. Corr. DisCo / BCE"] == "N.A."
    )
    # the note names every column
    for column in tables.PAPER_COLUMNS[2:]:
        assert column in tables.PAPER_NOTE, column


def test_table_one_shows_the_mc_stat_uncertainty_and_marks_too_few_background_mc_events(tmp_path):

    bce = {"kind": "bce", "disco_lambda": 0.0}
    good, low = _summary(1.52, 570), _summary(1.49, None)
    good["summary"]["significance_mc_err"] = {"mean": 0.0312, "std": 0.002}
    good["summary"]["background_mc"] = {"threshold": 20, "min_count": 150, "low_trials": []}
    low["summary"]["significance_mc_err"] = {"mean": 0.25, "std": 0.01}
    low["summary"]["background_mc"] = {"threshold": 20, "min_count": 7, "low_trials": [1, 2]}
    old = _summary(0.5, None)  # a metrics.json from before: no MC-stat keys
    results = [("etn", bce, good), ("xgboost", bce, low), ("random", None, old)]
    table = tables.table_one(results)
    assert list(table.columns) == list(tables.TABLE_COLUMNS) and "Signi. MC stat." in table.columns
    rows = {r["Technique"]: r for _, r in table.iterrows()}
    assert rows["ETN"]["Signi."] == "1.52 ± 0.01" and rows["ETN"]["Signi. MC stat."] == "0.03"
    assert rows["XGBoost"]["Signi."] == "1.49 ± 0.01 †" and rows["XGBoost"]["Signi. MC stat."] == "0.25"
    assert rows["Random"]["Signi."] == "0.50 ± 0.01" and rows["Random"]["Signi. MC stat."] == "N.A."
    note = tables.table_note(results)
    assert (
        "† " not in tables.table_note([results[0]])
        and "fewer than 20 background MC events (fewest: 7)" in note
    )
    paths = tables.write_table(table, tmp_path / "table1", caption="Table I", note=note)
    md, csv, tex = (path.read_text() for path in paths)
    assert "1.49 ± 0.01 †" in md and md.rstrip().endswith(note) and "1.49 ± 0.01 †" in csv and note not in csv
    assert "| 0.03 " in md and "| 0.25 " in md  # text cells are not re-rounded by the Markdown writer
    assert "\\footnotesize" in tex and tex.index("fewest: 7") < tex.index("\\end{table}")
    assert "sum of w²" in tex and "\\_" not in note


# ---------------------------------------------------------------- one run end to end
def test_best_epoch_from_checkpoints(tmp_path):
    torch.save({"kind": "neural", "best_epoch": 35}, tmp_path / "nn.pt")
    torch.save({"kind": "xgboost", "best_epoch": 100}, tmp_path / "xgb.pt")
    assert ev.best_epoch(tmp_path / "nn.pt") == 35
    assert ev.best_epoch(tmp_path / "xgb.pt") is None


def test_evaluate_run_writes_strict_json_with_every_trial_and_the_summary(tmp_path):
    paths, ckpts = [], []
    for t in range(3):
        frame = toy_events(3_000, 30_000, seed=10 + t, separation=1.5)
        frame.to_parquet(tmp_path / f"s{t}.parquet")
        torch.save({"kind": "neural", "best_epoch": 10 * (t + 1)}, tmp_path / f"c{t}.pt")
        paths.append(tmp_path / f"s{t}.parquet")
        ckpts.append(tmp_path / f"c{t}.pt")
    res = ev.evaluate_run(paths, ckpts, CFG, {"model": "etn", "loss": "bce"})
    json.dumps(res, allow_nan=False)
    assert res["n_trials"] == 3 and [t["trial"] for t in res["trials"]] == [0, 1, 2]
    assert res["summary"]["best_epoch"] == {"mean": 20.0, "std": 10.0, "n": 3, "n_trials": 3}
    aucs = [t["auc"] for t in res["trials"]]
    assert res["summary"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert res["summary"]["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1))
    # Gaussian scores 2 x 1.5 sigma apart: AUC = Phi(3 / sqrt(2))
    assert res["summary"]["auc"]["mean"] == pytest.approx(stats.norm.cdf(3 / math.sqrt(2)), abs=0.01)
    assert res["summary"]["significance"]["mean"] > 1.2 * 10 / math.sqrt(1e4 * 0.1)  # beats no classifier
    # the MC-statistical uncertainty and the background MC events per bin, per trial and summarised
    errs = [t["significance_mc_err"] for t in res["trials"]]
    assert res["summary"]["significance_mc_err"]["mean"] == pytest.approx(np.mean(errs)) and min(errs) > 0
    counts = [t["background_mc_per_bin"] for t in res["trials"]]
    assert all(len(c) == 8 for c in counts)
    assert res["summary"]["background_mc"] == {
        "threshold": 20,
        "min_count": min(map(min, counts)),
        "min_effective": min(min(t["background_mc_effective_per_bin"]) for t in res["trials"]),
        "low_trials": [t for t, c in enumerate(counts) if min(c) < 20],
    }
    assert "background_mc_by_sample" not in res["trials"][0]  # these files have no sample_id
    # files with the event's sample id: each background sample's share of every bin, by name
    for t, path in enumerate(paths):
        frame = pd.read_parquet(path)
        frame.assign(sample_id=np.where(frame["is_signal"] == 1, 5, features.sample_id("bkg"))).to_parquet(
            path
        )
    res = ev.evaluate_run(paths, ckpts, CFG, {"model": "etn", "loss": "bce"}, sample_names=["bkg"])
    for trial in res["trials"]:
        by_sample = trial["background_mc_by_sample"]
        assert len(by_sample) == 8 and sum(map(len, by_sample)) >= 3
        for b, n in zip(by_sample, trial["background_mc_per_bin"]):
            assert list(b) == (["bkg"] if n else [])  # a bin without background MC has no share
            assert n == 0 or b["bkg"]["sumw2"] == pytest.approx(1.0)


def test_random_classifier_through_the_feature_files(tmp_path):
    frame = toy_events(3_000, 30_000, seed=20)
    features = frame.drop(columns=["score", "split"]).assign(
        split_0=frame["split"], split_1=(frame["split"] + 1) % 3, split_2=(frame["split"] + 2) % 3
    )
    features.iloc[:1000].to_parquet(tmp_path / "a.parquet")
    features.iloc[1000:].to_parquet(tmp_path / "b.parquet")
    res = ev.evaluate_random([tmp_path / "a.parquet", tmp_path / "b.parquet"], 3, CFG)
    again = ev.evaluate_random([tmp_path / "a.parquet", tmp_path / "b.parquet"], 3, CFG)
    assert res == again  # seeded
    assert res["summary"]["best_epoch"] == {"mean": None, "std": None, "n": 0, "n_trials": 3}
    assert res["summary"]["auc"]["mean"] == pytest.approx(0.5, abs=0.05)


def test_describe_prints_every_trial_and_the_mean():
    res = {
        "trials": [
            {
                "trial": 0,
                "significance": 1.23456,
                "auc": 0.8,
                "bkg_correlation": None,
                "best_epoch": None,
                "overtraining_p": 0.5,
            }
        ],
        "summary": {k: {"mean": 1.0, "std": None} for k in ev.METRICS},
    }
    text = ev.describe(res)
    assert "trial 0: significance 1.235" in text and "best epoch N.A." in text and text.count("\n") == 1


# --------------------------------------------------------------- MC-noise floor and dCor^2 of the correlation
def test_correlation_floor_equals_the_metric_of_a_non_sculpting_score_and_lies_below_a_sculpting_one():
    ev_ = toy_events(4000, 20000, seed=3)
    s, m, w, y = (ev_[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    floor = ev.background_correlation_floor(s, m, w, y, 8, EDGES, 30, seed=1)
    # a score independent of the mass: the metric is pure MC noise, so it agrees with its floor
    assert ev.background_correlation(s, m, w, y, 8, EDGES) == pytest.approx(floor, rel=0.15)
    # the same score bins filled with the background sorted by mass: far above the floor
    sculpted = s.copy()
    bkg = np.flatnonzero(y == 0)
    sculpted[bkg[np.argsort(m[bkg])]] = np.sort(s[bkg])
    assert ev.background_correlation(sculpted, m, w, y, 8, EDGES) > 3 * floor
    # the floor depends only on the MC in each score bin, not on how the score orders the mass
    assert ev.background_correlation_floor(sculpted, m, w, y, 8, EDGES, 30, seed=1) == pytest.approx(
        floor, rel=0.1
    )
    # seeded, and switched off with 0 permutations
    assert ev.background_correlation_floor(s, m, w, y, 8, EDGES, 30, seed=1) == floor
    assert math.isnan(ev.background_correlation_floor(s, m, w, y, 8, EDGES, 0, seed=1))


def _sculpting_toy(n_bkg: int, alpha: float, seed: int) -> tuple[np.ndarray, ...]:
    """Signal N(125, 2) with uniform scores; background exponential in 100-180 GeV whose score is
    uniform + alpha (m - 100) / 80 (alpha = 0: no sculpting), with weights spread over a factor 10 and larger
    at high score (as the high-score bins of a trained classifier hold fewer, heavier events)."""
    rng = np.random.default_rng(seed)
    m_bkg = 100.0 + rng.exponential(30.0, 3 * n_bkg)
    m_bkg = m_bkg[m_bkg < 180.0][:n_bkg]
    s_bkg = rng.random(len(m_bkg)) + alpha * (m_bkg - 100.0) / 80.0
    w_bkg = rng.uniform(0.5, 1.5, len(m_bkg)) * (1.0 + 9.0 * s_bkg / s_bkg.max())
    n_sig = 20000
    score = np.r_[rng.random(n_sig) * (1 + alpha), s_bkg]
    mass = np.r_[rng.normal(125.0, 2.0, n_sig), m_bkg]
    weight = np.r_[np.full(n_sig, 1e-3), w_bkg]
    y = np.r_[np.ones(n_sig), np.zeros(len(m_bkg))].astype(np.int8)
    return score, mass, weight, y


def test_jackknife_shape_variance_equals_the_leave_one_out_sum_and_the_sampling_variance():
    rng = np.random.default_rng(4)
    m, w = rng.uniform(100, 180, 60), rng.exponential(1.0, 60)
    h_out = []
    for i in range(m.size):  # brute force: the histogram without event i
        keep = np.arange(m.size) != i
        h = np.histogram(m[keep], bins=EDGES, weights=w[keep])[0]
        h_out.append(h / h.sum())
    brute = (m.size - 1) / m.size * np.sum((np.array(h_out) - np.mean(h_out, axis=0)) ** 2, axis=0)
    np.testing.assert_allclose(ev.jackknife_shape_variance(m, w, EDGES), brute, rtol=1e-9, atol=1e-15)
    # few events with widely spread weights: the jackknife gives the true sampling variance of the shape
    density = np.full(len(EDGES) - 1, 1.0 / (len(EDGES) - 1))
    dev, est = [], []
    for _ in range(400):
        mm, ww = rng.uniform(100, 180, 150), rng.lognormal(0.0, 1.2, 150)
        h = np.histogram(mm, bins=EDGES, weights=ww)[0]
        dev.append(np.sum((h / h.sum() - density) ** 2))
        est.append(ev.jackknife_shape_variance(mm, ww, EDGES).sum())
    assert np.mean(est) == pytest.approx(np.mean(dev), rel=0.06)


def test_correlation_excess_removes_the_mc_noise_and_recovers_the_true_sculpting():
    # no sculpting: the paper's metric is all MC noise, its part above the noise is consistent with zero
    for seed in range(3):
        s, m, w, y = _sculpting_toy(20000, 0.0, seed)
        metric = ev.background_correlation(s, m, w, y, 8, EDGES)
        excess = ev.background_correlation_excess(s, m, w, y, 8, EDGES)
        assert metric > 1.5e-3 and abs(excess) < 0.25 * metric
    # sculpting: the excess of a small sample agrees with the noise-free value of a 50x larger one, which
    # the paper's metric of the small sample overshoots
    truth = ev.background_correlation_excess(*_sculpting_toy(1_000_000, 0.1, 99), 8, EDGES)
    estimates = [
        ev.background_correlation_excess(*_sculpting_toy(20000, 0.1, seed), 8, EDGES) for seed in range(4)
    ]
    small_metric = ev.background_correlation(*_sculpting_toy(20000, 0.1, 0), 8, EDGES)
    assert truth > 1e-3 and small_metric > 1.25 * truth
    assert np.mean(estimates) == pytest.approx(truth, rel=0.15)
    # fewer than two score bins with background: not defined
    assert math.isnan(
        ev.background_correlation_excess(
            np.r_[0.5, 0.6], np.r_[125.0, 125.0], np.ones(2), np.r_[1, 0], 8, EDGES
        )
    )


def test_background_dcor2_is_zero_for_independent_and_one_for_equal_score_and_mass():
    rng = np.random.default_rng(0)
    n = 3000
    m = rng.uniform(100, 180, n)
    y = np.zeros(n, np.int8)
    w = rng.uniform(0.5, 2.0, n)
    assert ev.background_dcor2(rng.random(n), m, w, y, (100, 180)) < 0.01
    assert ev.background_dcor2((m - 100) / 80, m, w, y, (100, 180)) == pytest.approx(1.0, abs=1e-9)
    # signal and events outside the mass range are left out
    y2 = np.r_[y, np.ones(10, np.int8)]
    m2 = np.r_[m, np.full(10, 125.0)]
    assert ev.background_dcor2(
        np.r_[(m - 100) / 80, rng.random(10)], m2, np.r_[w, np.ones(10)], y2, (100, 180)
    ) == pytest.approx(1.0, abs=1e-9)
    assert math.isnan(ev.background_dcor2(np.ones(3), np.full(3, 90.0), np.ones(3), np.zeros(3), (100, 180)))


def test_trial_metrics_carry_the_floor_and_dcor2_into_table_one():
    frame = toy_events(3000, 9000, seed=5)
    t = ev.trial_metrics(frame, {**CFG, "correlation_floor_permutations": 5})
    assert 0 < t["bkg_correlation_floor"] and 0 <= t["bkg_dcor2"] < 0.05
    summary = ev.summarise([{"trial": 0, **t}, {"trial": 1, **t}])
    row = tables.table_row("etn", {"kind": "bce", "disco_lambda": 0.0}, summary)
    assert row["Bkg. Corr. floor (1e-3)"] == f"{t['bkg_correlation_floor'] * 1e3:.1f} ± 0.0"
    assert row["Bkg. dCor² (1e-3)"].startswith(f"{t['bkg_dcor2'] * 1e3:.1f}")
    assert row["Bkg. Corr. above noise (1e-3)"].startswith(f"{t['bkg_correlation_excess'] * 1e3:.1f}")
    # the fewest background MC events of a score bin, raw and effective (unit weights: the same)
    raw = min(t["background_mc_per_bin"])
    assert summary["background_mc"]["min_count"] == raw
    assert summary["background_mc"]["min_effective"] == pytest.approx(raw)
    assert row["Bkg. MC per bin, min (raw / eff.)"] == f"{raw} / {raw}"
    assert (
        tables.table_row("etn", None, {**summary, "background_mc": {}})["Bkg. MC per bin, min (raw / eff.)"]
        == "N.A."
    )


def test_table_one_explains_every_column_under_it() -> None:
    """Table I's note names every column but Technique and Loss (without its unit), followed by its
    definition."""
    import re

    summary = {"significance": {"mean": 1.0, "std": 0.1, "n": 3, "n_total": 3}}
    note = tables.table_note([("etn", {"kind": "bce", "disco_lambda": 0.0}, {"summary": summary})])
    for column in tables.TABLE_COLUMNS[2:]:
        name = re.sub(r" \([^()]*\)$", "", column)
        assert f"{name}:" in note, column


def test_notes_stay_text_in_a_report_caption() -> None:
    """The tables' notes go into the report's reStructuredText captions escaped (`tables.rst_escape`): their
    "|S_spur|", "S_spur", "*" and "`" come out as written, with no RST warning or error."""
    import html

    from docutils.core import publish_parts
    from docutils.utils import SystemMessage

    notes = [
        tables.TABLE_ONE_COLUMNS,
        tables.fit_table_note(0, 0.2, 2.0),
        tables.spurious_caption(0.2, 2.0),
        tables.SPURIOUS_NOTE,
        tables.PHYSICS_CHECKS_NOTE,
        tables.PAPER_NOTE,
        "a `literal`, *stress*, |sub| and a_ reference_, a back\\slash",
    ]
    for note in notes:
        body = publish_parts(
            tables.rst_escape(note),
            writer="html",
            settings_overrides={"report_level": 1, "halt_level": 2},
        )["body"]
        assert "system-message" not in body and html.escape(note, quote=False) in body.replace("&quot;", '"')
    with pytest.raises(SystemMessage):  # the same text unescaped is RST markup: an undefined substitution
        publish_parts(notes[1], writer="html", settings_overrides={"halt_level": 2})


def test_physics_checks_table_sets_each_check_beside_its_reference(tmp_path) -> None:
    summary = {
        "signal_peak_gev": 124.768,
        "signal_width_gev": 1.6964,
        "background_low_over_high": 3.29,
        "selection_fraction": {"signal": 0.2509, "background": 0.2057, "drellyan_fsr": 0.05},
        "paper_selection_fraction": {"signal": 0.2, "background": 5.0 / 45.0},
        "sigma_m_pull": {"calibrated": True, "pull_width_all": {"before": 1.18246, "after": 1.0066}},
    }
    frame = tables.physics_checks_frame(summary).set_index("Check")
    assert frame.loc["Signal mllg peak [GeV]", "This run"] == "124.77"
    assert frame.loc["Selection fraction, signal [%]"].tolist() == ["25.1", "20.0 (paper)"]
    assert frame.loc["Selection fraction, background [%]"].tolist() == ["20.6", "11.1 (paper)"]
    assert frame.loc["Selection fraction, drellyan_fsr [%]", "Reference"] == ""  # not in the paper
    assert frame.loc["sigma_m pull width, before calibration", "This run"] == "1.182"
    assert frame.loc["sigma_m pull width, after calibration", "This run"] == "1.007"
    uncalibrated = tables.physics_checks_frame(summary | {"sigma_m_pull": {"calibrated": False}})
    assert not uncalibrated["Check"].str.startswith("sigma_m").any()
    paths = tables.write_table(
        frame.reset_index(),
        tmp_path / "physics_checks",
        tables.PHYSICS_CHECKS_CAPTION,
        tables.PHYSICS_CHECKS_NOTE,
    )
    assert "(paper)" in paths[0].read_text() and "physics.json" in paths[2].read_text()
