"""Training strategies for a scan of Higgs masses (seed paper 004, mass-unspecific classifiers).

A loss entry of the config may carry a `strategy` (registry.STRATEGIES):

* ``standard``: the paper's training at 125 GeV (every run of the default).
* ``munn``: the mass-unspecific network of 004. Signal of every mass point of `mass_scan` and the background;
  the reconstructed mllg is an input; the training weights are balanced per bin of mllg
  (`balanced_per_mass_bin_weights`): in every bin signal and background carry equal total weight, and every
  bin the same, as 004's "N signal + N background events per interval of m_rec".
* ``pnn``: the parametrised network. Signal of every mass point, its generated Higgs mass as an input
  (`HYPOTHESIS_FEATURE`); the background gets a mass drawn at random from the mass points
  (`pnn_background_masses`, seeded); every mass point's signal carries the same total weight, the background
  its physical weights. At evaluation the input is the hypothesis: the mass point evaluated (125 GeV in the
  scores, friend trees and fits of the default pipeline).

Both train on the mass-scan range of mllg (the bin edges' span), not the 120-130 GeV window of the paper.
Pure functions of arrays; `hzg.learn.training` calls them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hzg.registry import STANDARD, STRATEGIES

#: input column of the pNN: the Higgs mass hypothesis (the generated mass for signal, a random mass point for
#: background in training)
HYPOTHESIS_FEATURE = "higgs_mass_hypothesis"
#: input column of the muNN: the reconstructed mass
MASS_FEATURE = "mllg"


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown training strategy {strategy!r}; known: {list(STRATEGIES)}")
    return strategy


def input_features(base: Sequence[str], strategy: str) -> list[str]:
    """The inputs of a strategy: the paper's, plus mllg (muNN) or the mass hypothesis (pNN)."""
    extra = {"munn": [MASS_FEATURE], "pnn": [HYPOTHESIS_FEATURE]}.get(check_strategy(strategy), [])
    return list(base) + extra


def bin_edges(masses: Sequence[float], bin_width: float) -> np.ndarray:
    """mllg bin edges of the muNN balance: bins of `bin_width` centred on the mass points, contiguous from the
    lowest to the highest (equally spaced mass points give one bin per point)."""
    m = np.sort(np.asarray(masses, np.float64))
    half = 0.5 * float(bin_width)
    n = int(round((m[-1] - m[0]) / bin_width)) + 1
    return m[0] - half + bin_width * np.arange(n + 1)


def training_range(edges: Sequence[float]) -> list[float]:
    """mllg range a scan strategy trains on: the span of the bin edges."""
    return [float(edges[0]), float(edges[-1])]


def balanced_per_mass_bin_weights(
    mass: np.ndarray, y: np.ndarray, weight: np.ndarray, edges: Sequence[float]
) -> np.ndarray:
    """Training weights of the muNN: in every bin of `edges`, signal and background each sum to the same total
    (1 per bin and class, times the number of events over the number of bins' classes), the physical weights'
    shape kept within a bin and class; events outside the edges, and the events of a bin where one class has
    no positive total, get 0 (a bin without both classes cannot be balanced)."""
    mass, y = np.asarray(mass, np.float64), np.asarray(y)
    weight = np.asarray(weight, np.float64)
    edges = np.asarray(edges, np.float64)
    out = np.zeros(len(mass))
    idx = np.searchsorted(edges, mass, side="right") - 1
    inside = (idx >= 0) & (idx < len(edges) - 1)
    groups = []
    for b in range(len(edges) - 1):
        sel = [inside & (idx == b) & (y == cls) for cls in (0, 1)]
        totals = [weight[s].sum() for s in sel]
        if min(totals) > 0:
            groups.append((sel, totals))
    if not groups:
        raise ValueError(f"no mllg bin of {edges.tolist()} holds both signal and background")
    scale = np.count_nonzero(inside) / (2.0 * len(groups))  # mean weight of an in-range event about 1
    for sel, totals in groups:
        for s, total in zip(sel, totals):
            out[s] = weight[s] * scale / total
    return out


def balanced_per_mass_point_weights(
    y: np.ndarray, weight: np.ndarray, true_mass: np.ndarray, masses: Sequence[float]
) -> np.ndarray:
    """Training weights of the pNN: every mass point's signal sums to the same total, the background keeps its
    physical weights; then both classes sum to the same total (as `training.balanced_weights`)."""
    y, weight = np.asarray(y), np.asarray(weight, np.float64)
    true_mass = np.asarray(true_mass, np.float64)
    out = weight.copy()
    sig = y == 1
    for m in masses:
        sel = sig & np.isclose(true_mass, m)
        total = weight[sel].sum()
        if total <= 0:
            raise ValueError(f"mass point {m} GeV has no signal with positive weight")
        out[sel] = weight[sel] / total
    for cls in (0, 1):
        sel = y == cls
        out[sel] *= 0.5 * len(out) / out[sel].sum()
    return out


def pnn_background_masses(n: int, masses: Sequence[float], seed: int) -> np.ndarray:
    """Mass inputs of the pNN's background events: drawn uniformly from the mass points, a function of
    (n, masses, seed) only."""
    rng = np.random.default_rng([int(seed), 4004])
    return rng.choice(np.asarray(sorted(masses), np.float64), size=int(n))


def true_masses(
    sample_id: np.ndarray, y: np.ndarray, sample_masses: Mapping[int, float], default: float
) -> np.ndarray:
    """Generated Higgs mass of every signal event from its sample id (`default` for a signal sample not in
    `sample_masses`); NaN for background."""
    sample_id, y = np.asarray(sample_id), np.asarray(y)
    out = np.full(len(sample_id), np.nan)
    out[y == 1] = float(default)
    for sid, m in sample_masses.items():
        out[(sample_id == sid) & (y == 1)] = float(m)
    return out


def with_hypothesis(
    frame: Any, features: Sequence[str], checkpoint: Mapping[str, Any], hypothesis: float | None
) -> Any:
    """`frame` (a DataFrame) with the pNN's mass hypothesis column: `hypothesis`, else the frame's own column,
    else the checkpoint's nominal mass; unchanged for a classifier without that input."""
    if HYPOTHESIS_FEATURE not in features:
        return frame
    if hypothesis is None:
        if HYPOTHESIS_FEATURE in frame.columns:
            return frame
        scan = checkpoint.get("mass_scan") or {}
        if "nominal_mass" not in scan:
            raise KeyError(
                f"parametrised classifier without a mass hypothesis: give one ({HYPOTHESIS_FEATURE})"
            )
        hypothesis = scan["nominal_mass"]
    return frame.assign(**{HYPOTHESIS_FEATURE: np.float32(hypothesis)})


def is_scan_strategy(strategy: str | None) -> bool:
    return check_strategy(strategy or STANDARD) != STANDARD
