"""Evaluation metrics of paper 000 (Sec. IV D-E, Table I), per trial on the TEST split, and their mean +- std.

Definitions, stated once:
* Test split: split == 2. Weights are the physical ones rescaled within the split so each class sums to its
  full-sample yield (`metrics.split_scaled_weights`, the paper scales train, validation and test each to
  sigma * L); only the significance depends on that scale, AUC and correlation are normalised.
* Significance: `metrics.binned_significance_detail` with `n_score_bins` (8) equal-signal score bins, eqs.
  (7)-(8), with its MC-statistical uncertainty as the paper's public code computes it
  (EvaluateModel.calculate_significance:
  per bin dZ from the sums of squared weights of s and b propagated through s/sqrt(b), added in quadrature;
  text of `hzg.metrics`). Each trial records per score bin s, b, their sums of w^2 and the raw numbers of
  signal and background MC events in the bin's mass window. A bin whose window holds fewer than
  `min_background_mc` (20) background MC events is logged as a warning and marks the significance in Table I
  with a dagger: there the Asimov Z rests on a handful of simulated events (and the sum-of-w^2 error itself is
  unreliable).
* AUC: scikit-learn's weighted ROC AUC of the events with `window[0] < mllg < window[1]` (120-130 GeV),
  negative weights set to 0, as the paper says.
* Background mass correlation: the `n_score_bins` equal-signal score bins of the significance (edges from the
  weighted test signal); per bin the weighted background mllg histogram in `mass_edges` (80 bins of 1 GeV in
  100-180 GeV), normalised to unit sum; per mass bin the standard deviation across the score bins (population
  std, ddof = 0); the mean over mass bins. A score bin without background is left out. Table I shows it x 1e3.
* Its MC-noise floor: the same metric with the background events' (mllg, weight) pairs shuffled among the
  background events (`correlation_floor_permutations` shuffles, numpy's default_rng(random_seed)), so that
  every score bin keeps its number of background MC events but the score no longer depends on the mass: the
  value the metric takes for a classifier that does not sculpt at all, with this run's MC. The paper's 5 M
  selected background events make it negligible; with 10^5 weighted events it is most of the metric
  (docs/default_run.md, "Background correlation").
* Its part above the MC noise ("bkg_correlation_excess"): per mass bin j, the population variance across the K
  score bins of the normalised yields h_kj, minus its expectation from MC noise alone, (K - 1) / K^2 sum_k
  var(h_kj), with var(h_kj) the jackknife variance of that score bin's normalised histogram
  (`jackknife_shape_variance`: the delta method underestimates it by a quarter in a score bin of 28
  effective events with this workflow's weights); the mean over mass bins of that difference estimates the
  squared sculpting without bias, and the metric is its signed square root (negative: consistent with no
  sculpting). It is the root mean square over mass bins of the noise-free std, not the paper's mean of the
  std (the two agree when the std is the same in every mass bin). Unlike the permutation floor it uses the
  weights each score bin actually holds (the high-score bins of a trained classifier hold fewer, more varied
  weights than a random draw).
* Background dCor^2: the weighted squared distance correlation of score and mllg of the test background in the
  mass range of the correlation (`hzg.learn.losses.distance_correlation`, exact, O(n log n)): the quantity
  DisCo lowers, free of binning. Table I shows it x 1e3.
* Overtraining: per class, the score histograms of the training and test splits in the same mass window as the
  AUC (the classifier's training scope), `overtraining_bins` equal-width bins over the range of the scores of
  all events in the window (one binning for both classes, the one plotted), compared
  with the chi2 homogeneity test for two weighted histograms of Gagunashvili (ROOT's TH1::Chi2Test option
  "WW"):
  X2 = sum_i (W2 w1_i - W1 w2_i)^2 / (W1^2 s2_i^2 + W2^2 s1_i^2), W = total weight, s_i^2 = sum of squared
  weights in bin i, ndf = bins - 1 - (bins empty in both); p = P(chi2_ndf > X2). The two classes are
  independent, so their X2 and ndf add to one p-value for the table. Option "ks": scipy's two-sample
  Kolmogorov-Smirnov test (unweighted; equal weights within a class, as generated here), the classes combined
  with Fisher's method.
  The chi2 WW test is the default because it is the paper's (Fig. 6, ROOT) and uses the weights.
* Random classifier: uniform scores from numpy's default_rng(random_seed + trial), same code.
* Aggregation over trials: mean and sample standard deviation (ddof = 1); one trial gives std None. Values
  that do not exist (best epoch of trees and of the random classifier) are None and aggregate to None.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hzg import metrics
from hzg.registry import RANDOM, TEST, TRAIN, TREE_MODELS, run_name, split_column
from hzg.results.tables import format_mean_std

log = logging.getLogger(__name__)

METRICS = (
    "significance",
    "significance_mc_err",
    "auc",
    "bkg_correlation",
    "bkg_correlation_floor",
    "bkg_correlation_excess",
    "bkg_dcor2",
    "best_epoch",
    "overtraining_p",
)
CORRELATION_FLOOR_PERMUTATIONS = 20  # default of the config key evaluation.correlation_floor_permutations
SCORE_COLUMNS = ("score", "mllg", "weight", "is_signal", "split")


# ---------------------------------------------------------------- pieces
mass_edges = metrics.mass_edges


def window_auc(
    score: np.ndarray, mass: np.ndarray, weight: np.ndarray, is_signal: np.ndarray, window: Sequence[float]
) -> float:
    """Weighted ROC AUC in the mass window, negative weights set to 0."""
    from sklearn.metrics import roc_auc_score

    sel = metrics.in_window(mass, window)
    y = np.asarray(is_signal)[sel].astype(int)
    if np.unique(y).size < 2:
        raise ValueError(f"window_auc: the mass window {list(window)} holds only one class")
    return float(
        roc_auc_score(y, np.asarray(score)[sel], sample_weight=np.clip(np.asarray(weight)[sel], 0, None))
    )


def window_roc(
    score: np.ndarray, mass: np.ndarray, weight: np.ndarray, is_signal: np.ndarray, window: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Background and signal efficiency (FPR, TPR) of the ROC curve in the mass window, weights >= 0."""
    from sklearn.metrics import roc_curve

    sel = metrics.in_window(mass, window)
    fpr, tpr, _ = roc_curve(
        np.asarray(is_signal)[sel].astype(int),
        np.asarray(score)[sel],
        sample_weight=np.clip(np.asarray(weight)[sel], 0, None),
    )
    return fpr, tpr


