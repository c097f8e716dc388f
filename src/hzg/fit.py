"""Binned profile-likelihood fit of mℓℓγ in the score categories with pyhf (HistFactory), numpy + scipy.

Conventions, stated once:
* Model: one HistFactory channel per score category ("bin0".."bin7"), bins = the mℓℓγ bins, samples
  "signal" and "background". The signal carries the POI, the unconstrained normfactor `mu`.
* Systematics (config dict, `DEFAULT_SYSTEMATICS` for the keys), named as cabinetry / the IRIS-HEP AGC do:
  - `luminosity`: normsys "luminosity" (hi = 1 + x, lo = 1 - x). It acts on the signal and, with
    `background_norm: constrained`, on the background too. With `background_norm: free` the background
    carries the unconstrained normfactor `bkg_norm` instead and no luminosity or cross-section term:
    a constrained normalisation multiplied by a free one is fixed by the data alone, so it would only add
    a parameter without effect on mu (its impact on mu is exactly zero). `background_xsec` is then ignored.
  - `signal_xsec`, `background_xsec`: normsys "signal_xsec" / "background_xsec" (None or 0: none).
  - `mc_stat`: one staterror "staterror_<category>" per channel (Barlow-Beeston lite: one Gaussian-constrained
    gamma per bin for signal + background together, relative width sqrt(sum of w^2) / yield). pyhf fixes
    the gamma of a bin with zero MC uncertainty.
  - `shape`: histosys of that name from the up/down templates, on each sample that has the variation; one
    parameter per name, correlated across categories. Interpolation (a model setting, not stored in the
    workspace JSON): code4 for normsys, code4p for histosys, as cabinetry; both are smooth at 0, so the
    numerical Hessian at the best fit is well defined (pyhf's default histosys code0 has a kink at 0).
* Observations of `build_workspace` are the Asimov data set: signal * asimov_mu + background with every
  nuisance parameter nominal. `fit_mu` fits the workspace observations; `discovery_significance` and
  `upper_limit` are *expected* results and build their own Asimov data from the model (signal strength
  mu_signal, resp. 0), so they do not depend on the observations.
* POI bounds: from the workspace (build_workspace writes them; default [-10, 10]), the lower one raised to
  -0.9 * min(background / signal) over bins with signal, so that signal * mu + background stays positive
  (a negative Poisson mean is undefined). Every function takes `poi_bounds` to override them.
* Fits: pyhf.infer.mle.fit / fixed_poi_fit / hypotest / upper_limits with pyhf's numpy backend and the
  `ScaledOptimizer` of this module in place of pyhf's scipy optimizer: scipy L-BFGS-B in coordinates scaled
  by the diagonal curvature, with central-difference gradients evaluated in one batched pyhf call. pyhf's
  SLSQP with its finite-difference gradients needs 10-20 s per conditional fit of the 8 x 16-bin model with
  MC-stat gammas (128 gammas of widths 1e-3..1e-1 make it badly conditioned), pyhf's minuit optimizer ~3 s
  (it runs HESSE after every fit); this one 0.1-0.2 s, with the same minima (tests/test_fit.py compares).
  Post-fit uncertainties come from a numerical central-difference Hessian of -2 ln L at the best fit
  (batched), covariance = 2 H^-1. The mu interval is not the Hessian one but the profile-likelihood
  crossings -2 Delta ln L = 1, found with scipy brentq; the Hessian error is reported beside it.
* Ranking (cabinetry's definition): impact of a parameter on mu = mu refitted with the parameter fixed at
  its best fit +- its post-fit uncertainty (and optionally +- its pre-fit uncertainty), minus mu_hat.
  Every free parameter except the POI is ranked, including the free `bkg_norm` (pre-fit impact 0, as it has
  no pre-fit uncertainty) and the MC-stat gammas; sorted by max(|post-fit up|, |post-fit down|).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import logging

import numpy as np
import pyhf
import scipy.optimize
from pyhf.optimize.mixins import OptimizerMixin
from scipy.optimize import brentq
from scipy.stats import norm

log = logging.getLogger(__name__)
POI = "mu"
SAMPLES = ("signal", "background")
MEASUREMENT = "hzg_mllg"
MODIFIER_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
DEFAULT_POI_BOUNDS = (-10.0, 10.0)
DEFAULT_SYSTEMATICS: dict[str, Any] = {
    "luminosity": 0.016,
    "signal_xsec": None,
    "background_xsec": None,
    "background_norm": "free",
    "mc_stat": True,
    "shape": [],
}

Variation = Mapping[str, tuple[np.ndarray, np.ndarray]]  # {"signal": (up, down), "background": (up, down)}


@dataclass(frozen=True)
class Templates:
    """mℓℓγ histograms per score category: nominal yields, sums of squared weights, up/down variations.

    `variations[category][name][sample] = (up, down)`; a sample without the variation has no such term.
    Yields are expected events (already scaled to the luminosity); they must be finite and >= 0.
    """

    edges: np.ndarray
    categories: tuple[str, ...]
    signal: Mapping[str, np.ndarray]
    background: Mapping[str, np.ndarray]
    signal_sumw2: Mapping[str, np.ndarray]
    background_sumw2: Mapping[str, np.ndarray]
    variations: Mapping[str, Mapping[str, Variation]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError(f"Templates: edges must be increasing with at least 2 values, got {self.edges!r}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "categories", tuple(self.categories))
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ValueError(f"Templates: need unique category names, got {self.categories!r}")
        n = edges.size - 1
        for attr in ("signal", "background", "signal_sumw2", "background_sumw2"):
            table = getattr(self, attr)
            missing = [c for c in self.categories if c not in table]
            if missing:
                raise ValueError(f"Templates: {attr} lacks categories {missing}")
            object.__setattr__(self, attr, {c: _histogram(table[c], n, f"{attr}[{c}]") for c in self.categories})
        variations: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
        for cat, by_name in self.variations.items():
            if cat not in self.categories:
                raise ValueError(f"Templates: variations of unknown category {cat!r}")
            for name, by_sample in by_name.items():
                for sample, pair in by_sample.items():
                    if sample not in SAMPLES or len(pair) != 2:
                        raise ValueError(f"Templates: variation {name!r} of {cat!r} needs {SAMPLES} -> (up, down), "
                                         f"got {sample!r}")
                    variations.setdefault(cat, {}).setdefault(name, {})[sample] = tuple(
                        _histogram(h, n, f"variations[{cat}][{name}][{sample}][{k}]") for k, h in zip("ud", pair))
        object.__setattr__(self, "variations", variations)

    @property
    def variation_names(self) -> list[str]:
        """Names of all shape variations, over all categories, sorted."""
        return sorted({name for by_name in self.variations.values() for name in by_name})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists of floats); `Templates.from_dict` reads it back."""
        lists = {attr: {c: getattr(self, attr)[c].tolist() for c in self.categories}
                 for attr in ("signal", "background", "signal_sumw2", "background_sumw2")}
        variations = {c: {n: {s: [h.tolist() for h in pair] for s, pair in by_s.items()} for n, by_s in by_n.items()}
                      for c, by_n in self.variations.items()}
        return {"edges": self.edges.tolist(), "categories": list(self.categories), **lists, "variations": variations}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Templates:
        """Templates from the output of `to_dict` (or its JSON)."""
        return cls(**{k: payload[k] for k in ("edges", "categories", "signal", "background",
                                              "signal_sumw2", "background_sumw2")},
                   variations=payload.get("variations", {}))


