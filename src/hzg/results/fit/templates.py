"""Fit inputs from the test split: per score category the signal and background MC mℓℓγ histograms, the
smooth background template and spurious signal of the chosen function (hzg.results.fit.shapes), and the
signal's shape variations (photon energy scale from the reprocessed samples, photon resolution as a peak
widening)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hzg import metrics
from hzg.learn.classifier import Classifier
from hzg.results.fit.shapes import FUNCTIONS, BackgroundChoice, choose_background, dscb_template
from hzg.results.fit.workspace import Templates, defaults_updated

TEST = 2
HIGGS_MASS = 125.0  # GeV, the centre about which the photon-resolution variation widens the signal peak
#: Floor of a background template bin, relative to the category's mean yield per bin: a smooth function can
#: vanish at the window's edge, and a zero expectation makes the Poisson likelihood degenerate.
BACKGROUND_FLOOR = 1.0e-6
DEFAULT_BACKGROUND: dict[str, Any] = {
    "functions": list(FUNCTIONS),
    "max_bernstein_order": 5,
    "f_test_p": 0.05,
    "spurious_criterion": 0.2,
    "spurious_mc_tolerance": 2.0,
    "min_effective_events": 50.0,
    "min_mc_events": 20,
    "empty_category": "drop",
}


def test_split(frame: pd.DataFrame, trial: int, scale: Mapping[int, float]) -> pd.DataFrame:
    """Test-split events of `trial`, weights multiplied by the per-class factor `scale` (class -> factor)."""
    column = f"split_{trial}"
    if column not in frame:
        raise ValueError(f"templates: the features have no column {column!r} (fit.trial = {trial})")
    test = frame[frame[column] == TEST].copy()
    test["weight"] = test["weight"] * test["is_signal"].map(scale).to_numpy()
    return test


def test_scale(nominal: pd.DataFrame, trial: int) -> dict[int, float]:
    """Per class, full-sample yield over test-split yield of the nominal sample (the paper scales each split
    to sigma * L); the same factors apply to the varied samples so the variations keep their effect."""
    if f"split_{trial}" not in nominal:
        raise ValueError(f"templates: the features have no column 'split_{trial}' (fit.trial = {trial})")
    test = nominal[f"split_{trial}"] == TEST
    out = {}
    for cls in (0, 1):
        part = float(nominal.loc[test & (nominal.is_signal == cls), "weight"].sum())
        if part <= 0:
            raise ValueError(
                f"templates: the test split of trial {trial} has no {'signal' if cls else 'background'} "
                "weight"
            )
        out[cls] = float(nominal.loc[nominal.is_signal == cls, "weight"].sum()) / part
    return out


def category_histograms(
    score: np.ndarray, mass: np.ndarray, weight: np.ndarray, edges_score: np.ndarray, edges_mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Yields and sums of squared weights, shape (n_categories, n_mass_bins)."""
    cat = metrics.bin_index(score, edges_score)
    bins = [np.arange(len(edges_score)) - 0.5, edges_mass]
    h, _, _ = np.histogram2d(cat, mass, bins=bins, weights=weight)
    h2, _, _ = np.histogram2d(cat, mass, bins=bins, weights=weight**2)
    return h, h2


def widened(mass: np.ndarray, factor: float, centre: float = HIGGS_MASS) -> np.ndarray:
    """Masses moved away from (factor > 1) or towards (< 1) `centre`: the peak widened or narrowed by
    `factor`."""
    return centre + (np.asarray(mass, dtype=float) - centre) * factor