def background_score_bins(
    score: np.ndarray, weight: np.ndarray, is_signal: np.ndarray, n_score_bins: int
) -> np.ndarray:
    """Equal-signal score bin (0 = lowest score) of every background event, in the events' order."""
    score_edges = metrics.equal_signal_bin_edges(score, weight, is_signal, n_score_bins)
    return metrics.bin_index(np.asarray(score, float)[~np.asarray(is_signal).astype(bool)], score_edges)


def normalised_shapes(
    mass: np.ndarray, weight: np.ndarray, bins: np.ndarray, n_score_bins: int, edges: np.ndarray
) -> np.ndarray:
    """mllg histograms of the events in each of `n_score_bins` (their score bin in `bins`), normalised to
    unit sum; a row is NaN where the score bin holds no weight."""
    shapes = np.full((n_score_bins, len(edges) - 1), np.nan)
    for k in range(n_score_bins):
        h, _ = np.histogram(mass[bins == k], bins=edges, weights=weight[bins == k])
        if h.sum() > 0:
            shapes[k] = h / h.sum()
    return shapes


def background_mass_shapes(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_score_bins: int,
    edges: np.ndarray,
) -> np.ndarray:
    """Normalised background mllg histograms, one row per equal-signal score bin (lowest score first);
    a row is NaN where the score bin holds no background weight."""
    bkg = ~np.asarray(is_signal).astype(bool)
    bins = background_score_bins(score, weight, is_signal, n_score_bins)
    return normalised_shapes(
        np.asarray(mass, float)[bkg], np.asarray(weight, float)[bkg], bins, n_score_bins, edges
    )


def shape_correlation(shapes: np.ndarray) -> float:
    """Mean over mass bins of the std (ddof = 0) across score bins of normalised histograms (NaN rows left
    out)."""
    rows = shapes[~np.isnan(shapes).any(axis=1)]
    if len(rows) < 2:
        return math.nan
    return float(np.mean(np.std(rows, axis=0)))