def _histogram(values: Any, n: int, what: str) -> np.ndarray:
    """`values` as a finite, non-negative float array of length n (else ValueError naming `what`)."""
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"Templates: {what} has shape {arr.shape}, expected ({n},)")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        bad = int(np.flatnonzero(~np.isfinite(arr) | (arr < 0))[0])
        raise ValueError(f"Templates: {what} bin {bad} is {arr[bad]!r}; yields must be finite and >= 0")
    return arr


def toy_templates(n_categories: int = 8, edges: Sequence[float] | None = None, signal_total: float = 300.0,
                  background_total: float = 7.5e5, signal_weight: float = 0.005, background_weight: float = 3.0,
                  energy_scale: float = 0.005) -> Templates:
    """Analytic toy: Gaussian signal at 125 GeV, exponential background, photon energy scale of +-energy_scale.

    Equal signal per category (as the score binning), less background towards the high-score categories,
    sum of w^2 = yield * weight (one weight per sample); the energy-scale variation scales every mass by
    1 +- energy_scale (events migrate across the window edges). Deterministic: no random numbers.
    """
    edges = np.linspace(100.0, 180.0, 17) if edges is None else np.asarray(edges, dtype=float)
    bkg_frac = np.geomspace(1.0, 0.02, n_categories)
    bkg_frac /= bkg_frac.sum()

    def binned(cdf: Any, total: float, scale: float = 0.0) -> np.ndarray:
        """Yields per bin of `total` events with CDF `cdf` inside the window, masses scaled by 1 + scale."""
        return total * np.diff(cdf(edges / (1.0 + scale))) / (cdf(edges[-1]) - cdf(edges[0]))

    cats = tuple(f"bin{k}" for k in range(n_categories))
    sig, bkg, sig_w2, bkg_w2, var = {}, {}, {}, {}, {}
    for k, cat in enumerate(cats):
        frac = k / max(n_categories - 1, 1)
        sig_cdf = norm(125.0, 2.4 - 0.8 * frac).cdf  # better resolution at high score
        slope = 25.0 + 10.0 * frac

        def bkg_cdf(m: np.ndarray, slope: float = slope) -> np.ndarray:
            return -np.exp(-(m - 100.0) / slope)

        s_tot, b_tot = signal_total / n_categories, background_total * bkg_frac[k]
        sig[cat], bkg[cat] = binned(sig_cdf, s_tot), binned(bkg_cdf, b_tot)
        sig_w2[cat], bkg_w2[cat] = sig[cat] * signal_weight, bkg[cat] * background_weight
        var[cat] = {"photon_energy_scale": {
            "signal": (binned(sig_cdf, s_tot, energy_scale), binned(sig_cdf, s_tot, -energy_scale)),
            "background": (binned(bkg_cdf, b_tot, energy_scale), binned(bkg_cdf, b_tot, -energy_scale)),
        }}
    return Templates(edges=edges, categories=cats, signal=sig, background=bkg, signal_sumw2=sig_w2,
                     background_sumw2=bkg_w2, variations=var)


