"""A generated spectrum against a published unfolded one: shapes (normalised to unit area) and their chi2.

The reference is a differential cross-section in bins (`Reference`: edges, values, and the uncertainty of
each source, as HEPData's and Rivet's error breakdowns give them). Its covariance takes the sources in
`UNCORRELATED` as independent between bins and every other source as fully correlated (signed as given);
normalising to unit area removes what moves all bins alike (the luminosity, most of the efficiencies). The
generated histogram's covariance comes from its sums of weights and squared weights. The shapes' chi2 uses
all bins but the last (the fractions sum to 1), which makes it independent of the bin left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: error-breakdown sources that are independent from bin to bin
UNCORRELATED = ("Stat", "Uncor")


@dataclass(frozen=True)
class Reference:
    """A published differential cross-section: `values` (per unit of x) in the bins `edges`, and per source
    of uncertainty its signed one-standard-deviation shift of each value."""

    name: str
    edges: FloatArray
    values: FloatArray
    uncertainties: Mapping[str, FloatArray]

    def __post_init__(self) -> None:
        n = len(self.values)
        if len(self.edges) != n + 1 or np.any(np.diff(self.edges) <= 0):
            raise ValueError(f"reference {self.name!r}: {n} values need {n + 1} increasing edges")
        for source, shift in self.uncertainties.items():
            if len(shift) != n:
                raise ValueError(
                    f"reference {self.name!r}: source {source!r} has {len(shift)} values, not {n}"
                )

    @property
    def widths(self) -> FloatArray:
        return np.diff(self.edges)

    def integral(self) -> float:
        """The cross-section summed over the bins (the fiducial one where the bins cover it)."""
        return float(np.sum(self.values * self.widths))

    def covariance(self) -> FloatArray:
        """Covariance of `values`: the `UNCORRELATED` sources on the diagonal, the others fully correlated."""
        n = len(self.values)
        cov = np.zeros((n, n))
        for source, shift in self.uncertainties.items():
            s = np.asarray(shift, dtype=np.float64)
            cov += np.diag(s**2) if source in UNCORRELATED else np.outer(s, s)
        return cov


def load_references(path: str | Path) -> dict[str, Reference]:
    """Every spectrum of a reference file (docs/reference/*.yaml: name -> edges, values, uncertainties)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read reference file {path}: {err}") from err
    out = {}
    for name, entry in raw.items():
        try:
            out[name] = Reference(
                name=name,
                edges=np.asarray(entry["edges"], dtype=np.float64),
                values=np.asarray(entry["values"], dtype=np.float64),
                uncertainties={k: np.asarray(v, dtype=np.float64) for k, v in entry["uncertainties"].items()},
            )
        except KeyError as err:
            raise ValueError(f"reference file {path}: spectrum {name!r} lacks {err}") from err
    return out


def _fractions(content: FloatArray, cov: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bin contents normalised to unit sum, and their covariance (linear propagation)."""
    total = content.sum()
    if not total > 0:
        raise ValueError("a spectrum with no content cannot be normalised")
    frac = content / total
    jac = (np.eye(len(content)) - frac[:, None]) / total
    return frac, jac @ cov @ jac.T


def reference_fractions(ref: Reference) -> tuple[FloatArray, FloatArray]:
    """The reference's fraction of the cross-section per bin and its covariance."""
    w = ref.widths
    return _fractions(ref.values * w, ref.covariance() * np.outer(w, w))


def histogram_fractions(
    x: ArrayLike, weights: ArrayLike, edges: ArrayLike
) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """Fractions of the weighted events per bin (events outside the edges are left out), their covariance
    (from the sums of squared weights) and the raw event counts."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    sumw, _ = np.histogram(x, edges, weights=w)
    sumw2, _ = np.histogram(x, edges, weights=w**2)
    raw, _ = np.histogram(x, edges)
    frac, cov = _fractions(sumw, np.diag(sumw2))
    return frac, cov, raw


@dataclass(frozen=True)
class ShapeComparison:
    chi2: float
    ndf: int
    ratio: FloatArray  # generated fraction / reference fraction per bin


def compare_shapes(
    gen_frac: FloatArray, gen_cov: FloatArray, ref_frac: FloatArray, ref_cov: FloatArray
) -> ShapeComparison:
    """chi2 of two normalised spectra over all bins but the last, with both covariances."""
    diff = (gen_frac - ref_frac)[:-1]
    cov = (gen_cov + ref_cov)[:-1, :-1]
    chi2 = float(diff @ np.linalg.solve(cov, diff))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = gen_frac / ref_frac
    return ShapeComparison(chi2=chi2, ndf=len(diff), ratio=ratio)


def tail_ratio(ref: Reference, x: ArrayLike, weights: ArrayLike, cut: float) -> tuple[float, float]:
    """The weighted fraction of events above `cut` (one of the reference's edges) over the reference's
    fraction of its cross-section there, with the MC-statistical error of the ratio; events outside the
    reference's edges are left out of both fractions."""
    if not np.any(np.isclose(ref.edges[:-1], cut)):
        raise ValueError(f"reference {ref.name!r}: {cut} is not one of its bin edges {ref.edges.tolist()}")
    x, w = np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    above = ref.edges[:-1] >= cut - 1e-12
    measured = np.sum((ref.values * ref.widths)[above]) / ref.integral()
    inside = (x >= ref.edges[0]) & (x < ref.edges[-1])
    total = w[inside].sum()
    sel = inside & (x >= cut)
    return w[sel].sum() / total / measured, float(np.sqrt(np.sum(w[sel] ** 2))) / total / measured
