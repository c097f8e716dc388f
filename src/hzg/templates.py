"""Fit inputs: mℓℓγ histograms per classifier-score category, nominal and varied, from the test split."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hzg import metrics
from hzg.classifier import Classifier
from hzg.fit import Templates

TEST = 2
#: Background yield floor per (category, mass bin), in events: a bin with no background MC event would
#: make the Poisson likelihood of a background-only Asimov dataset degenerate (log 0).
BACKGROUND_FLOOR = 1.0e-3


def test_split(frame: pd.DataFrame, trial: int, scale: Mapping[int, float]) -> pd.DataFrame:
    """Test-split events of `trial`, weights multiplied by the per-class factor `scale` (class -> factor)."""
    test = frame[frame[f"split_{trial}"] == TEST].copy()
    test["weight"] = test["weight"] * test["is_signal"].map(scale).to_numpy()
    return test


def test_scale(nominal: pd.DataFrame, trial: int) -> dict[int, float]:
    """Per class, full-sample yield over test-split yield of the nominal sample (the paper scales each split
    to sigma * L); the same factors apply to the varied samples so the variations keep their effect."""
    test = nominal[f"split_{trial}"] == TEST
    return {cls: float(nominal.loc[nominal.is_signal == cls, "weight"].sum()
                       / nominal.loc[test & (nominal.is_signal == cls), "weight"].sum()) for cls in (0, 1)}


def category_histograms(score: np.ndarray, mass: np.ndarray, weight: np.ndarray, edges_score: np.ndarray,
                        edges_mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yields and sums of squared weights, shape (n_categories, n_mass_bins)."""
    cat = metrics.bin_index(score, edges_score)
    n_cat = len(edges_score) - 1
    h, _, _ = np.histogram2d(cat, mass, bins=[np.arange(n_cat + 1) - 0.5, edges_mass], weights=weight)
    h2, _, _ = np.histogram2d(cat, mass, bins=[np.arange(n_cat + 1) - 0.5, edges_mass], weights=weight**2)
    return h, h2


def smooth_background(yields: np.ndarray, sumw2: np.ndarray, mean_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Background templates (categories x mass bins) with the mℓℓγ shape of all categories together and the
    normalisation of each category: with few MC events per category the bin-by-bin shape is mostly noise,
    and an empty bin would claim zero background (an infinite significance). A category without any
    background MC event gets the yield of one mean-weight event (a conservative estimate of 'none seen');
    the relative MC-stat uncertainty of each category's total is applied to each of its bins.
    """
    shape = yields.sum(axis=0)
    shape = shape / shape.sum() if shape.sum() > 0 else np.full(yields.shape[1], 1.0 / yields.shape[1])
    totals = yields.sum(axis=1)
    var = sumw2.sum(axis=1)
    none_seen = totals <= 0
    totals = np.where(none_seen, mean_weight, totals)
    var = np.where(none_seen, mean_weight**2, var)
    smooth = np.maximum(totals[:, None] * shape[None, :], BACKGROUND_FLOOR)
    return smooth, smooth**2 * (var / totals**2)[:, None]


def prune(nominal: np.ndarray, varied: np.ndarray) -> np.ndarray:
    """A variation where the nominal bin holds MC events; the nominal itself in bins without any (floored
    or empty): one migrating MC event there is noise, and its linear extrapolation would drive the
    expected yield negative for the opposite shift."""
    return np.where(nominal > BACKGROUND_FLOOR, varied, nominal)


def build_templates(classifier: Classifier, nominal: pd.DataFrame, varied: Mapping[str, Mapping[str, pd.DataFrame]],
                    trial: int, n_score_bins: int, mass_edges: Sequence[float]) -> tuple[Templates, np.ndarray]:
    """Templates for the fit and the score-bin edges (equal signal in the nominal test split).

    `varied[name] = {"up": frame, "down": frame}`: the same samples with a systematic variation applied
    before the selection (so events migrate in and out exactly as they would).
    """
    scale = test_scale(nominal, trial)
    nom = test_split(nominal, trial, scale)
    score = classifier.predict(nom)
    is_sig = nom["is_signal"].to_numpy() == 1
    w = nom["weight"].to_numpy()
    edges = metrics.equal_signal_bin_edges(score, w, is_sig, n_bins=n_score_bins)
    mass_edges = np.asarray(mass_edges, float)
    categories = tuple(f"bin{i}" for i in range(n_score_bins))

    def hists(frame: pd.DataFrame, s: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        m, wt, sig = frame["mllg"].to_numpy(), frame["weight"].to_numpy(), frame["is_signal"].to_numpy() == 1
        out = {name: category_histograms(s[sel], m[sel], wt[sel], edges, mass_edges)
               for name, sel in (("signal", sig), ("background", ~sig))}
        out["background"] = smooth_background(*out["background"], mean_weight=float(np.mean(wt[~sig])))
        return out

    nominal_h = hists(nom, score)
    variations: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]] = {c: {} for c in categories}
    for name, pair in varied.items():
        shifted = {}
        for direction in ("up", "down"):
            frame = test_split(pair[direction], trial, scale)
            shifted[direction] = hists(frame, classifier.predict(frame))
        for i, c in enumerate(categories):
            variations[c][name] = {s: tuple(prune(nominal_h[s][0][i], shifted[d][s][0][i]) for d in ("up", "down"))
                                   for s in ("signal", "background")}
    templates = Templates(
        edges=mass_edges, categories=categories,
        signal={c: nominal_h["signal"][0][i] for i, c in enumerate(categories)},
        background={c: nominal_h["background"][0][i] for i, c in enumerate(categories)},
        signal_sumw2={c: nominal_h["signal"][1][i] for i, c in enumerate(categories)},
        background_sumw2={c: nominal_h["background"][1][i] for i, c in enumerate(categories)},
        variations=variations,
    )
    return templates, edges
