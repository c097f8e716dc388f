"""Expected significance of the paper (000, Sec. III C, eqs. 7-8; Sec. IV D), in numpy.

Conventions, stated once:
* weighted_quantile: sorted values v_k with weights w_k > 0 (weights <= 0 are ignored: negative MC weights
count
  as zero in quantiles, while the yields s and b use the weights as given), cumulative C_k, total W.
  "hazen" (default): linear interpolation of v_k at the mid-point probabilities p_k = (C_k - w_k / 2) / W,
  constant v_1 / v_n outside [p_1, p_n]; with equal weights it is numpy's method="hazen".
  "inverted_cdf": the smallest v_k with C_k / W >= q (one of the values); numpy's weighted
  method="inverted_cdf".
* Score bins hold equal weighted signal: inner edge k is the "inverted_cdf" signal-score quantile k / n_bins
  and bins are right-closed, edges[i] < score <= edges[i+1], edges[0] = -inf, edges[-1] = +inf. Each bin then
  holds 1/n_bins of the signal to within one event weight (exactly for equal weights and a signal count
  divisible by n_bins), unless a block of tied signal scores spans several quantiles: the edges inside it
  coincide, the block goes to the highest of those bins (the paper's code does the same) and the ones below
  it stay empty. The binning, hence the significance, depends only on the order of the scores:
  it is invariant under any strictly increasing transform of the score.
* In each score bin the mass window is the closed interval between the weighted "hazen" quantiles
  mass_quantiles (5 % and 95 %) of that bin's signal mass, so its width changes from bin to bin; s and b are
  the weighted signal and background of the bin inside it. A bin without signal has window (nan, nan), s = b
  = 0.
* A bin with b <= 0 contributes Z = 0, as in the paper's public code (EvaluateModel.py): the Asimov formula
  diverges there, and an empty simulated background is a statistics artefact, not an infinite significance.
  Consequence: with a score that separates the sample perfectly only the lowest bin has background and counts.
* MC-statistical uncertainty, as the paper's public code (jaebak/EventClassifierTransformer, EvaluateModel.py,
  `calculate_significance`): per bin the yields' uncertainties are sigma_s^2 = sum w^2 of the signal and
  sigma_b^2 = sum w^2 of the background in the window (ROOT's TH1::IntegralAndError of the weighted
  histogram),
  propagated "based on s/sqrt(b)" with the bin's Asimov Z:
      dZ_bin^2 = (s/b)^2 sigma_s^2 / Z_bin^2 + (s/b)^4 sigma_b^2 / (4 Z_bin^2),
  i.e. (s/sqrt(b) / Z_bin)^2 [sigma_s^2 / b + s^2 sigma_b^2 / (4 b^3)]; 0 where b <= 0 (their Z = 0 branch);
  where
  Z_bin = 0 with b > 0 (s <= 0; their code divides by zero there) the factor s/sqrt(b) / Z_bin is its limit 1.
  The total is dZ = sqrt(sum dZ_bin^2), as theirs (not weighted by Z_bin / Z as a first-order propagation
  through
  sqrt(sum Z_bin^2) would be, so it is an upper bound of that). Each bin also records the raw (unweighted)
  number
  of signal and background MC events in its window (their `hist.GetEntries()`), n_s_mc and n_b_mc.
* Scores and weights must be finite (a NaN score, from a diverged model, raises ValueError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import math

import numpy as np

QuantileMethod = Literal["hazen", "inverted_cdf"]
MIN_BACKGROUND_MC = 20  # default of the config key evaluation.min_background_mc


def weighted_quantile(
    values: np.ndarray, weights: np.ndarray, q: Any, method: QuantileMethod = "hazen"
) -> np.ndarray | float:
    """Weighted quantiles of `values` at probabilities q in [0, 1]; conventions in the module text."""
    v = np.asarray(values, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    qa = np.asarray(q, dtype=float)
    if v.shape != w.shape:
        raise ValueError(f"weighted_quantile: values and weights differ in length ({v.size} vs {w.size})")
    if np.any(~np.isfinite(qa)) or np.any((qa < 0) | (qa > 1)):
        raise ValueError(f"weighted_quantile: q must lie in [0, 1], got {q!r}")
    keep = w > 0
    if not keep.any():
        raise ValueError("weighted_quantile: no value with positive weight")
    order = np.argsort(v[keep], kind="stable")
    v, w = v[keep][order], w[keep][order]
    cum = np.cumsum(w)
    if method == "hazen":
        out = np.interp(qa, (cum - 0.5 * w) / cum[-1], v)
    elif method == "inverted_cdf":
        idx = np.searchsorted(cum / cum[-1], qa, side="left")
        out = v[np.clip(idx, 0, v.size - 1)]
    else:
        raise ValueError(f"weighted_quantile: unknown method {method!r}; expected 'hazen' or 'inverted_cdf'")
    return float(out) if qa.ndim == 0 else np.asarray(out, dtype=float)


def asimov_significance(s: Any, b: Any) -> np.ndarray | float:
    """Z = sqrt(2 [(s + b) ln(1 + s/b) - s]), eq. (7), elementwise; 0 where s <= 0 or b <= 0."""
    # Written as sqrt(2 b f(s/b)), f(r) = (1 + r) ln(1 + r) - r, with f's series for r < 1e-4: the large-b
    # limit s / sqrt(b) keeps full precision.
    s_arr, b_arr = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(b, dtype=float))
    valid = (s_arr > 0) & (b_arr > 0)
    r = np.where(valid, s_arr, 0.0) / np.where(valid, b_arr, 1.0)
    series = r**2 / 2 - r**3 / 6 + r**4 / 12 - r**5 / 20
    f = np.where(r < 1e-4, series, (1.0 + r) * np.log1p(r) - r)
    z = np.where(valid, np.sqrt(np.maximum(2.0 * np.where(valid, b_arr, 0.0) * f, 0.0)), 0.0)
    return float(z) if z.ndim == 0 else z


def equal_signal_bin_edges(
    score: np.ndarray, weight: np.ndarray, is_signal: np.ndarray, n_bins: int = 8
) -> np.ndarray:
    """Score edges, -inf to +inf, of n_bins right-closed bins with equal weighted signal (module text)."""
    if n_bins < 1:
        raise ValueError(f"equal_signal_bin_edges: n_bins must be >= 1, got {n_bins}")
    score, weight, sig = _checked(score, weight, is_signal)
    if not np.any(sig & (weight > 0)):
        raise ValueError("equal_signal_bin_edges: no signal event with positive weight")
    inner = weighted_quantile(score[sig], weight[sig], np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    return np.concatenate([[-np.inf], np.atleast_1d(inner), [np.inf]])


def bin_index(score: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each score for right-closed bins edges[i] < score <= edges[i+1] (module text), except a score
    equal to an edge that repeats (a block of tied scores spans several quantiles): it goes to the highest
    bin starting there, as in the paper's code, so that saturated scores (e.g. all at 1) form the top bin."""
    score = np.asarray(score, dtype=float)
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, score, side="left") - 1
    repeated = edges[1:][edges[1:] == edges[:-1]]
    if repeated.size:
        tied = np.isin(score, repeated)
        idx[tied] = np.searchsorted(edges, score[tied], side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def significance_mc_error(s: Any, b: Any, s_sumw2: Any, b_sumw2: Any) -> np.ndarray | float:
    """MC-statistical uncertainty of the Asimov Z of a bin from s, b and their sums of squared weights
    (the paper's EvaluateModel.calculate_significance, module text), elementwise; 0 where b <= 0."""
    s_arr, b_arr, s2, b2 = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (s, b, s_sumw2, b_sumw2))
    )
    z = np.asarray(asimov_significance(s_arr, b_arr), dtype=float)
    valid = b_arr > 0
    bb = np.where(valid, b_arr, 1.0)
    # (s / sqrt(b) / Z)^2, 1 in the limit Z -> 0 (and where Z = 0 by convention)
    ratio2 = np.where(z > 0, s_arr**2 / bb / np.where(z > 0, z, 1.0) ** 2, 1.0)
    err = np.where(valid, np.sqrt(ratio2 * (s2 / bb + s_arr**2 * b2 / (4.0 * bb**3))), 0.0)
    return float(err) if err.ndim == 0 else err