def _systematics(systematics: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_SYSTEMATICS updated with `systematics`; unknown keys or values raise ValueError."""
    cfg = dict(DEFAULT_SYSTEMATICS)
    for key, value in (systematics or {}).items():
        if key not in cfg:
            raise ValueError(f"systematics: unknown key {key!r}; expected one of {sorted(cfg)}")
        cfg[key] = value
    for key in ("luminosity", "signal_xsec", "background_xsec"):
        if cfg[key] is not None and not (isinstance(cfg[key], (int, float)) and 0 <= cfg[key] < 1):
            raise ValueError(f"systematics: {key} must be None or a relative uncertainty in [0, 1), "
                             f"got {cfg[key]!r}")
    if cfg["background_norm"] not in ("free", "constrained"):
        raise ValueError("systematics: background_norm must be 'free' or 'constrained', "
                         f"got {cfg['background_norm']!r}")
    cfg["shape"] = list(cfg["shape"] or [])
    return cfg


def _normsys(name: str, rel: float | None) -> list[dict[str, Any]]:
    """A normsys modifier (hi = 1 + rel, lo = 1 - rel) in a list, or an empty list for None / 0."""
    return [{"name": name, "type": "normsys", "data": {"hi": 1.0 + rel, "lo": 1.0 - rel}}] if rel else []


def build_workspace(templates: Templates, systematics: Mapping[str, Any] | None = None, asimov_mu: float = 1.0,
                    poi_bounds: tuple[float, float] = DEFAULT_POI_BOUNDS) -> dict[str, Any]:
    """pyhf HistFactory workspace spec (dict) of the templates with Asimov observations (module text)."""
    cfg = _systematics(systematics)
    unknown = [name for name in cfg["shape"] if name not in templates.variation_names]
    if unknown:
        raise ValueError(f"build_workspace: shape systematics {unknown} have no variation in the templates "
                         f"(available: {templates.variation_names})")
    free_bkg = cfg["background_norm"] == "free"
    channels, observations = [], []
    for cat in templates.categories:
        samples = []
        for sample in SAMPLES:
            nominal = getattr(templates, sample)[cat]
            mods: list[dict[str, Any]] = []
            if sample == "signal":
                mods.append({"name": POI, "type": "normfactor", "data": None})
                mods += _normsys("luminosity", cfg["luminosity"]) + _normsys("signal_xsec", cfg["signal_xsec"])
            elif free_bkg:
                mods.append({"name": "bkg_norm", "type": "normfactor", "data": None})
            else:
                mods += _normsys("luminosity", cfg["luminosity"]) + _normsys("background_xsec", cfg["background_xsec"])
            for name in cfg["shape"]:
                pair = templates.variations.get(cat, {}).get(name, {}).get(sample)
                if pair is not None:
                    mods.append({"name": name, "type": "histosys",
                                 "data": {"hi_data": pair[0].tolist(), "lo_data": pair[1].tolist()}})
            if cfg["mc_stat"]:
                mods.append({"name": f"staterror_{cat}", "type": "staterror",
                             "data": np.sqrt(getattr(templates, f"{sample}_sumw2")[cat]).tolist()})
            samples.append({"name": sample, "data": nominal.tolist(), "modifiers": mods})
        channels.append({"name": cat, "samples": samples})
        asimov = asimov_mu * templates.signal[cat] + templates.background[cat]
        observations.append({"name": cat, "data": asimov.tolist()})
    lo, hi = _physical_poi_bounds(templates, poi_bounds)
    parameters = [{"name": POI, "bounds": [[lo, hi]], "inits": [float(np.clip(asimov_mu, lo, hi))]}]
    if free_bkg:
        parameters.append({"name": "bkg_norm", "bounds": [[0.0, 10.0]], "inits": [1.0]})
    spec = {"channels": channels, "observations": observations, "version": "1.0.0",
            "measurements": [{"name": MEASUREMENT, "config": {"poi": POI, "parameters": parameters}}]}
    pyhf.Workspace(spec)  # schema validation: raises pyhf.exceptions.InvalidSpecification
    return spec


def _physical_poi_bounds(templates: Templates, poi_bounds: tuple[float, float]) -> tuple[float, float]:
    """POI bounds with the lower one raised to -0.9 min(b / s) over bins with signal (positive Poisson means)."""
    lo, hi = float(poi_bounds[0]), float(poi_bounds[1])
    if not lo < hi:
        raise ValueError(f"poi_bounds must be (low, high) with low < high, got {poi_bounds!r}")
    s = np.concatenate([templates.signal[c] for c in templates.categories])
    b = np.concatenate([templates.background[c] for c in templates.categories])
    if lo < 0 and np.any(s > 0):
        lo = max(lo, -0.9 * float(np.min(b[s > 0] / s[s > 0])))
    return lo, hi


def stat_only(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The workspace with every modifier removed except normfactors (the POI and a free `bkg_norm`)."""
    out = copy.deepcopy(dict(spec))
    kept: set[str] = set()
    for channel in out["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] == "normfactor"]
            kept.update(m["name"] for m in sample["modifiers"])
    for measurement in out["measurements"]:
        measurement["config"]["parameters"] = [p for p in measurement["config"].get("parameters", [])
                                               if p["name"] in kept]
    pyhf.Workspace(out)
    return out


# ---------------------------------------------------------------- optimizer, model, data and fits

_BATCHED: dict[int, tuple[pyhf.Model, pyhf.Model]] = {}


def batched_model(model: pyhf.Model) -> pyhf.Model:
    """The same model with batch size 2 npars + 1 (one gradient per call); the last 8 are cached."""
    key = id(model)
    if key not in _BATCHED or _BATCHED[key][0] is not model:
        while len(_BATCHED) >= 8:
            _BATCHED.pop(next(iter(_BATCHED)))
        batched = pyhf.Model(model.spec, batch_size=2 * model.config.npars + 1, validate=False,
                             poi_name=model.config.poi_name, modifier_settings=model.config.modifier_settings)
        if batched.config.par_names != model.config.par_names:
            raise RuntimeError("batched_model: parameter order differs from the model's")
        _BATCHED[key] = (model, batched)  # the model itself is kept so that its id is not reused
    return _BATCHED[key][1]


def twice_nll_batch(model: pyhf.Model, data: np.ndarray, points: np.ndarray) -> np.ndarray:
    """-2 ln L of the model at each row of `points` (evaluated in batches, the last one padded)."""
    model_b = batched_model(model)
    size = model_b.batch_size
    points = np.atleast_2d(np.asarray(points, dtype=float))
    data = np.asarray(data, dtype=float)
    out = np.empty(len(points))
    for start in range(0, len(points), size):
        chunk = points[start:start + size]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        out[start:start + len(chunk)] = -2.0 * np.asarray(model_b.logpdf(padded, data))[:len(chunk)]
    return out


def _diagonal_curvature(f: Any, x: np.ndarray, idx: np.ndarray, h: np.ndarray) -> tuple[float, np.ndarray]:
    """f(x) and the central second differences of f along the coordinates idx with steps h."""
    n = idx.size
    pts = np.repeat(x[None, :], 2 * n + 1, axis=0)
    pts[1 + np.arange(n), idx] += h
    pts[1 + n + np.arange(n), idx] -= h
    v = f(pts)
    return float(v[0]), (v[1:n + 1] + v[n + 1:] - 2.0 * v[0]) / h**2


def minimize_scaled(f: Any, x0: Sequence[float], bounds: Sequence[Sequence[float]], free: Sequence[bool],
                    maxiter: int = 10000, restarts: int = 3) -> tuple[np.ndarray, float, Any]:
    """Minimise f (rows of points -> values) over the free coordinates; (x, f(x), scipy result or None).

    L-BFGS-B in coordinates scaled by the diagonal curvature at the start (about one standard deviation per
    unit), central-difference gradients (step 1e-3 units: -2 ln L ~ 1e3 carries rounding noise ~ 1e-10) in
    one batched call of f. Restarted from its result with new scales until scipy reports success or the
    scaled projected gradient is below 1e-3 (the minimum then within ~5e-4 units); else FailedMinimization.
    """
    lo, hi = np.asarray(bounds, dtype=float).T
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    idx = np.flatnonzero(np.asarray(free, dtype=bool))
    if idx.size == 0:
        return x, float(f(x[None, :])[0]), None
    result = None
    for _ in range(restarts):
        _, diag = _diagonal_curvature(f, x, idx, 1e-4 * np.maximum(np.abs(x[idx]), 1.0))
        scale = np.where(diag > 0, np.sqrt(2.0 / np.where(diag > 0, diag, 1.0)), np.maximum(np.abs(x[idx]), 1.0))
        scale = np.minimum(scale, hi[idx] - lo[idx])
        base, h = x.copy(), 1e-3
        n = idx.size
        steps = np.zeros((2 * n + 1, x.size))
        steps[1 + np.arange(n), idx] = h * scale
        steps[1 + n + np.arange(n), idx] = -h * scale

        def fun_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            point = base.copy()
            point[idx] += z * scale
            v = f(point[None, :] + steps)
            return float(v[0]), (v[1:n + 1] - v[n + 1:]) / (2.0 * h)

        zb = np.stack([(lo[idx] - base[idx]) / scale, (hi[idx] - base[idx]) / scale], axis=1)
        result = scipy.optimize.minimize(fun_grad, np.zeros(n), jac=True, method="L-BFGS-B", bounds=zb,
                                         options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-4})
        x = base.copy()
        x[idx] = np.clip(base[idx] + result.x * scale, lo[idx], hi[idx])
        z, g = result.x, result.jac
        projected = np.where(z <= zb[:, 0], np.minimum(g, 0), np.where(z >= zb[:, 1], np.maximum(g, 0), g))
        if result.success or np.max(np.abs(projected)) < 1e-3:
            return x, float(result.fun), result
    raise pyhf.exceptions.FailedMinimization(result)


class ScaledOptimizer(OptimizerMixin):
    """pyhf optimizer running `minimize_scaled` on -2 ln L with a batched copy of the model (numpy backend).

    A drop-in for pyhf.optimize.scipy_optimizer in pyhf.infer.mle.fit, hypotest and the upper-limit scans
    (module text for why). The objective must be pyhf.infer.mle.twice_nll, the only one pyhf passes;
    uncertainties and correlations are not returned (use `hessian`). Identical fits (same model, data, start,
    bounds and fixed parameters; hypotest repeats several for every POI value) are memoised.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.name = "scaled_lbfgsb"
        self._memo: dict[tuple, tuple] = {}
        super().__init__(**kwargs)

    def minimize(self, objective: Any, data: Any, pdf: pyhf.Model, init_pars: Sequence[float],
                 par_bounds: Sequence[Sequence[float]], fixed_vals: Sequence[tuple[int, float]] | None = None,
                 return_fitted_val: bool = False, return_result_obj: bool = False, return_uncertainties: bool = False,
                 return_correlations: bool = False, do_grad: bool | None = None, do_stitch: bool = False,
                 **kwargs: Any) -> Any:
        """Same interface as pyhf's OptimizerMixin.minimize (fixed parameters stay at their values)."""
        if objective is not pyhf.infer.mle.twice_nll:
            raise pyhf.exceptions.Unsupported("ScaledOptimizer: minimises pyhf.infer.mle.twice_nll only")
        if return_uncertainties or return_correlations or kwargs:
            raise pyhf.exceptions.Unsupported("ScaledOptimizer: no uncertainties, correlations or extra options")
        x0 = np.array(init_pars, dtype=float)
        free = np.ones(x0.size, dtype=bool)
        for index, value in fixed_vals or []:
            x0[index], free[index] = value, False
        bounds = [list(b) for b in par_bounds]
        for index in np.flatnonzero(~free):
            bounds[index] = [min(bounds[index][0], x0[index]), max(bounds[index][1], x0[index])]
        data = np.asarray(data, dtype=float)
        key = (id(pdf), data.tobytes(), x0.tobytes(), np.asarray(bounds, dtype=float).tobytes(), free.tobytes())
        if key not in self._memo or self._memo[key][0] is not pdf:
            while len(self._memo) >= 256:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = (pdf, *minimize_scaled(lambda pts: twice_nll_batch(pdf, data, pts), x0, bounds, free,
                                                     maxiter=self.maxiter))
        _, x, fun, result = self._memo[key]
        x = x.copy()
        out: list[Any] = [x]
        if return_fitted_val:
            out.append(np.asarray(fun))
        if return_result_obj:
            out.append(result)
        return tuple(out) if len(out) > 1 else out[0]


_OPTIMIZER = ScaledOptimizer()


def _backend() -> None:
    """numpy tensors and the ScaledOptimizer (pyhf's backend is global state: set before every use)."""
    pyhf.set_backend("numpy", _OPTIMIZER)


def _workspace(workspace: Mapping[str, Any] | pyhf.Workspace) -> pyhf.Workspace:
    """A pyhf.Workspace from a spec dict (validated) or the workspace itself."""
    _backend()
    return workspace if isinstance(workspace, pyhf.Workspace) else pyhf.Workspace(json.loads(json.dumps(workspace)))


def _model(ws: pyhf.Workspace) -> pyhf.Model:
    """The model of the workspace's measurement with the module's interpolation codes."""
    return ws.model(modifier_settings=MODIFIER_SETTINGS)


def _bounds(model: pyhf.Model, poi_bounds: tuple[float, float] | None) -> list[list[float]]:
    """Suggested parameter bounds with the POI's replaced by `poi_bounds` where given."""
    bounds = [list(b) for b in model.config.suggested_bounds()]
    if poi_bounds is not None:
        bounds[model.config.poi_index] = [float(poi_bounds[0]), float(poi_bounds[1])]
    return bounds


def asimov_data(model: pyhf.Model, mu: float) -> np.ndarray:
    """Asimov data (main + auxiliary) of the model at POI = mu and every other parameter at its initial value."""
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.poi_index] = mu
    return np.asarray(model.expected_data(pars), dtype=float)


