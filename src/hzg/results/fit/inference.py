"""Statistical inference on the mℓℓγ workspace with pyhf's own optimisers and cabinetry.

* Fit: pyhf.infer.mle.fit with pyhf's `minuit` optimiser (iminuit: MIGRAD, HESSE), numpy backend; MINOS on
  mu through the same Minuit object. Fallback where MIGRAD fails: strategy 2, then pyhf's `scipy` optimiser
  (no HESSE; mu's interval then from the profile likelihood crossings). Whatever happened is in `FitFlags`.
* Scan and significance: cabinetry.fit.scan / significance (pyhf with minuit underneath). CLs limit: pyhf's
  linear_grid_scan (one grid of hypothesis tests for the limit and its band), with the background-only MC as
  data, so its "observed" limit is the expected one of the analysis. Ranking: cabinetry's definition, pyhf
  fits (see `ranking` for why not cabinetry's own).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cabinetry
import iminuit
import numpy as np
import pyhf
from scipy.optimize import brentq
from scipy.stats import norm

from hzg.results.fit.results import Block, FitFlags, FitResult, LimitResult, ScanResult, SignificanceResult
from hzg.results.fit.workspace import MODIFIER_SETTINGS, POI, model_and_data, stat_only, workspace

log = logging.getLogger(__name__)
logging.getLogger("cabinetry").setLevel(logging.WARNING)
logging.getLogger("pyhf").setLevel(logging.WARNING)
TOLERANCE = 0.1  # MIGRAD: EDM < 0.002 * tolerance (iminuit's default)
#: MIGRAD strategy of the many conditional fits (scan, limit, significance, ranking): 0 (no Hessian updates
#: beyond what MIGRAD needs; about twice as fast here). The main fit uses 1, then 2 (it needs HESSE and
#: MINOS).
STRATEGY = 0


class _MigradCovariance(iminuit.Minuit):
    """Minuit whose `hesse` keeps MIGRAD's covariance estimate (computes HESSE only where MIGRAD has none)."""

    __slots__ = ()

    def hesse(self, ncall: int | None = None) -> iminuit.Minuit:
        return super().hesse(ncall) if self.covariance is None else self


