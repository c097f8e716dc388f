"""The composition of a sample: which fraction of it looks like one template rather than another.

Used to measure how much of the paper's background is Drell-Yan with a photon off a lepton (FSR), from the
authors' published example events (`docs/compare_paper_example.py`): the example's histogram of a variable
that separates the two (mll, |cos theta|, min Delta R(l, gamma), mllg) is fitted with a mixture of this
workflow's qqbar -> Z gamma (ISR) and FSR templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

#: points of the fraction's likelihood scan (the 68 % interval is read off it)
SCAN_POINTS = 2001


@dataclass(frozen=True)
class FractionFit:
    """A two-template fit of an observed histogram: fraction of the second template and its 68 % interval."""

    fraction: float
    low: float  # 68 % interval, -2 Delta ln L = 1, within [0, 1]
    high: float
    chi2: float  # Pearson chi2 of the best fit
    ndf: int  # bins - 1
    chi2_at: dict[float, float]  # Pearson chi2 at the fractions asked for (`template_fraction(at=...)`)


def _shape(template: np.ndarray, name: str) -> np.ndarray:
    template = np.asarray(template, float)
    if template.ndim != 1 or not np.all(np.isfinite(template)) or np.any(template < 0):
        raise ValueError(f"template {name} must be a 1-d histogram of finite, non-negative contents")
    total = template.sum()
    if total <= 0:
        raise ValueError(f"template {name} is empty")
    return template / total


def template_fraction(
    observed: np.ndarray, first: np.ndarray, second: np.ndarray, at: tuple[float, ...] = ()
) -> FractionFit:
    """Fraction f of `second` in `observed` (counts per bin), modelled as N ((1 - f) first + f second) with
    the templates normalised to unit sum and N the observed total: a binned Poisson likelihood, f in [0, 1].

    The templates' own MC statistics are neglected (they should hold far more events than `observed`).

    Args:
        observed: Observed counts per bin.
        first: Histogram of the first template (any normalisation, e.g. weighted MC).
        second: Histogram of the second template, same bins.
        at: Fractions at which to report the chi2 as well (e.g. the fraction a sample assumes).

    Returns:
        The fitted fraction, its 68 % interval, the chi2 of the best fit and at each of `at`.
    """
    n = np.asarray(observed, float)
    a, b = _shape(first, "first"), _shape(second, "second")
    if not (n.shape == a.shape == b.shape):
        raise ValueError(f"observed {n.shape} and templates {a.shape}, {b.shape} need the same bins")
    if np.any(n < 0) or n.sum() <= 0:
        raise ValueError("observed counts must be non-negative with a positive total")
    total = n.sum()

    def expected(f: float) -> np.ndarray:
        return total * ((1.0 - f) * a + f * b)

    def nll(f: float) -> float:
        mu = np.maximum(expected(f), 1e-300)
        return float(np.sum(mu - n * np.log(mu)))

    best = minimize_scalar(nll, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-7})
    grid = np.linspace(0.0, 1.0, SCAN_POINTS)
    scan = np.array([nll(f) for f in grid])
    # the optimiser's minimum, or the scan's where the scan found a lower one
    f_hat, nll_hat = (float(best.x), float(best.fun))
    if scan.min() < nll_hat:
        f_hat, nll_hat = float(grid[np.argmin(scan)]), float(scan.min())
    inside = grid[2.0 * (scan - nll_hat) <= 1.0]

    def chi2(f: float) -> float:
        mu = expected(f)
        return float(np.sum((n - mu) ** 2 / np.maximum(mu, 1e-12)))

    return FractionFit(
        fraction=f_hat,
        low=float(min(inside.min(), f_hat)),
        high=float(max(inside.max(), f_hat)),
        chi2=chi2(f_hat),
        ndf=int(n.size - 1),
        chi2_at={float(f): chi2(float(f)) for f in at},
    )