@dataclass
class _Fitter:
    """Fits of one model to one data set, remembering every conditional POI fit for warm starts."""

    model: pyhf.Model
    data: np.ndarray
    bounds: list[list[float]]
    fixed: list[bool]
    cache: dict[float, tuple[np.ndarray, float]] = field(default_factory=dict)
    cov: np.ndarray | None = None  # post-fit covariance: conditional fits start on its linear prediction

    def free_fit(self, init: Sequence[float] | None = None) -> tuple[np.ndarray, float]:
        """Unconditional best fit: (parameters, -2 ln L)."""
        pars = list(init) if init is not None else list(self.model.config.suggested_init())
        pars, twice_nll = pyhf.infer.mle.fit(self.data, self.model, init_pars=list(map(float, pars)),
                                             par_bounds=self.bounds, fixed_params=self.fixed, return_fitted_val=True)
        return np.asarray(pars, dtype=float), float(twice_nll)

    def fixed_fit(self, index: int, value: float, init: Sequence[float]) -> tuple[np.ndarray, float]:
        """Best fit with parameter `index` fixed at `value`, started from `init` moved along the covariance
        (the linear prediction of the conditional minimum, where `cov` is known): (parameters, -2 ln L)."""
        pars = np.array(init, dtype=float)
        if self.cov is not None and self.cov[index, index] > 0:
            lo, hi = np.asarray(self.bounds, dtype=float).T
            pars = np.clip(pars + self.cov[:, index] / self.cov[index, index] * (value - pars[index]), lo, hi)
        pars[index] = value
        bounds = [list(b) for b in self.bounds]
        bounds[index] = [min(bounds[index][0], value), max(bounds[index][1], value)]
        fixed = list(self.fixed)
        fixed[index] = True
        fitted, twice_nll = pyhf.infer.mle.fit(self.data, self.model, init_pars=pars.tolist(), par_bounds=bounds,
                                               fixed_params=fixed, return_fitted_val=True)
        return np.asarray(fitted, dtype=float), float(twice_nll)

    def profile(self, mu: float) -> float:
        """-2 ln L profiled at POI = mu (cached; started from the nearest POI value fitted so far)."""
        mu = float(mu)
        if mu not in self.cache:
            nearest = min(self.cache, key=lambda m: abs(m - mu))
            self.cache[mu] = self.fixed_fit(self.model.config.poi_index, mu, self.cache[nearest][0])
        return self.cache[mu][1]