def background_correlation(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_score_bins: int,
    edges: np.ndarray,
) -> float:
    """The paper's background mllg correlation (Sec. IV D), not yet scaled by 1e3."""
    return shape_correlation(background_mass_shapes(score, mass, weight, is_signal, n_score_bins, edges))


def background_correlation_floor(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_score_bins: int,
    edges: np.ndarray,
    n_permutations: int,
    seed: int,
) -> float:
    """MC-noise floor of `background_correlation` (module text): its mean over `n_permutations` shuffles of
    the background's (mass, weight) pairs among the background events; NaN for n_permutations = 0."""
    if n_permutations <= 0:
        return math.nan
    bkg = ~np.asarray(is_signal).astype(bool)
    bins = background_score_bins(
        score, weight, is_signal, n_score_bins
    )  # the shuffles leave them as they are
    bkg_mass, bkg_weight = np.asarray(mass, float)[bkg], np.asarray(weight, float)[bkg]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_permutations):  # a loop over shuffles, each columnar over the events
        order = rng.permutation(bkg_mass.size)
        bkg_mass, bkg_weight = bkg_mass[order], bkg_weight[order]
        values.append(shape_correlation(normalised_shapes(bkg_mass, bkg_weight, bins, n_score_bins, edges)))
    return float(np.nanmean(values))