def significance_mass_range(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    n_bins: int = 8,
    mass_quantiles: tuple[float, float] = (0.05, 0.95),
) -> tuple[float, float]:
    """The mass range that holds every score bin's mass window of `binned_significance_detail`, from the
    SIGNAL events alone (their scores, masses and weights): the equal-signal edges and the windows depend only
    on them, so a background event outside this range counts in no bin whatever its score. (nan, nan) when
    no bin holds signal of positive weight."""
    score = np.asarray(score, dtype=float).ravel()
    mass = np.asarray(mass, dtype=float).ravel()
    weight = np.asarray(weight, dtype=float).ravel()
    if not np.any(weight > 0):
        return (math.nan, math.nan)
    every = np.ones(score.size, dtype=bool)
    idx = bin_index(score, equal_signal_bin_edges(score, weight, every, n_bins))
    lows, highs = [], []
    for i in range(n_bins):  # a loop over the bins, not the events
        in_bin = idx == i
        if np.any(in_bin & (weight > 0)):
            lo, hi = weighted_quantile(mass[in_bin], weight[in_bin], np.array(mass_quantiles))
            lows.append(lo)
            highs.append(hi)
    return (float(min(lows)), float(max(highs))) if lows else (math.nan, math.nan)


def binned_significance_detail(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_bins: int = 8,
    mass_quantiles: tuple[float, float] = (0.05, 0.95),
) -> dict[str, Any]:
    """Eqs. (7)-(8) with the MC-statistical uncertainty of the paper's public code (module text).

    Returns {"significance": sqrt(sum Z_bin^2), "significance_mc_err": sqrt(sum dZ_bin^2), "bins": [...]},
    one dict
    per score bin (lowest score first) with keys "edges", "window", "s", "b", "s_sumw2", "b_sumw2" (sums of
    w^2 in
    the window), "n_s_mc", "n_b_mc" (raw MC events in the window), "n_b_eff" (their effective number,
    `effective_events`), "z" and "z_mc_err".
    """
    q_lo, q_hi = mass_quantiles
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise ValueError(
            f"binned_significance: need 0 <= lo < hi <= 1 for mass_quantiles, got {mass_quantiles!r}"
        )
    score, weight, sig = _checked(score, weight, is_signal)
    mass = np.asarray(mass, dtype=float).ravel()
    if mass.shape != score.shape or not np.all(np.isfinite(mass)):
        raise ValueError("binned_significance: mass must be finite and as long as score")
    edges = equal_signal_bin_edges(score, weight, sig, n_bins)
    idx = bin_index(score, edges)
    details: list[dict[str, Any]] = []
    for i in range(n_bins):  # a loop over the bins, not the events
        in_bin = idx == i
        sig_bin = in_bin & sig
        if np.any(sig_bin & (weight > 0)):
            m_lo, m_hi = weighted_quantile(mass[sig_bin], weight[sig_bin], np.array([q_lo, q_hi]))
            in_window = in_bin & (mass >= m_lo) & (mass <= m_hi)
        else:
            m_lo = m_hi = np.nan
            in_window = np.zeros_like(in_bin)
        w_s, w_b = weight[in_window & sig], weight[in_window & ~sig]
        s, b = float(w_s.sum()), float(w_b.sum())
        s2, b2 = float(np.sum(w_s * w_s)), float(np.sum(w_b * w_b))
        details.append(
            {
                "edges": (float(edges[i]), float(edges[i + 1])),
                "window": (float(m_lo), float(m_hi)),
                "s": s,
                "b": b,
                "s_sumw2": s2,
                "b_sumw2": b2,
                "n_s_mc": int(w_s.size),
                "n_b_mc": int(w_b.size),
                "n_b_eff": effective_events(b, b2),
                "z": float(asimov_significance(s, b)),
                "z_mc_err": float(significance_mc_error(s, b, s2, b2)),
            }
        )
    return {
        "significance": float(np.sqrt(sum(d["z"] ** 2 for d in details))),
        "significance_mc_err": float(np.sqrt(sum(d["z_mc_err"] ** 2 for d in details))),
        "bins": details,
    }