def _setup(workspace: Mapping[str, Any] | pyhf.Workspace, poi_bounds: tuple[float, float] | None,
           data: np.ndarray | None = None) -> _Fitter:
    """Fitter of the workspace's model to `data` (default: the workspace observations)."""
    ws = _workspace(workspace)
    model = _model(ws)
    data = np.asarray(ws.data(model) if data is None else data, dtype=float)
    return _Fitter(model, data, _bounds(model, poi_bounds), list(model.config.suggested_fixed()))


def hessian(model: pyhf.Model, data: np.ndarray, pars: Sequence[float], free: Sequence[bool]) -> np.ndarray:
    """Central-difference Hessian of -2 ln L at `pars` over the free parameters (other rows/columns 0).

    Steps of 0.05 of each parameter's curvature scale (from a first diagonal pass); batched evaluation.
    """
    x = np.asarray(pars, dtype=float)
    idx = np.flatnonzero(np.asarray(free, dtype=bool))
    n = idx.size
    out = np.zeros((x.size, x.size))
    if n == 0:
        return out

    def f(pts: np.ndarray) -> np.ndarray:
        return twice_nll_batch(model, data, pts)

    h0 = 1e-4 * np.maximum(np.abs(x[idx]), 1.0)
    _, diag0 = _diagonal_curvature(f, x, idx, h0)
    h = np.where(diag0 > 0, 0.05 * np.sqrt(2.0 / np.where(diag0 > 0, diag0, 1.0)), h0)
    iu, ju = np.triu_indices(n)  # f(x + a h_i e_i + b h_j e_j), a, b = +-1; i == j gives steps of 2h, 0, 0, -2h
    pts = np.repeat(x[None, :], 4 * iu.size, axis=0)
    for k, (a, b) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        rows = k * iu.size + np.arange(iu.size)
        pts[rows, idx[iu]] += a * h[iu]
        pts[rows, idx[ju]] += b * h[ju]
    v = f(pts).reshape(4, iu.size)
    h_free = np.zeros((n, n))
    h_free[iu, ju] = (v[0] - v[1] - v[2] + v[3]) / (4.0 * h[iu] * h[ju])
    out[np.ix_(idx, idx)] = h_free + np.triu(h_free, 1).T
    return out