class CachedMinuit(pyhf.optimize.minuit_optimizer):
    """pyhf's minuit optimiser with two savings for the many fits whose parameter errors nobody reads (scan,
    limit, significance, ranking; about half of the fit stage's time before):

    * HESSE (which pyhf runs after every MIGRAD) only where uncertainties or correlations are asked for;
    * a fit identical to one done before by this optimiser (same objective, model, data, start, bounds, fixed
      values and options) answered from a cache: pyhf's hypotest repeats the free fit, the Asimov generation
      and the free fit to the Asimov data at every mu of a limit scan, 3 of its 5 fits. Fits that return the
      Minuit object are not cached. The cache lives as long as the optimiser (one `_set_backend`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict[Any, Any] = {}
        self._errors_wanted = True

    def minimize(
        self,
        objective: Any,
        data: Any,
        pdf: Any,
        init_pars: Any,
        par_bounds: Any,
        fixed_vals: Any = None,
        **kwargs: Any,
    ) -> Any:
        self._errors_wanted = bool(kwargs.get("return_uncertainties") or kwargs.get("return_correlations"))
        if kwargs.get("return_result_obj"):
            return super().minimize(objective, data, pdf, init_pars, par_bounds, fixed_vals, **kwargs)
        key = (
            objective,
            pdf,
            np.asarray(data, dtype=float).tobytes(),
            np.asarray(init_pars, dtype=float).tobytes(),
            np.asarray(par_bounds, dtype=float).tobytes(),
            None if fixed_vals is None else tuple((int(i), float(v)) for i, v in fixed_vals),
            tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
        )
        if key not in self._cache:
            self._cache[key] = super().minimize(
                objective, data, pdf, init_pars, par_bounds, fixed_vals, **kwargs
            )
        out = self._cache[key]
        return (
            tuple(np.array(x, copy=True) for x in out) if isinstance(out, tuple) else np.array(out, copy=True)
        )

    def _get_minimizer(self, *args: Any, **kwargs: Any) -> iminuit.Minuit:
        minuit = super()._get_minimizer(*args, **kwargs)
        if not self._errors_wanted:  # same object, HESSE left out (a subclass without state of its own)
            minuit.__class__ = _MigradCovariance
        return minuit


def _set_backend(optimizer: str = "minuit", strategy: int = STRATEGY) -> None:
    """numpy tensors and the named pyhf optimiser (pyhf's backend is global state: set before every use)."""
    opt = (
        CachedMinuit(verbose=0, strategy=strategy, tolerance=TOLERANCE)
        if optimizer == "minuit"
        else pyhf.optimize.scipy_optimizer(verbose=0)
    )
    pyhf.set_backend("numpy", opt)


def par_bounds(model: pyhf.Model, poi_bounds: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """The model's suggested bounds, the POI's narrowed to `poi_bounds` where given (config `fit.mu_bounds`).
    Never widened: the workspace's own POI bounds keep every bin's expectation positive
    (`workspace.physical_poi_bounds`), and a fit beyond them would read a negative expectation as a gain."""
    bounds = [tuple(map(float, b)) for b in model.config.suggested_bounds()]
    if poi_bounds is not None:
        lo, hi = bounds[model.config.poi_index]
        bounds[model.config.poi_index] = (max(float(poi_bounds[0]), lo), min(float(poi_bounds[1]), hi))
    return bounds


def prefit_uncertainty(model: pyhf.Model) -> np.ndarray:
    """Per scalar parameter the width of its constraint term (0 for unconstrained ones)."""
    out: list[float] = []
    for name in model.config.par_order:
        ps = model.config.param_set(name)
        out += list(map(float, ps.width())) if ps.constrained else [0.0] * ps.n_parameters
    return np.asarray(out, dtype=float)


def _at_limit(
    values: np.ndarray,
    bounds: Sequence[tuple[float, float]],
    fixed: Sequence[bool],
    labels: Sequence[str],
    poi: int,
) -> tuple[str, ...]:
    """Free non-POI parameters whose value lies within 1e-6 (relative to the range) of a bound."""
    out = []
    for i, (lo, hi) in enumerate(bounds):
        tol = 1e-6 * (hi - lo)
        if i != poi and not fixed[i] and (values[i] - lo < tol or hi - values[i] < tol):
            out.append(labels[i])
    return tuple(out)


def _minuit_fit(
    model: pyhf.Model,
    data: np.ndarray,
    bounds: list[tuple[float, float]],
    init: Sequence[float],
    strategy: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, Any]:
    """One pyhf fit with the minuit optimiser: values, HESSE errors, correlations, -2 ln L, the Minuit
    object."""
    _set_backend("minuit", strategy)
    result, corr, twice_nll, obj = pyhf.infer.mle.fit(
        data,
        model,
        init_pars=list(init),
        par_bounds=bounds,
        fixed_params=model.config.suggested_fixed(),
        return_uncertainties=True,
        return_correlations=True,
        return_fitted_val=True,
        return_result_obj=True,
    )
    result = np.asarray(result, dtype=float)
    return result[:, 0], result[:, 1], np.asarray(corr, dtype=float), float(twice_nll), obj.minuit


def _profile_interval(
    model: pyhf.Model,
    data: np.ndarray,
    bounds: list[tuple[float, float]],
    pars: np.ndarray,
    twice_nll: float,
    step: float,
) -> tuple[float, float, bool, bool]:
    """mu's -2 Delta ln L = 1 crossings from conditional fits (the fallback's interval): up, down errors and
    whether a bound stopped each side."""
    poi = model.config.poi_index
    mu_hat = float(pars[poi])

    def g(mu: float) -> float:
        _, nll = pyhf.infer.mle.fixed_poi_fit(
            mu, data, model, init_pars=pars.tolist(), par_bounds=bounds, return_fitted_val=True
        )
        return float(nll) - twice_nll - 1.0

    out = []
    for direction in (+1, -1):
        bound = bounds[poi][1 if direction > 0 else 0]
        outer, limited = mu_hat, True
        for k in range(12):
            outer = float(np.clip(mu_hat + direction * step * 2**k, *bounds[poi]))
            if g(outer) > 0:
                limited = False
                break
            if outer == bound:
                break
        cross = bound if limited else brentq(g, *sorted((mu_hat, outer)), xtol=1e-4 * step)
        out.append((abs(cross - mu_hat), limited))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def fit(
    spec: Mapping[str, Any] | pyhf.Workspace,
    poi_bounds: Sequence[float] | None = None,
    data: np.ndarray | None = None,
) -> FitResult:
    """Maximum-likelihood fit of the workspace (its observations, or `data`) with MINOS on mu (module
    text)."""
    model, obs = model_and_data(spec)
    data = obs if data is None else np.asarray(data, dtype=float)
    bounds = par_bounds(model, poi_bounds)
    poi, labels = model.config.poi_index, tuple(model.config.par_names)
    fixed = model.config.suggested_fixed()
    init = list(map(float, model.config.suggested_init()))
    minuit, optimizer = None, "minuit"
    for strategy in (1, 2):
        try:
            values, errors, corr, twice_nll, minuit = _minuit_fit(model, data, bounds, init, strategy)
            optimizer = "minuit" if strategy == 1 else "minuit strategy 2"
            break
        except pyhf.exceptions.FailedMinimization as err:
            log.warning("minuit (strategy %d) failed: %s", strategy, str(err).strip()[:200])
    if minuit is not None:
        try:
            minuit.minos(labels[poi])
            me = minuit.merrors[labels[poi]]
            err_up, err_down, minos = float(me.upper), float(-me.lower), bool(me.is_valid)
            at_up, at_down = bool(me.at_upper_limit), bool(me.at_lower_limit)
        except RuntimeError as err:  # MINOS refuses (e.g. an invalid minimum): HESSE's error, flagged
            log.warning("MINOS failed: %s", err)
            err_up = err_down = float(errors[poi])
            minos, at_up, at_down = (
                False,
                values[poi] + err_up >= bounds[poi][1],
                values[poi] - err_down <= bounds[poi][0],
            )
        flags = FitFlags(
            optimizer,
            bool(minuit.valid),
            bool(minuit.fmin.has_accurate_covar and not minuit.fmin.has_made_posdef_covar),
            minos,
            bool(at_up),
            bool(at_down),
            _at_limit(values, bounds, fixed, labels, poi),
        )
    else:
        log.warning("falling back to pyhf's scipy optimiser")
        _set_backend("scipy")
        values, twice_nll = pyhf.infer.mle.fit(
            data, model, init_pars=init, par_bounds=bounds, return_fitted_val=True
        )
        values, twice_nll = np.asarray(values, dtype=float), float(twice_nll)
        err_up, err_down, lim_up, lim_down = _profile_interval(model, data, bounds, values, twice_nll, 0.1)
        errors = np.full(values.size, np.nan)
        errors[poi] = 0.5 * (err_up + err_down)
        corr = np.eye(values.size)
        flags = FitFlags(
            "scipy (fallback)",
            True,
            False,
            False,
            lim_up,
            lim_down,
            _at_limit(values, bounds, fixed, labels, poi),
        )
    for problem in flags.problems():
        log.warning("fit: %s", problem)
    return FitResult(
        labels,
        values,
        np.where(fixed, 0.0, errors),
        corr,
        twice_nll,
        poi,
        err_up,
        err_down,
        flags,
        prefit_uncertainty(model),
    )


def scan(
    spec: Mapping[str, Any] | pyhf.Workspace,
    result: FitResult,
    poi_bounds: Sequence[float] | None = None,
    n_steps: int = 11,
    sigmas: float = 2.2,
) -> ScanResult:
    """cabinetry's profile likelihood scan of mu over mu_hat -+ sigmas x its MINOS errors (inside the
    bounds)."""
    model, data = model_and_data(spec)
    bounds = par_bounds(model, poi_bounds)
    lo, hi = bounds[model.config.poi_index]
    rng = (max(lo, result.mu_hat - sigmas * result.err_down), min(hi, result.mu_hat + sigmas * result.err_up))
    _set_backend()
    failed = 0
    try:
        out = cabinetry.fit.scan(
            model,
            data.tolist(),
            POI,
            par_range=rng,
            n_steps=n_steps,
            par_bounds=bounds,
            tolerance=TOLERANCE,
            strategy=STRATEGY,
        )
        points, deltas = (
            np.asarray(out.parameter_values, dtype=float),
            np.asarray(out.delta_nlls, dtype=float),
        )
    except pyhf.exceptions.FailedMinimization:
        points, deltas, failed = _scan_by_refit(model, data, result, bounds, np.linspace(*rng, n_steps))
        log.warning(
            "fit: cabinetry's likelihood scan failed at a point; scanned point by point with the fallback "
            "optimisers instead, %d of %d points failed and are left out",
            failed,
            n_steps,
        )
    mu = np.append(points, result.mu_hat)
    delta = np.append(deltas, 0.0)
    order = np.argsort(mu)
    return ScanResult(mu[order], delta[order], failed)


def _scan_by_refit(
    model: pyhf.Model,
    data: np.ndarray,
    result: FitResult,
    bounds: list[tuple[float, float]],
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """-2 Delta ln L at each mu of `grid` from `refit` (minuit, minuit strategy 2, scipy); the points where
    every optimiser fails are left out and counted."""
    poi = model.config.poi_index
    fixed = list(model.config.suggested_fixed())
    fixed[poi] = True
    points, deltas = [], []
    for mu in grid:
        init = np.asarray(result.bestfit, dtype=float).copy()
        init[poi] = mu
        pars = refit(model, data, init, bounds, fixed)
        if pars is None:
            continue
        points.append(float(mu))
        deltas.append(float(-2.0 * model.logpdf(pars, data)[0]) - result.twice_nll)
    return np.asarray(points), np.asarray(deltas), len(grid) - len(points)


def refit(
    model: pyhf.Model,
    data: np.ndarray,
    init: np.ndarray,
    bounds: list[tuple[float, float]],
    fixed: list[bool],
) -> np.ndarray | None:
    """Best-fit parameters with pyhf: minuit (strategy STRATEGY, then 2), then scipy; None if all three
    fail."""
    for optimizer, strategy in (("minuit", STRATEGY), ("minuit", 2), ("scipy", 0)):
        _set_backend(optimizer, strategy)
        try:
            return np.asarray(
                pyhf.infer.mle.fit(
                    data, model, init_pars=init.tolist(), par_bounds=bounds, fixed_params=fixed
                ),
                dtype=float,
            )
        except pyhf.exceptions.FailedMinimization:
            continue
        finally:
            _set_backend()
    return None


def ranking(
    spec: Mapping[str, Any] | pyhf.Workspace,
    result: FitResult,
    poi_bounds: Sequence[float] | None = None,
    exclude_prefix: Sequence[str] = ("bkg_norm_", "signal_mc_stat_"),
    prefit: bool = False,
) -> list[dict[str, Any]]:
    """Impacts on mu, cabinetry's definition: mu refitted with one parameter fixed at its best fit +- its
    post-fit (and with `prefit` its pre-fit) uncertainty, minus mu_hat; largest post-fit impact first.

    Each entry: name, postfit_up/down (prefit_up/down), impact = max |post-fit|. Parameters whose name starts
    with one of `exclude_prefix` are not ranked: by default the free background norms (one category's
    sideband normalisation each) and the per-category signal MC statistics (a few per cent each, and half of
    the refits). Written here rather than taken from cabinetry.fit.ranking, which sets the shifted value
    outside a parameter's bounds where the post-fit error reaches them (the spurious-signal parameters' bounds
    keep every expectation positive) and then fails; here the shift stops at the bound.
    """
    model, data = model_and_data(spec)
    bounds = par_bounds(model, poi_bounds)
    poi = model.config.poi_index
    fixed0 = list(model.config.suggested_fixed())
    _set_backend()
    out = []
    for i, name in enumerate(result.labels):
        if i == poi or fixed0[i] or any(name.startswith(p) for p in exclude_prefix):
            continue
        shifts = {"postfit_up": result.uncertainty[i], "postfit_down": -result.uncertainty[i]}
        if prefit:
            shifts |= {
                "prefit_up": result.prefit_uncertainty[i],
                "prefit_down": -result.prefit_uncertainty[i],
            }
        entry: dict[str, Any] = {"name": name}
        for key, shift in shifts.items():
            if not np.isfinite(shift) or shift == 0:
                entry[key] = 0.0
                continue
            init = result.bestfit.copy()
            init[i] = float(np.clip(init[i] + shift, *bounds[i]))
            fixed = list(fixed0)
            fixed[i] = True
            pars = refit(model, data, init, bounds, fixed)
            entry[key] = None if pars is None else float(pars[poi]) - result.mu_hat
            if pars is None:
                log.warning("ranking: every refit with %s = %.4g failed", name, init[i])
        entry["impact"] = max(abs(entry[k] or 0.0) for k in ("postfit_up", "postfit_down"))
        out.append(entry)
    return sorted(out, key=lambda e: -e["impact"])


def significance(
    spec: Mapping[str, Any] | pyhf.Workspace, poi_bounds: Sequence[float] | None = None
) -> SignificanceResult:
    """Discovery significance (cabinetry.fit.significance, q0, asymptotics) on the observations (the
    weighted MC as data), the expected one of pyhf (Asimov data at mu = 1 with the nuisance parameters
    fitted to the observations) and the pre-fit expected one (q0 on the model's own Asimov data at mu = 1,
    nuisance parameters at their nominal values: free of the MC's fluctuations, which pull the shape
    parameters)."""
    model, data = model_and_data(spec)
    bounds = par_bounds(model, poi_bounds)
    _set_backend()
    try:
        out = cabinetry.fit.significance(
            model, data.tolist(), par_bounds=bounds, tolerance=TOLERANCE, strategy=STRATEGY
        )
    except pyhf.exceptions.FailedMinimization as err:
        log.warning("significance not computed: %s", str(err).strip()[:200])
        return SignificanceResult(None, None)
    init = np.asarray(model.config.suggested_init(), dtype=float)
    init[model.config.poi_index] = 1.0
    asimov = np.asarray(model.expected_data(init), dtype=float)
    try:
        prefit = float(
            cabinetry.fit.significance(
                model, asimov.tolist(), par_bounds=bounds, tolerance=TOLERANCE, strategy=STRATEGY
            ).observed_significance
        )
    except pyhf.exceptions.FailedMinimization as err:
        log.warning("pre-fit expected significance not computed: %s", str(err).strip()[:200])
        prefit = None
    return SignificanceResult(float(out.observed_significance), float(out.expected_significance), prefit)


def _cls_grid(
    model: pyhf.Model, data: np.ndarray, grid: np.ndarray, cl: float, bounds: list[tuple[float, float]]
) -> tuple[np.ndarray, list[Any]]:
    """pyhf's linear_grid_scan results on `grid`, extended upwards (x 4, 4 points, at most twice) while the
    observed or the median expected CLs has not reached 1 - cl yet: (the mu values, pyhf's hypotest
    results)."""
    results: list[Any] = []
    for _ in range(3):
        results += pyhf.infer.intervals.upper_limits.linear_grid_scan(
            data,
            model,
            grid[len(results) :],
            level=1.0 - cl,
            return_results=True,
            test_stat="qtilde",
            calctype="asymptotics",
            par_bounds=bounds,
        )[2][1]
        last = [float(results[-1][0]), float(results[-1][1][2])]  # observed and median expected
        if max(last) < 1.0 - cl:
            break
        grid = np.concatenate([grid, grid[-1] * np.geomspace(1.0, 4.0, 5)[1:]])
    return grid[: len(results)], results


def limit(
    spec: Mapping[str, Any] | pyhf.Workspace,
    background_only: Mapping[str, Any],
    cl: float = 0.95,
    poi_bounds: Sequence[float] | None = None,
    n_points: int = 6,
) -> LimitResult:
    """Expected CLs limit on mu (pyhf's linear_grid_scan, qtilde, asymptotics) with the background-only MC as
    data.

    cabinetry.fit.limit and pyhf's toms748_scan find the limit and each band edge in six separate root
    searches (100-170 s per workspace with systematics here, 3 s per hypothesis test); here `n_points`
    hypothesis tests on a log grid of mu from 0.4 to 6 times the stat-only Fisher estimate at mu = 0 (extended
    upwards where needed, `_cls_grid`) give all six, interpolated between them in Phi^-1(1 - CLs). MIGRAD
    strategy 1 (0 fails here with systematics), a failed fit reruns the grid with strategy 2. A curve that
    does not cross CLs = 1 - cl inside the grid (a band edge: None in the band), or a grid that fails with
    every strategy, gives no number and a `note`, never a made-up one.

    `background_only`: category -> background MC yields.
    """
    if not 0 < cl < 1:
        raise ValueError(f"limit: cl must lie in (0, 1), got {cl!r}")
    model, data = model_and_data(spec)
    bounds = par_bounds(model, poi_bounds)
    poi = model.config.poi_index
    n_main = model.config.nmaindata
    b_only = np.concatenate([np.asarray(background_only[c], float) for c in model.config.channels])
    data = np.concatenate([np.clip(b_only, 0.0, None), data[n_main:]])
    init = np.asarray(model.config.suggested_init(), dtype=float)
    init[poi] = 0.0
    b = np.asarray(model.expected_actualdata(init), dtype=float)
    init[poi] = 1.0
    s = np.asarray(model.expected_actualdata(init), dtype=float) - b
    sigma = 1.0 / np.sqrt(max(float(np.sum(s[b > 0] ** 2 / b[b > 0])), 1e-300))
    guess = 1.96 * sigma
    bounds[poi] = (0.0, max(bounds[poi][1], 100.0 * guess))
    errors = []
    for strategy in (1, 2):  # a failed fit: the whole grid again with MIGRAD strategy 2
        _set_backend("minuit", strategy)
        try:
            grid, results = _cls_grid(
                model, data, np.geomspace(0.4 * guess, 6.0 * guess, n_points), cl, bounds
            )
            break
        except (ValueError, pyhf.exceptions.FailedMinimization) as err:
            errors.append(f"strategy {strategy}: {str(err).strip()[:100] or type(err).__name__}")
        finally:
            _set_backend()
    else:
        note = "CLs scan failed: " + "; ".join(errors)
        log.warning("upper limit not computed: %s", note)
        return LimitResult(cl, None, None, False, note)
    # rows: observed CLs, then the expected -2..+2 sigma; interpolated in mu as the normal quantile
    # z = Phi^-1(1 - CLs), linear in mu for the asymptotic median expected CLs = 2 (1 - Phi(mu / sigma)) and
    # close to it for the others. log CLs, which falls like -mu^2 / 2 sigma^2, put its chords below the
    # curve and the limits 2-6 % low at this grid's spacing (against pyhf's toms748_scan; tested)
    curves = np.array([[float(r[0])] + [float(x) for x in r[1]] for r in results]).T
    limits, outside = [], []
    for k, curve in enumerate(curves):
        if not (curve[0] > 1.0 - cl > curve[-1]):
            outside.append(("observed", "-2", "-1", "median", "+1", "+2")[k])
            limits.append(None)
            continue
        z = norm.isf(np.clip(curve, 1e-300, 1.0))
        limits.append(float(np.interp(norm.isf(1.0 - cl), z, grid)))
    note = (
        None
        if not outside
        else (f"CLs = {1 - cl:g} not crossed in mu [{grid[0]:.3g}, {grid[-1]:.3g}] for " + ", ".join(outside))
    )
    if note:
        log.warning("upper limit: %s", note)
    return LimitResult(
        cl, limits[0], tuple(limits[1:]), limits[0] is not None and limits[3] is not None, note
    )


def mc_stat_error(
    spec: Mapping[str, Any] | pyhf.Workspace, result: FitResult, sumw2: Mapping[str, Any]
) -> float | None:
    """The MC-statistical error of mu-hat where the observations are (built from) weighted MC with per-bin
    variance `sumw2` (category -> sum of w^2 of the background MC): mu-hat's linear response to the counts,
    d theta / d n_i = C a_i (C the fit's HESSE covariance, a_i = d ln lambda_i / d theta at the best fit),
    propagated with each bin's sum of w^2: sqrt(sum_i (C a_i)_mu^2 sumw2_i). It is what the spread of mu-hat
    over MC replicas would be (the sandwich estimator of `hzg.fit.shapes.sandwich_covariance`, the
    Barlow-Beeston-lite per-bin MC error on the background, profiled away in closed form); it treats the
    smooth background template as fixed, so where the template was fitted to the same MC it errs on the large
    side.
    None where the fit has no usable covariance."""
    model, _ = model_and_data(spec)
    values, errors = result.bestfit, result.uncertainty
    cov = result.correlation * np.outer(errors, errors)
    if not np.all(np.isfinite(cov)):
        return None
    _set_backend()
    var = np.concatenate([np.asarray(sumw2[c], float) for c in model.config.channels])

    def lam(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.expected_actualdata(pyhf.tensorlib.astensor(x)), dtype=float)

    centre = np.clip(lam(values), 1e-12, None)
    response = np.zeros_like(centre)
    for j in np.flatnonzero(errors > 0):
        if cov[result.poi_index, j] == 0:
            continue
        h = 1e-3 * errors[j]
        up, down = values.copy(), values.copy()
        up[j] += h
        down[j] -= h
        response += cov[result.poi_index, j] * (lam(up) - lam(down)) / (2.0 * h) / centre
    return float(np.sqrt(np.sum(response**2 * np.clip(var, 0.0, None))))


def block(
    spec: Mapping[str, Any],
    background_only: Mapping[str, Any],
    cl: float = 0.95,
    poi_bounds: Sequence[float] | None = None,
    mc_sumw2: Mapping[str, Any] | None = None,
) -> Block:
    """Fit, significance, limit and scan of one workspace; with `mc_sumw2` (the background MC's sum of w^2 per
    category) also mu-hat's MC-statistical error (`mc_stat_error`)."""
    result = fit(spec, poi_bounds)
    mc = None if mc_sumw2 is None else mc_stat_error(spec, result, mc_sumw2)
    return Block(
        result,
        significance(spec, poi_bounds),
        limit(spec, background_only, cl, poi_bounds),
        scan(spec, result, poi_bounds),
        mc,
    )


def summarise(
    spec: Mapping[str, Any],
    background_only: Mapping[str, Any],
    cl: float = 0.95,
    poi_bounds: Sequence[float] | None = None,
    with_ranking: bool = True,
    mc_sumw2: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything for fit.json: stat-only and with systematics side by side, and the ranking of the latter;
    `mc_sumw2`: see `block`."""
    full = block(spec, background_only, cl, poi_bounds, mc_sumw2)
    out = {
        "cl": cl,
        "poi": POI,
        "stat_only": block(stat_only(spec), background_only, cl, poi_bounds, mc_sumw2).to_dict(),
        "with_systematics": full.to_dict(),
    }
    if with_ranking:
        out["ranking"] = ranking(spec, full.fit, poi_bounds)
    return out


def category_yields(
    spec: Mapping[str, Any] | pyhf.Workspace, pars: Sequence[float] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Per category the expected signal and background at `pars` (pre-fit: None) and the observations."""
    ws = workspace(spec)
    model = ws.model(modifier_settings=MODIFIER_SETTINGS)
    _set_backend()
    x = np.asarray(model.config.suggested_init() if pars is None else pars, dtype=float)
    by_sample = np.asarray(model.main_model.expected_data(x, return_by_sample=True))
    rows = {name: by_sample[i] for i, name in enumerate(model.config.samples)}
    return {
        c: {
            **{name: np.asarray(rows[name][sl], dtype=float) for name in model.config.samples},
            "data": np.asarray(ws.observations[c], dtype=float),
        }
        for c, sl in model.config.channel_slices.items()
    }