def background_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_BACKGROUND updated with `cfg`; unknown keys raise ValueError naming fit.background."""
    return defaults_updated(DEFAULT_BACKGROUND, cfg, "fit.background")


def pooled(counts: np.ndarray, sumw2: np.ndarray, index: int, min_events: float) -> list[int]:
    """Categories whose background MC is pooled to fit the shape of category `index`: itself, then its
    neighbours in score (lower first, then higher), until the pool holds `min_events` effective MC events."""
    order = sorted(range(len(counts)), key=lambda j: (abs(j - index), j > index))
    chosen: list[int] = []
    for j in order:
        chosen.append(j)
        if metrics.effective_events(counts[chosen].sum(axis=0), sumw2[chosen].sum(axis=0)) >= min_events:
            break
    return sorted(chosen)


def smooth_background(
    counts: np.ndarray,
    sumw2: np.ndarray,
    edges: np.ndarray,
    signal_shape: np.ndarray,
    cfg: Mapping[str, Any],
    total: float,
) -> tuple[np.ndarray, BackgroundChoice, float]:
    """Template of the function chosen on (counts, sumw2) (F-test, spurious signal), scaled to `total` events,
    the choice itself and that scale factor (which also scales the spurious signal)."""
    if float(np.sum(counts)) <= 0:
        raise ValueError(
            "templates: no background MC weight in the fit window; use fewer fit.n_score_bins, a wider "
            "fit.mass_bins range or more background MC"
        )
    choice = choose_background(
        counts,
        sumw2,
        edges,
        signal_shape,
        cfg["functions"],
        cfg["spurious_criterion"],
        cfg["spurious_mc_tolerance"],
        cfg["max_bernstein_order"],
        cfg["f_test_p"],
    )
    template = choice.chosen.background_fit.yields(edges)
    factor = total / float(np.sum(template))
    floor = BACKGROUND_FLOOR * total / counts.size
    return np.maximum(template * factor, floor), choice, factor


def build_templates(
    classifier: Classifier,
    nominal: pd.DataFrame,
    varied: Mapping[str, Mapping[str, pd.DataFrame]],
    trial: int,
    n_score_bins: int,
    mass_edges: Sequence[float],
    background: Mapping[str, Any] | None = None,
    photon_resolution: float | None = None,
    signal_shape: str = "template",
) -> tuple[Templates, np.ndarray, dict[str, dict[str, Any]]]:
    """Templates for the fit, the score-bin edges (equal signal in the nominal test split) and, per category,
    the background function chosen (`BackgroundChoice.to_dict`, with `spurious_signal` (S_spur) and
    `spurious_systematic` (zeta, what the fit's spurious-signal term uses) in the category's own events,
    `pooled_with` and `effective_mc_events`).

    A category with fewer than `min_effective_events` effective background MC events takes its shape from the
    pool of it and its score neighbours (`pooled`), normalised to its own MC yield (one mean-weight event
    where it has none: "none seen" is not "none"); its spurious signal is scaled the same way, and its
    background MC is replaced by that template (`data_from_template`): a handful of MC events cannot stand for
    the data.
    A category with fewer than `min_mc_events` background MC events in the fit window (none at all, or a
    handful: its background is then unknown, and one event more or less changes its significance several-fold)
    is left out of the fit where `empty_category` is "drop" (the default: it then adds nothing, as in the
    binned counting, whose Z is 0 where b = 0), and kept with the pooled shape where it is "template"; either
    way the returned info says so.

    `varied[name] = {"up": frame, "down": frame}`: the same samples with a systematic variation applied before
    the selection (events migrate in and out exactly as they would); only their signal is used (the background
    comes from a fit to the data's sidebands, so a background variation is moot). `photon_resolution`: the
    relative widening (up) and narrowing (down) of the signal peak about 125 GeV, the histosys
    "photon_resolution"; None or 0: none. `signal_shape`: "template" (the signal MC histogram, default) or
    "dscb" (per category a double-sided Crystal Ball fitted to it, and to each shape variation, its yield the
    MC's; the fit in the info as `signal_fit`).
    """
    if signal_shape not in ("template", "dscb"):
        raise ValueError(f"fit.signal_shape must be 'template' or 'dscb', got {signal_shape!r}")
    cfg = background_config(background)
    scale = test_scale(nominal, trial)
    nom = test_split(nominal, trial, scale)
    score = classifier.predict(nom)
    is_sig = nom["is_signal"].to_numpy() == 1
    w, m = nom["weight"].to_numpy(), nom["mllg"].to_numpy()
    edges = metrics.equal_signal_bin_edges(score, w, is_sig, n_bins=n_score_bins)
    mass_edges = np.asarray(mass_edges, float)
    categories = tuple(f"bin{i}" for i in range(n_score_bins))
    sig, sig2 = category_histograms(score[is_sig], m[is_sig], w[is_sig], edges, mass_edges)
    bkg, bkg2 = category_histograms(score[~is_sig], m[~is_sig], w[~is_sig], edges, mass_edges)
    empty = [c for i, c in enumerate(categories) if sig[i].sum() <= 0]
    if empty:
        raise ValueError(
            f"templates: categories {empty} have no signal in the fit window {mass_edges[[0, -1]]}"
        )

    variations: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {c: {} for c in categories}
    for name, pair in varied.items():
        shifted = []
        for direction in ("up", "down"):
            frame = test_split(pair[direction], trial, scale)
            frame = frame[frame["is_signal"] == 1]
            shifted.append(
                category_histograms(
                    classifier.predict(frame),
                    frame["mllg"].to_numpy(),
                    frame["weight"].to_numpy(),
                    edges,
                    mass_edges,
                )[0]
            )
        for i, c in enumerate(categories):
            variations[c][name] = (shifted[0][i], shifted[1][i])
    if photon_resolution:
        widths = [
            category_histograms(
                score[is_sig],
                widened(m[is_sig], 1.0 + sign * photon_resolution),
                w[is_sig],
                edges,
                mass_edges,
            )[0]
            for sign in (+1, -1)
        ]
        for i, c in enumerate(categories):
            variations[c]["photon_resolution"] = (widths[0][i], widths[1][i])

    signal_fits: dict[str, dict[str, Any]] = {}
    if signal_shape == "dscb":  # smooth signal shapes: the nominal and every variation fitted alike
        for i, c in enumerate(categories):
            sig[i], nominal_fit = dscb_template(sig[i], sig2[i], mass_edges)
            signal_fits[c] = {"signal_fit": nominal_fit.to_dict()}
            variations[c] = {
                name: tuple(
                    dscb_template(h, h * float(sig2[i].sum() / max(sig[i].sum(), 1e-300)), mass_edges)[0]
                    for h in pair
                )
                for name, pair in variations[c].items()
            }
    smooth, spurious, choices, pools = {}, {}, {}, {}
    mean_weight = float(np.mean(w[~is_sig])) if np.any(~is_sig) else 1.0
    n_mc = category_histograms(score[~is_sig], m[~is_sig], np.ones(int(np.sum(~is_sig))), edges, mass_edges)[
        0
    ]
    n_events = n_mc.sum(axis=1).astype(int)
    dropped = {
        c: {
            "dropped": True,
            "background_mc_events": int(n_events[i]),
            "reason": f"{n_events[i]} background MC events in the fit window, fewer than "
            f"fit.background.min_mc_events = {cfg['min_mc_events']}",
        }
        for i, c in enumerate(categories)
        if n_events[i] < max(cfg["min_mc_events"], 1) and cfg["empty_category"] == "drop"
    }
    if len(dropped) == len(categories):
        raise ValueError(
            f"templates: every category has fewer than fit.background.min_mc_events = "
            f"{cfg['min_mc_events']} background MC events in the fit window ({n_events.tolist()})"
        )
    for i, c in enumerate(categories):
        if c in dropped:
            continue
        pool = pooled(bkg, bkg2, i, cfg["min_effective_events"])
        total = float(bkg[i].sum()) if bkg[i].sum() > 0 else mean_weight  # none seen: one mean-weight event
        shape = sig[i] / sig[i].sum()
        smooth[c], choices[c], factor = smooth_background(
            bkg[pool].sum(axis=0), bkg2[pool].sum(axis=0), mass_edges, shape, cfg, total
        )
        spurious[c] = (
            choices[c].chosen.zeta * factor
        )  # the systematic: relaxed criterion's zeta (hzg.fit.shapes)
        pools[c] = {
            "pooled_with": [categories[j] for j in pool if j != i],
            "scale": factor,
            "effective_mc_events": metrics.effective_events(bkg[i], bkg2[i]),
            "data_from_template": len(pool) > 1,
        }
    for i, c in enumerate(categories):
        if (
            c in pools and pools[c]["data_from_template"]
        ):  # too little MC to stand for data: the pooled shape does
            bkg[i], bkg2[i] = smooth[c], smooth[c] * mean_weight
    kept = {c: i for i, c in enumerate(categories) if c not in dropped}
    templates = Templates(
        edges=mass_edges,
        categories=tuple(kept),
        signal={c: sig[i] for c, i in kept.items()},
        signal_sumw2={c: sig2[i] for c, i in kept.items()},
        background_mc={c: bkg[i] for c, i in kept.items()},
        background_mc_sumw2={c: bkg2[i] for c, i in kept.items()},
        background=smooth,
        spurious_signal=spurious,
        signal_variations={c: variations[c] for c in kept},
    )
    info = {
        c: dropped[c]
        if c in dropped
        else choices[c].to_dict()
        | pools[c]
        | signal_fits.get(c, {})
        | {
            "dropped": False,
            "background_mc_events": int(n_mc[i].sum()),
            "spurious_signal": choices[c].chosen.signal * pools[c]["scale"],
            "spurious_systematic": spurious[c],
        }
        for i, c in enumerate(categories)
    }
    return templates, edges, info