def _covariance(hess: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, bool]:
    """Covariance 2 H^-1 over the free parameters (zeros elsewhere) and whether H was positive definite."""
    cov = np.zeros_like(hess)
    sub = hess[np.ix_(free, free)]
    eig = np.linalg.eigvalsh(sub)
    positive = bool(np.all(eig > 0))
    cov[np.ix_(free, free)] = 2.0 * (np.linalg.inv(sub) if positive else np.linalg.pinv(sub))
    return cov, positive


def _prefit(model: pyhf.Model) -> tuple[np.ndarray, np.ndarray, list[str], list[bool]]:
    """Per scalar parameter: initial value, pre-fit width (0 if unconstrained), modifier kind, constrained."""
    kinds = dict(model.config.modifiers)
    init, width, kind, constrained = [], [], [], []
    for name in model.config.par_order:
        ps = model.config.param_set(name)
        init += list(ps.suggested_init)
        width += list(ps.width()) if ps.constrained else [0.0] * ps.n_parameters
        kind += [kinds.get(name, "normfactor")] * ps.n_parameters
        constrained += [bool(ps.constrained)] * ps.n_parameters
    return np.asarray(init, float), np.asarray(width, float), kind, constrained


def _crossing(fitter: _Fitter, mu_hat: float, nll_min: float, direction: int, step: float) -> tuple[float, bool]:
    """POI value where the profiled -2 Delta ln L reaches 1 on one side of mu_hat, and whether a bound stopped it."""
    bound = fitter.bounds[fitter.model.config.poi_index][0 if direction < 0 else 1]

    def g(mu: float) -> float:
        return fitter.profile(mu) - nll_min - 1.0

    inner = mu_hat
    for _ in range(30):
        outer = mu_hat + direction * step
        if direction * (outer - bound) >= 0:
            outer = bound
        if g(outer) > 0:
            lo, hi = sorted((inner, outer))
            return float(brentq(g, lo, hi, xtol=1e-5 * step, rtol=1e-7)), False
        if outer == bound:
            return float(bound), True
        inner, step = outer, 2.0 * step
    return float(bound), True


def fit_mu(workspace: Mapping[str, Any] | pyhf.Workspace, poi_bounds: tuple[float, float] | None = None,
           n_scan: int = 17, scan_sigmas: float = 2.2) -> dict[str, Any]:
    """The result of `fit_with_covariance` without the covariance."""
    return fit_with_covariance(workspace, poi_bounds, n_scan, scan_sigmas)[0]


