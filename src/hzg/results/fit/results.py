"""Typed containers of the fit's results (in the style of cabinetry's results_containers), JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def finite_or_none(x: float | None) -> float | None:
    """x as a float, or None where it is missing or not finite (strict JSON has no NaN or Infinity)."""
    return None if x is None or not np.isfinite(x) else float(x)


@dataclass(frozen=True)
class FitFlags:
    """How a fit went: the optimiser that produced it and every warning sign, so none passes silently."""

    optimizer: str  # "minuit" (iminuit via pyhf), "minuit strategy 2", or "scipy (fallback)"
    converged: bool  # MIGRAD valid (or scipy success for the fallback)
    hessian_positive_definite: bool  # HESSE covariance accurate and not forced positive definite
    minos_valid: bool  # both MINOS crossings of mu found
    limited_up: bool  # the upper mu error stops at the POI bound
    limited_down: bool  # the lower mu error stops at the POI bound
    parameters_at_limit: tuple[str, ...] = ()  # free parameters whose best fit lies on a bound

    def problems(self) -> list[str]:
        """Short texts for each warning sign (empty list: a clean fit)."""
        out = []
        if not self.converged:
            out.append("not converged")
        if self.optimizer != "minuit":
            out.append(f"optimizer: {self.optimizer}")
        if not self.hessian_positive_definite:
            out.append("Hessian not positive definite")
        if not self.minos_valid:
            out.append("MINOS invalid")
        if self.limited_up or self.limited_down:
            out.append(
                "mu interval limited by bound"
                + (" (up)" if self.limited_up else "")
                + (" (down)" if self.limited_down else "")
            )
        if self.parameters_at_limit:
            out.append("at bound: " + ", ".join(self.parameters_at_limit))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, with the `problems` list."""
        return {
            **asdict(self),
            "parameters_at_limit": list(self.parameters_at_limit),
            "problems": self.problems(),
        }


@dataclass(frozen=True)
class FitResult:
    """Maximum-likelihood fit: every parameter's best fit and HESSE error, mu with its MINOS interval."""

    labels: tuple[str, ...]
    bestfit: np.ndarray
    uncertainty: np.ndarray
    correlation: np.ndarray
    twice_nll: float
    poi_index: int
    err_up: float
    err_down: float
    flags: FitFlags
    prefit_uncertainty: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def mu_hat(self) -> float:
        """Best-fit signal strength."""
        return float(self.bestfit[self.poi_index])

    @property
    def err_hesse(self) -> float:
        """Symmetric HESSE error of mu."""
        return float(self.uncertainty[self.poi_index])

    def parameters(self) -> list[dict[str, Any]]:
        """Per parameter: name, value, error, pre-fit error (0 if unconstrained), pull and its error (None if
        unconstrained: pull = (value - 0 or 1) / pre-fit error for Gaussian-constrained, centred at 0)."""
        rows = []
        for i, name in enumerate(self.labels):
            pre = float(self.prefit_uncertainty[i]) if self.prefit_uncertainty.size else 0.0
            constrained = pre > 0 and i != self.poi_index and not name.startswith("bkg_norm_")
            rows.append(
                {
                    "name": name,
                    "value": float(self.bestfit[i]),
                    "error": finite_or_none(self.uncertainty[i]),
                    "prefit_error": pre,
                    "pull": finite_or_none(self.bestfit[i] / pre) if constrained else None,
                    "pull_error": finite_or_none(self.uncertainty[i] / pre) if constrained else None,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (no NaN or Infinity)."""
        return {
            "mu_hat": self.mu_hat,
            "err_up": finite_or_none(self.err_up),
            "err_down": finite_or_none(self.err_down),
            "err_hesse": finite_or_none(self.err_hesse),
            "twice_nll_min": float(self.twice_nll),
            "flags": self.flags.to_dict(),
            "parameters": self.parameters(),
        }


@dataclass(frozen=True)
class ScanResult:
    """Profile likelihood scan of mu: -2 Delta ln L at each mu."""

    mu: np.ndarray
    delta_2nll: np.ndarray
    failed_points: int = 0  # scan points where every optimiser failed (left out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "mu": [float(x) for x in self.mu],
            "delta_2nll": [float(x) for x in self.delta_2nll],
            "failed_points": int(self.failed_points),
        }


@dataclass(frozen=True)
class LimitResult:
    """Expected CLs upper limit on mu (background-only MC as data) with its -2..+2 sigma band, or why not."""

    cl: float
    expected: float | None
    band: tuple[float | None, ...] | None
    converged: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "cl": self.cl,
            "expected": finite_or_none(self.expected),
            "band": None if self.band is None else [finite_or_none(x) for x in self.band],
            "converged": self.converged,
            "note": self.note,
        }


@dataclass(frozen=True)
class SignificanceResult:
    """Discovery significance: on the MC Asimov data (`observed`), pyhf's expected one (Asimov at mu = 1 with
    the nuisance parameters fitted to the observations, `expected`) and the pre-fit one (the model's own
    Asimov at mu = 1, nominal nuisance parameters, `expected_prefit`)."""

    observed: float | None
    expected: float | None
    expected_prefit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "observed": finite_or_none(self.observed),
            "expected": finite_or_none(self.expected),
            "expected_prefit": finite_or_none(self.expected_prefit),
        }


@dataclass(frozen=True)
class Block:
    """The results of one workspace (stat. only or with systematics)."""

    fit: FitResult
    significance: SignificanceResult
    limit: LimitResult
    scan: ScanResult
    mc_stat: float | None = (
        None  # mu-hat's MC-statistical error (the observations are MC; None: not computed)
    )

    def pull(self) -> float | None:
        """(mu-hat - 1) / (its error towards 1, in quadrature with the MC-statistical error): the MC as data
        hold mu = 1, so this should be a standard normal number."""
        err = self.fit.err_down if self.fit.mu_hat > 1.0 else self.fit.err_up
        if err is None or not np.isfinite(err):
            return None
        total = float(np.hypot(err, self.mc_stat or 0.0))
        return finite_or_none((self.fit.mu_hat - 1.0) / total) if total > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; the headline numbers also at the top level."""
        return {
            "mu_hat": self.fit.mu_hat,
            "err_up": finite_or_none(self.fit.err_up),
            "err_down": finite_or_none(self.fit.err_down),
            "err_mc_stat": finite_or_none(self.mc_stat),
            "pull_from_1": self.pull(),
            "significance": self.significance.observed,
            "expected_significance": self.significance.expected,
            "expected_significance_prefit": finite_or_none(self.significance.expected_prefit),
            "upper_limit": self.limit.expected,
            "limit_band": None if self.limit.band is None else [finite_or_none(x) for x in self.limit.band],
            "limit_note": self.limit.note,
            "problems": self.fit.flags.problems()
            + (
                [f"likelihood scan: {self.scan.failed_points} point(s) failed"]
                if self.scan.failed_points
                else []
            ),
            "fit": self.fit.to_dict() | {"scan": self.scan.to_dict()},
            "significance_detail": self.significance.to_dict(),
            "limit": self.limit.to_dict(),
        }