def jackknife_shape_variance(mass: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Jackknife variance of each bin of the unit-normalised weighted histogram of (mass, weight).

    Leaving out event i gives h_l(-i) = (W_l - w_i [i in l]) / (W - w_i); the variance is (n - 1) / n
    sum_i (h_l(-i) - mean_i h_l(-i))^2, summed in closed form with bincounts (O(n), no n x bins matrix).
    Unlike the delta method it stays unbiased for score bins of a few dozen effective events with spread
    weights (checked on this workflow's background weights: delta method 26 % low at 28 effective events,
    the jackknife within 2 %). Needs n >= 2 events with W - w_i != 0.
    """
    w = np.asarray(weight, float)
    n = w.size
    idx = np.clip(np.searchsorted(edges, np.asarray(mass, float), side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    sw = np.bincount(idx, w, minlength=nb)
    a = 1.0 / (sw.sum() - w)
    wa, wa2, w2a2 = (np.bincount(idx, x, minlength=nb) for x in (w * a, w * a * a, w * w * a * a))
    s1 = sw * a.sum() - wa  # sum_i h_l(-i)
    s2 = sw**2 * (a * a).sum() - 2.0 * sw * wa2 + w2a2  # sum_i h_l(-i)^2
    return (n - 1) / n * np.clip(s2 - s1 * s1 / n, 0.0, None)


def background_correlation_excess(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_score_bins: int,
    edges: np.ndarray,
) -> float:
    """The background correlation above its MC noise (module text), not yet scaled by 1e3: the signed square
    root of the mean over mass bins of (variance across score bins - its expected MC-noise part, from the
    jackknife variance of each score bin's normalised histogram); NaN with fewer than two score bins holding
    at least two background events."""
    bkg = ~np.asarray(is_signal).astype(bool)
    bins = background_score_bins(score, weight, is_signal, n_score_bins)
    m, w = np.asarray(mass, float)[bkg], np.asarray(weight, float)[bkg]
    inside = (m >= edges[0]) & (m <= edges[-1])
    shapes, noise = [], []
    for k in range(n_score_bins):  # a loop over score bins, columnar over the events
        sel = (bins == k) & inside
        total = w[sel].sum()
        if sel.sum() < 2 or total <= 0:
            continue
        shapes.append(np.histogram(m[sel], bins=edges, weights=w[sel])[0] / total)
        noise.append(jackknife_shape_variance(m[sel], w[sel], edges))
    k = len(shapes)
    if k < 2:
        return math.nan
    excess2 = float(np.mean(np.var(np.array(shapes), axis=0) - (k - 1) / k**2 * np.sum(noise, axis=0)))
    return math.copysign(math.sqrt(abs(excess2)), excess2)


def background_dcor2(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    mass_range: Sequence[float],
) -> float:
    """Weighted dCor^2 of score and mllg for the background inside mass_range (module text), negative weights
    set to 0; NaN with fewer than 2 such events."""
    import torch

    from hzg.learn.losses import distance_correlation

    sel = ~np.asarray(is_signal).astype(bool) & metrics.in_window(mass, mass_range)
    if sel.sum() < 2:
        return math.nan
    x, m, w = (
        torch.as_tensor(np.asarray(a, np.float64)[sel]) for a in (score, mass, np.clip(weight, 0, None))
    )
    with torch.no_grad():
        return float(distance_correlation(x, m, w))


def histogram_w2(values: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weights and sum of squared weights per bin (values outside the edges are clipped into them)."""
    v = np.clip(np.asarray(values, float), edges[0], edges[-1])
    w = np.asarray(weight, float)
    return np.histogram(v, bins=edges, weights=w)[0], np.histogram(v, bins=edges, weights=w * w)[0]


def chi2_ww(w1: np.ndarray, s1sq: np.ndarray, w2: np.ndarray, s2sq: np.ndarray) -> dict[str, Any]:
    """Chi2 homogeneity test of two weighted histograms (Gagunashvili; ROOT TH1::Chi2Test "WW").

    w: sum of weights per bin, s_sq: sum of squared weights per bin. Returns chi2, ndf, p_value and the
    adjusted residuals per bin (NaN for bins empty in both), as ROOT's `res`.
    """
    w1, s1sq, w2, s2sq = (np.asarray(a, dtype=float) for a in (w1, s1sq, w2, s2sq))
    sum1, sum2 = w1.sum(), w2.sum()
    if sum1 <= 0 or sum2 <= 0:
        raise ValueError("chi2_ww: both histograms need a positive total weight")
    used = ~((w1 * w1 == 0) & (w2 * w2 == 0))
    if np.any(used & (s1sq == 0) & (s2sq == 0)):
        raise ValueError("chi2_ww: a bin has content but zero errors in both histograms")
    ndf = int(used.sum()) - 1
    sigma = np.where(used, sum1**2 * s2sq + sum2**2 * s1sq, 1.0)
    delta = np.where(used, sum2 * w1 - sum1 * w2, 0.0)
    chi2 = float(np.sum(delta**2 / sigma))
    # ROOT's adjusted residuals: the histogram with the larger error squared sets the sign and scale
    prob = (w1 * sum1 * s2sq + w2 * sum2 * s1sq) / sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        z1 = (w1 - sum1 * prob) / np.sqrt(s1sq * (1 - s2sq * sum1**2 / sigma))
        z2 = -(w2 - sum2 * prob) / np.sqrt(s2sq * (1 - s1sq * sum2**2 / sigma))
    residuals = np.where(used, np.where(s1sq > s2sq, z1, z2), np.nan)
    p = float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else math.nan
    return {"chi2": chi2, "ndf": ndf, "p_value": p, "residuals": residuals}


def overtraining_edges(score: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over the range of the scores (unit width when all scores are equal)."""
    lo, hi = float(np.min(score)), float(np.max(score))
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, n_bins + 1)


def compare_train_test(
    train: np.ndarray,
    train_w: np.ndarray,
    test: np.ndarray,
    test_w: np.ndarray,
    edges: np.ndarray,
    method: str = "chi2_ww",
) -> dict[str, Any]:
    """Overtraining test of one class: train vs test scores, chi2 WW on `edges` or KS (module text)."""
    if method == "chi2_ww":
        out = chi2_ww(*histogram_w2(train, train_w, edges), *histogram_w2(test, test_w, edges))
        out["residuals"] = out["residuals"].tolist()
        return out
    if method == "ks":
        res = stats.ks_2samp(np.asarray(train, float), np.asarray(test, float))
        return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}
    raise ValueError(
        f"unknown overtraining test {method!r} (config key 'evaluation.overtraining_test'); "
        "expected 'chi2_ww' or 'ks'"
    )


def combine_p(per_class: Mapping[str, Mapping[str, Any]], method: str) -> float:
    """One p-value for independent per-class tests: chi2 and ndf add (chi2 WW), Fisher's method (KS)."""
    if method == "chi2_ww":
        chi2 = sum(r["chi2"] for r in per_class.values())
        ndf = sum(r["ndf"] for r in per_class.values())
        return float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else math.nan
    return float(stats.combine_pvalues([r["p_value"] for r in per_class.values()], method="fisher").pvalue)


def overtraining(
    frame: pd.DataFrame, window: Sequence[float], n_bins: int, method: str = "chi2_ww"
) -> dict[str, Any]:
    """Train vs test score distributions per class in the mass window (module text); per class and
    combined."""
    sel = metrics.in_window(frame["mllg"].to_numpy(), window)
    edges = overtraining_edges(frame.loc[sel, "score"].to_numpy(), n_bins)
    out: dict[str, Any] = {"test": method}
    for name, cls in (("signal", 1), ("background", 0)):
        part = frame[sel & (frame["is_signal"].to_numpy() == cls)]
        tr, te = part[part["split"] == TRAIN], part[part["split"] == TEST]
        result = compare_train_test(
            tr["score"].to_numpy(),
            tr["weight"].to_numpy(),
            te["score"].to_numpy(),
            te["weight"].to_numpy(),
            edges,
            method,
        )
        out[name] = {**result, "edges": edges.tolist()}
    out["p_value"] = combine_p({k: out[k] for k in ("signal", "background")}, method)
    return out


# ---------------------------------------------------------------- one trial
def scaled_weights(frame: pd.DataFrame) -> np.ndarray:
    """Physical weights rescaled per split and class to the full-sample yield (the paper's sigma * L per
    split)."""
    return metrics.split_scaled_weights(
        frame["weight"].to_numpy(np.float64), frame["is_signal"].to_numpy(), frame["split"].to_numpy()
    )


def trial_metrics(
    frame: pd.DataFrame,
    cfg: Mapping[str, Any],
    best_epoch: int | None = None,
    label: str = "",
    sample_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All metrics of one trial from its scores (columns score, mllg, weight, is_signal, split; with a
    sample_id column also "background_mc_by_sample", keyed by the names in `sample_names` whose
    `features.sample_id` it is, else by the id).

    cfg: the `evaluation` config (n_score_bins, mass_bins, window, overtraining_test, overtraining_bins and
    optionally min_background_mc, default 20). A score bin with fewer background MC events in its mass window
    is logged as a warning (`label` names the trial there) and listed in "low_background_mc_bins".
    """
    missing = set(SCORE_COLUMNS) - set(frame.columns)
    if missing:
        raise KeyError(f"scores lack columns {sorted(missing)}")
    frame = frame.assign(weight=scaled_weights(frame))
    test = frame[frame["split"] == TEST]
    s, m, w, y = (test[c].to_numpy() for c in ("score", "mllg", "weight", "is_signal"))
    y = y.astype(bool)
    n_bins = int(cfg["n_score_bins"])
    signi = metrics.binned_significance_detail(s, m, w, y, n_bins=n_bins)
    min_mc = int(cfg.get("min_background_mc", metrics.MIN_BACKGROUND_MC))
    low = metrics.low_background_mc_bins(signi["bins"], min_mc)
    if low:
        log.warning(
            "%sscore bin(s) %s hold %s background MC events in their mass window, fewer than %d "
            "(evaluation.min_background_mc): the significance %.3f ± %.3f (MC stat.) rests on few events",
            f"{label}: " if label else "",
            low,
            [signi["bins"][i]["n_b_mc"] for i in low],
            min_mc,
            signi["significance"],
            signi["significance_mc_err"],
        )
    ot = overtraining(frame, cfg["window"], int(cfg["overtraining_bins"]), cfg["overtraining_test"])
    edges = mass_edges(cfg["mass_bins"])
    n_shuffles = int(cfg.get("correlation_floor_permutations", CORRELATION_FLOOR_PERMUTATIONS))
    return {
        "significance": signi["significance"],
        "significance_mc_err": signi["significance_mc_err"],
        "auc": window_auc(s, m, w, y, cfg["window"]),
        "bkg_correlation": background_correlation(s, m, w, y, n_bins, edges),
        "bkg_correlation_floor": background_correlation_floor(
            s, m, w, y, n_bins, edges, n_shuffles, int(cfg["random_seed"])
        ),
        "bkg_correlation_excess": background_correlation_excess(s, m, w, y, n_bins, edges),
        "bkg_dcor2": background_dcor2(s, m, w, y, cfg["mass_bins"]["range"]),
        "best_epoch": best_epoch,
        "overtraining_p": ot["p_value"],
        "overtraining": ot,
        "significance_bins": signi["bins"],
        "background_mc_per_bin": [d["n_b_mc"] for d in signi["bins"]],
        "background_mc_effective_per_bin": [d["n_b_eff"] for d in signi["bins"]],
        **(
            {
                "background_mc_by_sample": background_mc_by_sample(
                    signi["bins"], s, m, w, y, test["sample_id"].to_numpy(), sample_names
                )
            }
            if "sample_id" in test.columns
            else {}
        ),
        "min_background_mc": min_mc,
        "low_background_mc_bins": low,
        "n_test": {"signal": int(y.sum()), "background": int((~y).sum())},
    }


def background_mc_by_sample(
    bins: list[dict[str, Any]],
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    sample_ids: np.ndarray,
    sample_names: Sequence[str] | None = None,
) -> list[dict[str, dict[str, float]]]:
    """Per score bin, per background sample (its name from `sample_names`, else its id as a string): its share
    of the background's weight and MC variance in the bin's mass window and its effective events
    (`metrics.background_variance_shares`)."""
    from hzg.data.features import sample_id

    names = {sample_id(n): n for n in sample_names or ()}
    shares = metrics.background_variance_shares(bins, score, mass, weight, is_signal, sample_ids)
    return [{names.get(k, str(k)): v for k, v in per_bin.items()} for per_bin in shares]


def random_scores(n: int, seed: int) -> np.ndarray:
    """Scores of the random classifier: uniform in [0, 1)."""
    return np.random.default_rng(seed).random(n)


def random_trial_frame(features: pd.DataFrame, trial: int, seed: int) -> pd.DataFrame:
    """Score frame of the random classifier for one trial, from the feature table (split_{trial} column)."""
    return pd.DataFrame(
        {
            "score": random_scores(len(features), seed + trial),
            "mllg": features["mllg"].to_numpy(),
            "weight": features["weight"].to_numpy(),
            "is_signal": features["is_signal"].to_numpy(),
            "split": features[split_column(trial)].to_numpy(),
        }
    )


def read_scores(path: str | Path) -> pd.DataFrame:
    """The columns of a training job's scores.parquet that the evaluation uses (with the event's sample id,
    where the file has it: `background_mc_by_sample`); a missing or unreadable file is named
    (`io.parquet_columns`)."""
    from hzg import io

    extra = [c for c in ("sample_id",) if c in io.parquet_columns(path)]
    return pd.read_parquet(path, columns=list(SCORE_COLUMNS) + extra)


def best_epoch(checkpoint_path: str | Path) -> int | None:
    """Selected epoch of a neural network from its checkpoint; None for trees (the paper's N.A.)."""
    from hzg import checkpoints

    ckpt = checkpoints.load(checkpoint_path)
    return None if ckpt.get("kind") in TREE_MODELS else int(ckpt["best_epoch"])


# ---------------------------------------------------------------- trials together
def _has_value(v: Any) -> bool:
    return v is not None and not (isinstance(v, (float, np.floating)) and not math.isfinite(v))


def aggregate(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample std (ddof = 1) over the trials with a finite value, and how many those are ("n") of all
    ("n_trials"); mean None where no trial has a value, std None for one value."""
    vals = np.array([v for v in values if _has_value(v)], float)
    counts = {"n": int(vals.size), "n_trials": len(values)}
    if vals.size == 0:
        return {"mean": None, "std": None, **counts}
    return {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if vals.size > 1 else None, **counts}


def summarise(trials: Sequence[Mapping[str, Any]], label: str = "run") -> dict[str, dict[str, Any]]:
    """Mean and std of every Table I metric over the trials, and "background_mc": the fewest background MC
    events in a score bin's mass window over all trials (raw, "min_count", and effective, "min_effective"),
    the threshold and the trials with a bin below it.
    A metric that some trials lack (NaN: e.g. no background in a bin) is averaged over the others, with a
    warning naming the trials; its count shows in Table I (`format_mean_std`)."""
    out: dict[str, dict[str, Any]] = {key: aggregate([t.get(key) for t in trials]) for key in METRICS}
    for key in METRICS:
        missing = [t.get("trial", i) for i, t in enumerate(trials) if not _has_value(t.get(key))]
        if missing and len(missing) < len(trials):
            log.warning(
                "%s: %s is NaN or missing in trial(s) %s; "
                "its mean and std are over the other %d of %d trials",
                label,
                key,
                missing,
                len(trials) - len(missing),
                len(trials),
            )
    counts = [n for t in trials for n in t.get("background_mc_per_bin", [])]
    effective = [n for t in trials for n in t.get("background_mc_effective_per_bin", [])]
    out["background_mc"] = {
        "threshold": trials[0].get("min_background_mc", metrics.MIN_BACKGROUND_MC)
        if trials
        else metrics.MIN_BACKGROUND_MC,
        "min_count": min(counts) if counts else None,
        "min_effective": min(effective) if effective else None,
        "low_trials": [t["trial"] for t in trials if t.get("low_background_mc_bins")],
    }
    return out


def to_json_safe(payload: Any) -> Any:
    """Replace NaN and inf by None and numpy scalars and arrays by Python values (strict JSON)."""
    if isinstance(payload, Mapping):
        return {str(k): to_json_safe(v) for k, v in payload.items()}
    if isinstance(payload, (list, tuple, np.ndarray)):
        return [to_json_safe(v) for v in payload]
    if isinstance(payload, (np.integer,)):
        return int(payload)
    if isinstance(payload, (float, np.floating)):
        return float(payload) if math.isfinite(payload) else None
    return payload


def evaluate_run(
    score_paths: Sequence[str | Path],
    checkpoint_paths: Sequence[str | Path] | None,
    cfg: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
    sample_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """metrics.json of one (model, loss): every trial (in the order of the paths) and the summary;
    `sample_names` (the config's samples) name the samples of "background_mc_by_sample"."""
    trials = []
    for t, path in enumerate(score_paths):
        epoch = best_epoch(checkpoint_paths[t]) if checkpoint_paths else None
        label = f"{run_name((info or {}).get('model', 'run'), (info or {}).get('loss', ''))} trial {t}"
        trials.append({"trial": t, **trial_metrics(read_scores(path), cfg, epoch, label, sample_names)})
    name = run_name((info or {}).get("model", "run"), (info or {}).get("loss", ""))
    return to_json_safe(
        {**(info or {}), "n_trials": len(trials), "summary": summarise(trials, name), "trials": trials}
    )


def evaluate_random(
    feature_paths: Sequence[str | Path], n_trials: int, cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """metrics.json of the random classifier, computed by the same code as every run."""
    columns = ["mllg", "weight", "is_signal"] + [split_column(t) for t in range(n_trials)]
    features = pd.concat([pd.read_parquet(p, columns=columns) for p in feature_paths], ignore_index=True)
    trials = [
        {
            "trial": t,
            **trial_metrics(
                random_trial_frame(features, t, int(cfg["random_seed"])), cfg, label=f"random trial {t}"
            ),
        }
        for t in range(n_trials)
    ]
    return to_json_safe(
        {
            "model": RANDOM,
            "loss": None,
            "n_trials": n_trials,
            "summary": summarise(trials, RANDOM),
            "trials": trials,
        }
    )


def describe(result: Mapping[str, Any]) -> str:
    """One line per trial and the mean ± std, for the job's log."""

    def g(v: Any) -> str:
        return "N.A." if v is None else f"{v:.4g}"

    def bkg_mc(t: Mapping[str, Any]) -> str:
        counts = t.get("background_mc_per_bin")
        return "" if counts is None else f" (background MC events in the score bins' mass windows: {counts})"

    lines = [
        f"trial {t['trial']}: significance {g(t['significance'])} "
        f"± {g(t.get('significance_mc_err'))} (MC stat.)"
        f"{bkg_mc(t)}, AUC {g(t['auc'])}, bkg. corr. "
        f"{g(t['bkg_correlation'])} (floor {g(t.get('bkg_correlation_floor'))}), "
        f"bkg. dCor² {g(t.get('bkg_dcor2'))}, best epoch {g(t['best_epoch'])}, "
        f"overtraining p {g(t['overtraining_p'])}"
        for t in result["trials"]
    ]
    stats_ = result["summary"]
    lines.append(
        f"mean ± std: significance {format_mean_std(stats_['significance'], 3)}, "
        f"its MC stat. {format_mean_std(stats_.get('significance_mc_err', {'mean': None}), 3)}, "
        f"AUC {format_mean_std(stats_['auc'], 4)}, "
        f"bkg. corr. {format_mean_std(stats_['bkg_correlation'], 5)}, "
        f"best epoch {format_mean_std(stats_['best_epoch'], 1)}, "
        f"overtraining p {format_mean_std(stats_['overtraining_p'], 3)}"
    )
    return "\n".join(lines)