def fit_with_covariance(workspace: Mapping[str, Any] | pyhf.Workspace, poi_bounds: tuple[float, float] | None = None,
                        n_scan: int = 17, scan_sigmas: float = 2.2) -> tuple[dict[str, Any], np.ndarray]:
    """Best-fit mu with profile-likelihood errors, the scan -2 Delta ln L(mu) and every parameter's post-fit value.

    Returns mu_hat, err_up, err_down (>= 0), err_hesse, twice_nll_min, limited_by_bounds {"up", "down"},
    hessian_positive_definite, scan {"mu", "delta_2nll"} (n_scan points over mu_hat -+ scan_sigmas errors plus
    the points of the root finding), and parameters: one dict per scalar parameter in pyhf's order with name,
    kind, value, error (post-fit), prefit_value, prefit_error (0 if unconstrained), constrained, fixed, and
    pull = (value - prefit_value) / prefit_error, pull_error = error / prefit_error (None if unconstrained).
    Also returned: the post-fit covariance (2 H^-1 over the free parameters), which `ranking` reuses.
    """
    fitter = _setup(workspace, poi_bounds)
    model, poi = fitter.model, fitter.model.config.poi_index
    pars, nll_min = fitter.free_fit()
    mu_hat = float(pars[poi])
    fitter.cache[mu_hat] = (pars, nll_min)
    fixed = np.asarray(fitter.fixed, bool)
    cov, positive = _covariance(hessian(model, fitter.data, pars, ~fixed), ~fixed)
    fitter.cov = cov
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    err_hesse = float(err[poi])
    step = 1.2 * err_hesse if np.isfinite(err_hesse) and err_hesse > 0 else 0.1 * max(abs(mu_hat), 1.0)
    mu_up, up_limited = _crossing(fitter, mu_hat, nll_min, +1, step)
    mu_down, down_limited = _crossing(fitter, mu_hat, nll_min, -1, step)
    err_up, err_down = mu_up - mu_hat, mu_hat - mu_down
    lo, hi = fitter.bounds[poi]
    grid = np.linspace(max(lo, mu_hat - scan_sigmas * err_down), min(hi, mu_hat + scan_sigmas * err_up), n_scan)
    for mu in sorted(grid, key=lambda m: abs(m - mu_hat)):  # outwards from mu_hat: warm starts stay close
        fitter.profile(mu)
    scan_mu = np.array(sorted(fitter.cache))
    delta = np.array([fitter.cache[m][1] for m in scan_mu]) - nll_min
    init, width, kind, constrained = _prefit(model)
    parameters = []
    for i, name in enumerate(model.config.par_names):
        pull = (pars[i] - init[i]) / width[i] if constrained[i] and width[i] > 0 and not fixed[i] else None
        parameters.append({"name": name, "kind": kind[i], "value": float(pars[i]), "error": float(err[i]),
                           "prefit_value": float(init[i]), "prefit_error": float(width[i]),
                           "constrained": constrained[i], "fixed": bool(fixed[i]),
                           "pull": None if pull is None else float(pull),
                           "pull_error": None if pull is None else float(err[i] / width[i])})
    return {"poi": model.config.poi_name, "mu_hat": mu_hat, "err_up": float(err_up), "err_down": float(err_down),
            "err_hesse": err_hesse, "twice_nll_min": nll_min, "hessian_positive_definite": positive,
            "limited_by_bounds": {"up": up_limited, "down": down_limited},
            "scan": {"mu": scan_mu.tolist(), "delta_2nll": delta.tolist()}, "parameters": parameters}, cov


def bestfit(fit: Mapping[str, Any]) -> np.ndarray:
    """The best-fit parameter vector (pyhf order) of a `fit_mu` result."""
    return np.array([p["value"] for p in fit["parameters"]], dtype=float)