def effective_events(sumw: Any, sumw2: Any) -> float:
    """Kish's effective number of MC events, (sum w)^2 / sum w^2, from the sum of weights and the sum of
    squared weights (numbers, or histograms that are summed): the number of unweighted events with the same
    relative MC-statistical uncertainty on the sum (0 where the sum is not positive)."""
    total, var = float(np.sum(sumw)), float(np.sum(sumw2))
    return total**2 / var if total > 0 and var > 0 else 0.0


def background_variance_shares(
    bins: Sequence[Mapping[str, Any]],
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    group: np.ndarray,
) -> list[dict[int, dict[str, float]]]:
    """Per score bin of `binned_significance_detail` (its "edges" and "window"), per background group (for
    example the sample id): its share of the background's sum of weights ("sumw") and of its sum of squared
    weights ("sumw2", the MC-statistical variance) in the bin's mass window, and its effective events
    ("n_eff"). Tells which sample limits the MC precision of each bin."""
    score, weight, sig = _checked(score, weight, is_signal)
    mass = np.asarray(mass, dtype=float).ravel()
    group = np.asarray(group).ravel()
    if mass.shape != score.shape or group.shape != score.shape:
        raise ValueError("background_variance_shares: mass and group must be as long as score")
    out: list[dict[int, dict[str, float]]] = []
    for d in bins:  # a loop over the bins and groups, not the events
        (s_lo, s_hi), (m_lo, m_hi) = d["edges"], d["window"]
        sel = ~sig & (score > s_lo) & (score <= s_hi) & (mass >= m_lo) & (mass <= m_hi)
        w, g = weight[sel], group[sel]
        total, total2 = float(w.sum()), float(np.sum(w * w))
        shares: dict[int, dict[str, float]] = {}
        for key in np.unique(g).tolist():
            wk = w[g == key]
            sumw, sumw2 = float(wk.sum()), float(np.sum(wk * wk))
            shares[int(key)] = {
                "sumw": sumw / total if total else float("nan"),
                "sumw2": sumw2 / total2 if total2 else float("nan"),
                "n_eff": effective_events(sumw, sumw2),
            }
        out.append(shares)
    return out


