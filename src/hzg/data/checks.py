"""Physics sanity checks of the data side: signal peak and width, selection fractions, background shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TRUNCATED_2SIGMA_STD = 0.8796  # std of a unit Gaussian truncated to +-2 sigma


def gaussian_core(
    mass: np.ndarray, weights: np.ndarray, window: tuple[float, float] = (115.0, 135.0), iterations: int = 5
) -> tuple[float, float]:
    """Mean and width of the Gaussian core of a peak: iterated weighted moments within +-2 sigma."""
    sel = (mass > window[0]) & (mass < window[1])
    m, w = mass[sel], np.clip(weights[sel], 0, None)
    if w.sum() <= 0:
        raise ValueError(f"no events in the peak window {window}")
    mean = float(np.average(m, weights=w))
    sigma = float(np.sqrt(np.average((m - mean) ** 2, weights=w)))
    for _ in range(iterations):
        core = np.abs(m - mean) < 2 * sigma
        mean = float(np.average(m[core], weights=w[core]))
        sigma = float(np.sqrt(np.average((m[core] - mean) ** 2, weights=w[core]))) / TRUNCATED_2SIGMA_STD
    return mean, sigma


def falling_ratio(
    mass: np.ndarray,
    weights: np.ndarray,
    low: tuple[float, float] = (100.0, 120.0),
    high: tuple[float, float] = (160.0, 180.0),
) -> float:
    """Weighted events in the `low` mass range over those in the `high` one (> 1: falling)."""

    def in_range(r: tuple[float, float]) -> float:
        return float(weights[(mass > r[0]) & (mass < r[1])].sum())

    high_sum = in_range(high)
    return in_range(low) / high_sum if high_sum > 0 else float("inf")


def selection_fraction(records: Sequence[Mapping[str, Any]]) -> float:
    """Selected over generated events (generator-weighted: a biased sample's raw fraction is not it), all
    chunks."""
    generated = sum(r["cutflow"][0]["sum_weights"] for r in records)
    selected = sum(r["cutflow"][-1]["sum_weights"] for r in records)
    return selected / generated


def resolution_summary(res_map: Mapping[str, Any]) -> dict[str, Any]:
    """sigma_m calibration of a resolution map (`hzg.data.resolution.calibrate`): the signal pull
    (m_llg - 125 GeV) / sigma_m half-width (16-84 %) overall and per object type and (|eta|, pT) bin,
    before and after, with the entries per bin, and the median sigma_m in GeV."""
    calib = res_map.get("calibration")
    if calib is None:
        return {"calibrated": False}
    return {
        "calibrated": True,
        "eta_edges": res_map["eta_edges"],
        "pt_edges": res_map["pt_edges"],
        "n_signal_events": calib["n_events"],
        "pull_width_all": {
            "before": calib["pull_width_before"]["all"],
            "after": calib["pull_width_after"]["all"],
        },
        "pull_width_per_bin": {
            name: {
                "before": calib["pull_width_before"][name]["width"],
                "after": calib["pull_width_after"][name]["width"],
                "entries": calib["pull_width_after"][name]["entries"],
            }
            for name in ("electron", "muon", "photon")
            if name in calib["pull_width_after"]
        },
        "sigma_m_median_gev": {
            "before": calib["sigma_m_median_gev_before"],
            "after": calib["sigma_m_median_gev_after"],
        },
    }


def physics_summary(
    sig_mass: np.ndarray,
    sig_w: np.ndarray,
    bkg_mass: np.ndarray,
    bkg_w: np.ndarray,
    fractions: Mapping[str, float],
    res_map: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The numbers the data side is checked against (paper 000: 20 % signal, 11 % background pass).

    With `res_map`, also the sigma_m calibration (`resolution_summary`): the signal pull width per bin.
    """
    mean, sigma = gaussian_core(sig_mass, sig_w)
    extra = {} if res_map is None else {"sigma_m_pull": resolution_summary(res_map)}
    return {
        "signal_peak_gev": mean,
        "signal_width_gev": sigma,
        "background_low_over_high": falling_ratio(bkg_mass, bkg_w),
        "selection_fraction": dict(fractions),
        "paper_selection_fraction": {"signal": 9.0 / 45.0, "background": 5.0 / 45.0},
        **extra,
    }