def category_yields(workspace: Mapping[str, Any] | pyhf.Workspace,
                    pars: Sequence[float] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per category the expected signal and background at `pars` (pre-fit: None) and the observations."""
    ws = _workspace(workspace)
    model = _model(ws)
    x = np.asarray(model.config.suggested_init() if pars is None else pars, dtype=float)
    by_sample = np.asarray(model.main_model.expected_data(x, return_by_sample=True))
    rows = {name: by_sample[i] for i, name in enumerate(model.config.samples)}
    return {c: {**{name: np.asarray(rows[name][sl], dtype=float) for name in model.config.samples},
                "data": np.asarray(ws.observations[c], dtype=float)}
            for c, sl in model.config.channel_slices.items()}


def discovery_significance(workspace: Mapping[str, Any] | pyhf.Workspace, mu_signal: float = 1.0,
                           poi_bounds: tuple[float, float] | None = None) -> float:
    """Expected discovery significance Z = Phi^-1(1 - p0), q0 on the Asimov data of signal strength mu_signal.

    Asymptotic (Cowan et al., arXiv:1007.1727): with Asimov data Z = sqrt(q0); pyhf.infer.hypotest gives p0.
    """
    fitter = _setup(workspace, poi_bounds)
    data = asimov_data(fitter.model, mu_signal)
    init = list(map(float, fitter.model.config.suggested_init()))
    init[fitter.model.config.poi_index] = float(np.clip(mu_signal, *fitter.bounds[fitter.model.config.poi_index]))
    p0 = pyhf.infer.hypotest(0.0, data, fitter.model, init_pars=init, par_bounds=fitter.bounds,
                             fixed_params=fitter.fixed, test_stat="q0", calctype="asymptotics")
    return float(norm.isf(float(p0)))


def _limits(workspace: Mapping[str, Any] | pyhf.Workspace, cl: float,
            poi_bounds: tuple[float, float] | None) -> tuple[float, list[float]]:
    """Observed CLs limit on the background-only Asimov data (= median expected) and the -2..+2 sigma band."""
    if not 0 < cl < 1:
        raise ValueError(f"upper_limit: cl must lie in (0, 1), got {cl!r}")
    fitter = _setup(workspace, poi_bounds)
    model, poi = fitter.model, fitter.model.config.poi_index
    data = asimov_data(model, 0.0)
    # starting bracket from the stat-only Fisher information of mu at mu = 0: sigma = 1 / sqrt(sum s^2 / b)
    init = np.asarray(model.config.suggested_init(), dtype=float)
    init[poi] = 0.0
    b = np.asarray(model.expected_actualdata(init), dtype=float)
    s = np.asarray(model.expected_actualdata(np.where(np.arange(init.size) == poi, 1.0, init)), dtype=float) - b
    sigma = 1.0 / np.sqrt(max(float(np.sum(s[b > 0] ** 2 / b[b > 0])), 1e-300))
    guess = norm.isf((1 - cl) / 2) * sigma
    bounds = [list(x) for x in fitter.bounds]
    bounds[poi] = [0.0, max(bounds[poi][1], 50.0 * guess)]  # qtilde: POI bounded at 0; room for the bracket
    obs, band = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.5 * guess, 2.0 * guess, level=1.0 - cl, rtol=1e-4, test_stat="qtilde",
        calctype="asymptotics", init_pars=init.tolist(), par_bounds=bounds, fixed_params=fitter.fixed)
    return float(obs), [float(x) for x in band]


def upper_limit(workspace: Mapping[str, Any] | pyhf.Workspace, cl: float = 0.95,
                poi_bounds: tuple[float, float] | None = None) -> float:
    """Expected CLs upper limit on mu at `cl`: qtilde, asymptotics, on the background-only (mu = 0) Asimov data.

    The observed limit on the background-only Asimov data is the median expected limit (Cowan et al.); the
    POI is bounded below at 0 as qtilde requires. pyhf's toms748_scan finds CLs = 1 - cl.
    """
    return _limits(workspace, cl, poi_bounds)[0]


def expected_limit_band(workspace: Mapping[str, Any] | pyhf.Workspace, cl: float = 0.95,
                        poi_bounds: tuple[float, float] | None = None) -> list[float]:
    """Expected CLs upper limits on mu at -2, -1, 0, +1, +2 sigma (pyhf's band), background-only Asimov data."""
    return _limits(workspace, cl, poi_bounds)[1]


def ranking(workspace: Mapping[str, Any] | pyhf.Workspace, fit: Mapping[str, Any], prefit: bool = False,
            include_mc_stat: bool = True, poi_bounds: tuple[float, float] | None = None,
            covariance: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Impact of each free parameter on mu (module text), sorted by |post-fit impact|, largest first.

    Each entry: name, kind, postfit_up, postfit_down (mu with the parameter at value +- post-fit error, minus
    mu_hat), impact = max of their absolute values, and with `prefit` prefit_up, prefit_down (0 for
    unconstrained parameters). `include_mc_stat=False` skips the staterror gammas (one fit pair per bin).
    `covariance`: the fit's post-fit covariance from `fit_with_covariance`; computed again when not given.
    """
    fitter = _setup(workspace, poi_bounds)
    poi = fitter.model.config.poi_index
    pars = bestfit(fit)
    mu_hat = float(pars[poi])
    if covariance is None:
        free = np.logical_not(fitter.fixed)
        covariance = _covariance(hessian(fitter.model, fitter.data, pars, free), free)[0]
    fitter.cov = covariance
    out = []
    for i, p in enumerate(fit["parameters"]):
        if i == poi or p["fixed"] or (not include_mc_stat and p["kind"] == "staterror"):
            continue
        entry: dict[str, Any] = {"name": p["name"], "kind": p["kind"]}
        shifts = {"postfit_up": p["error"], "postfit_down": -p["error"]}
        if prefit:
            shifts |= {"prefit_up": p["prefit_error"], "prefit_down": -p["prefit_error"]}
        for key, shift in shifts.items():
            if shift == 0:
                entry[key] = 0.0
                continue
            lo, hi = fitter.bounds[i]
            value = float(np.clip(pars[i] + shift, lo, hi))
            entry[key] = float(fitter.fixed_fit(i, value, pars)[0][poi] - mu_hat)
        entry["impact"] = max(abs(entry["postfit_up"]), abs(entry["postfit_down"]))
        out.append(entry)
    return sorted(out, key=lambda e: -e["impact"])


def _block(workspace: Mapping[str, Any], cl: float, poi_bounds: tuple[float, float] | None
           ) -> tuple[dict[str, Any], np.ndarray]:
    """fit_mu, significance and limits of one workspace, and the fit's covariance."""
    fit, cov = fit_with_covariance(workspace, poi_bounds)
    try:
        limit, band, note = *_limits(workspace, cl, poi_bounds), None
    except pyhf.exceptions.FailedMinimization as err:
        # seen only where a category has (almost) no background at all: say so, do not invent a number
        limit, band, note = None, None, f"CLs scan failed: {str(err).strip() or type(err).__name__}"
        log.warning("upper limit not computed: %s", note)
    return {"mu_hat": fit["mu_hat"], "err_up": fit["err_up"], "err_down": fit["err_down"],
            "significance": discovery_significance(workspace, poi_bounds=poi_bounds),
            "upper_limit": limit, "limit_band": band, "limit_note": note, "fit": fit}, cov


def summarize(spec: Mapping[str, Any], cl: float = 0.95, poi_bounds: tuple[float, float] | None = None,
              with_ranking: bool = True, include_mc_stat: bool = True) -> dict[str, Any]:
    """Everything for fit.json: stat-only and with systematics side by side, and the ranking of the latter.

    Keys: cl, poi, stat_only and with_systematics (each mu_hat, err_up, err_down, significance, upper_limit,
    limit_band [-2..+2 sigma] and fit = the full `fit_mu` result), ranking (list, or absent).
    """
    full, cov = _block(spec, cl, poi_bounds)
    out = {"cl": cl, "poi": POI, "stat_only": _block(stat_only(spec), cl, poi_bounds)[0], "with_systematics": full}
    if with_ranking:
        out["ranking"] = ranking(spec, full["fit"], include_mc_stat=include_mc_stat, poi_bounds=poi_bounds,
                                 covariance=cov)
    return out
