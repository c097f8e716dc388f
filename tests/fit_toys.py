"""Test-only toys of the mℓℓγ fit: analytic per-category spectra (no random numbers unless a seed is
given)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from hzg.results.fit import Templates
from hzg.results.fit.shapes import cdf_of, exponential_cdf

EDGES = np.linspace(105.0, 170.0, 27)  # 2.5 GeV bins: fast fits, still a peak over several bins


def signal_hist(edges: np.ndarray, total: float, width: float = 2.0, centre: float = 125.0) -> np.ndarray:
    """Gaussian signal of `total` events in the window."""
    cdf = norm(centre, width).cdf(edges)
    return total * np.diff(cdf) / (cdf[-1] - cdf[0])


def exp_hist(edges: np.ndarray, total: float, slope: float) -> np.ndarray:
    """Exponential background of `total` events, density ∝ exp(-slope (m - lo))."""
    return np.diff(exponential_cdf(edges, edges[0], edges[-1], total, slope))


def turnon_hist(edges: np.ndarray) -> np.ndarray:
    """A turned-on falling background of about 114 000 events (an exponential turn-on as a BDT category of the
    default has it), on which a fifth-order Bernstein fit puts a coefficient on its limit of 0."""
    return np.diff(cdf_of("exponential_turnon", edges[0], edges[-1])(edges, 114466.5, 0.0398, 108.07, 4.56))


def toy_templates(
    signal: Sequence[float] = (20.0, 20.0),
    background: Sequence[float] = (20000.0, 2000.0),
    slopes: Sequence[float] = (0.03, 0.05),
    edges: np.ndarray = EDGES,
    spurious: float = 0.0,
    energy_scale: float = 0.005,
    resolution: float = 0.1,
    mc_weight: float = 0.5,
    seed: int | None = None,
    mu_data: float = 1.0,
) -> Templates:
    """Per-category toy: Gaussian signal at 125 GeV, exponential background; the background MC equals the
    smooth template (or a Poisson draw of it with `seed`, then scaled by `mc_weight`), so the MC Asimov data
    are mu_data x signal + background MC. Photon energy scale moves the peak, resolution widens it."""
    rng = None if seed is None else np.random.default_rng(seed)
    cats = tuple(f"bin{k}" for k in range(len(signal)))
    sig, sig2, bmc, bmc2, bkg, var, spur = {}, {}, {}, {}, {}, {}, {}
    for k, c in enumerate(cats):
        s, b = signal_hist(edges, signal[k]), exp_hist(edges, background[k], slopes[k])
        sig[c], sig2[c], bkg[c] = s, s * 0.01, b
        if rng is None:
            bmc[c] = b.copy()
        else:
            bmc[c] = rng.poisson(b / mc_weight) * mc_weight
        bmc2[c] = np.maximum(bmc[c], 0.0) * mc_weight
        var[c] = {
            "photon_energy_scale": (
                signal_hist(edges, signal[k], centre=125.0 * (1 + energy_scale)),
                signal_hist(edges, signal[k], centre=125.0 * (1 - energy_scale)),
            ),
            "photon_resolution": (
                signal_hist(edges, signal[k], width=2.0 * (1 + resolution)),
                signal_hist(edges, signal[k], width=2.0 * (1 - resolution)),
            ),
        }
        spur[c] = spurious
    t = Templates(
        edges=edges,
        categories=cats,
        signal=sig,
        signal_sumw2=sig2,
        background_mc=bmc,
        background_mc_sumw2=bmc2,
        background=bkg,
        spurious_signal=spur,
        signal_variations=var,
    )
    if mu_data != 1.0:  # data with another signal strength: fold (mu_data - 1) x signal into the "MC"
        t = Templates(
            edges=edges,
            categories=cats,
            signal=sig,
            signal_sumw2=sig2,
            background_mc={c: bmc[c] + (mu_data - 1.0) * sig[c] for c in cats},
            background_mc_sumw2=bmc2,
            background=bkg,
            spurious_signal=spur,
            signal_variations=var,
        )
    return t


def poisson_nll(mu: float, norms: np.ndarray, templates: Templates, data: dict[str, np.ndarray]) -> float:
    """-2 ln L (up to a constant) of the stat-only model mu s + norm_c b_c, written out independently of
    pyhf."""
    out = 0.0
    for k, c in enumerate(templates.categories):
        lam = mu * templates.signal[c] + norms[k] * templates.background[c]
        n = data[c]
        out += 2.0 * float(np.sum(lam - n * np.log(lam)))
    return out