def binned_significance(
    score: np.ndarray,
    mass: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    n_bins: int = 8,
    mass_quantiles: tuple[float, float] = (0.05, 0.95),
) -> tuple[float, list[dict[str, Any]]]:
    """Eqs. (7)-(8): sqrt(sum Z_bin^2) and the per-bin dicts of `binned_significance_detail`."""
    out = binned_significance_detail(score, mass, weight, is_signal, n_bins, mass_quantiles)
    return out["significance"], out["bins"]


def low_background_mc_bins(bins: Sequence[Mapping[str, Any]], min_events: int) -> list[int]:
    """Indices of the score bins whose mass window holds fewer than `min_events` background MC events."""
    return [i for i, d in enumerate(bins) if d["n_b_mc"] < min_events]


def _checked(
    score: np.ndarray, weight: np.ndarray, is_signal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """score, weight as float and is_signal as bool 1-D arrays of one length; scores and weights finite."""
    score = np.asarray(score, dtype=float).ravel()
    weight = np.asarray(weight, dtype=float).ravel()
    sig = np.asarray(is_signal).ravel().astype(bool)
    if not score.shape == weight.shape == sig.shape:
        raise ValueError(
            f"score, weight and is_signal differ in length ({score.size}, {weight.size}, {sig.size})"
        )
    if not (np.all(np.isfinite(score)) and np.all(np.isfinite(weight))):
        raise ValueError("score and weight must be finite (a NaN score means a diverged model)")
    return score, weight, sig


def mass_edges(mass_bins: Mapping[str, Any]) -> np.ndarray:
    """Edges of a config's `mass_bins` {n, range} (evaluation and fit)."""
    lo, hi = mass_bins["range"]
    return np.linspace(float(lo), float(hi), int(mass_bins["n"]) + 1)


def in_window(mass: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Events in the open mass window lo < m < hi (the training's data scope and the AUC window)."""
    mass = np.asarray(mass, dtype=float)
    return (mass > window[0]) & (mass < window[1])


def split_scaled_weights(weight: np.ndarray, y: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Physical weights rescaled within each split so each class sums to its full-sample yield
    (the paper scales each of the train, validation and test sets to sigma * L)."""
    out = np.asarray(weight, np.float64).copy()
    for s in np.unique(split):
        for cls in (0, 1):
            sel = (split == s) & (y == cls)
            part = out[sel].sum()
            if part > 0:
                out[sel] *= weight[y == cls].sum() / part
    return out
