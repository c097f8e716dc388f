"""The pyhf HistFactory workspace of the mℓℓγ fit: one channel per score category, built from typed templates.

Conventions, stated once:
* Channels "bin0".."bin7" (the score categories), bins = the mℓℓγ bins of the fit window. Samples:
  - "signal": the category's signal MC histogram, the POI `mu` (normfactor), normsys "luminosity"
    (hi/lo = 1 +- x) and "signal_xsec" (ggF cross-section scale ⊕ PDF + alpha_s ⊕ BR, default 9 %), a normsys
    "signal_mc_stat_<category>" with the relative MC-statistical uncertainty of the category's signal yield,
    and a histosys for each shape variation named in `shape` (photon energy scale: peak position; photon
    resolution: peak width), correlated across categories. A variation is pruned to 0 in bins where the
    nominal holds no signal: an MC event migrating into an empty bin is noise, and code4p's interpolation
    between 0 and it turns negative for one sign of the parameter, however small.
  - "background": the smooth function fitted to the category's background MC (hzg.results.fit.shapes), with
    its own free normalisation `bkg_norm_<category>` (normfactor, bounds [0, 10]) and, where `spurious_signal`
    is on, the histosys "spurious_signal_<category>": background +- |S_spur| x the unit signal shape (an
    additive, Gaussian-constrained signal-like term, uncorrelated across categories, present at mu = 0 as it
    should be:
    it sits on the background, not on the signal that mu scales). Its bounds are narrowed from [-5, 5] where
    needed so that no bin's expectation can turn negative.
* Observations ("Asimov data from the MC"): signal MC x asimov_mu + background MC, bin by bin (the MC itself,
  not the smooth model; bins with a negative weighted sum set to 0). `background_only_data` gives the mu = 0
  version for the expected limit.
* Interpolation (a model setting, not stored in the JSON): code4 for normsys, code4p for histosys (cabinetry's
  choice; smooth at 0, so HESSE and MINOS are well defined). Use `model()` to get the model with them.
* POI bounds: from the config (default [-10, 10]), the lower one raised to -0.9 min(b / s) over bins with
  signal so that mu s + b stays positive. The signal's histosys parameters (linear beyond +-1 with code4p)
  are bounded, from pyhf's [-5, 5] where needed, so that no bin's expectation (mu up to its upper bound
  times the signal, plus half the background) turns negative (`histosys_reach`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf

POI = "mu"
MEASUREMENT = "hzg_mllg"
MODIFIER_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
DEFAULT_POI_BOUNDS = (-10.0, 10.0)
BKG_NORM_BOUNDS = (0.0, 10.0)
SPURIOUS_BOUND = 5.0  # pyhf's default bounds of a histosys parameter
#: share of a bin's background counted on when bounding the signal's histosys parameters (the free background
#: normalisation may fall, but not by this much)
BKG_FLOOR_FRACTION = 0.5
DEFAULT_SYSTEMATICS: dict[str, Any] = {
    "luminosity": 0.016,
    "signal_xsec": 0.09,
    "signal_mc_stat": True,
    "spurious_signal": True,
    "shape": [],
}

Pair = tuple[np.ndarray, np.ndarray]


def _histogram(values: Any, n: int, what: str, allow_negative: bool = False) -> np.ndarray:
    """`values` as a finite float array of length n, >= 0 unless allowed (else ValueError naming `what`)."""
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"Templates: {what} has shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr) if allow_negative else ~np.isfinite(arr) | (arr < 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Templates: {what} bin {i} is {arr[i]!r}; yields must be finite"
            + ("" if allow_negative else " and >= 0")
        )
    return arr


@dataclass(frozen=True)
class Templates:
    """Per score category: signal MC, background MC (weighted sums and sums of w^2), the smooth background
    template, the spurious-signal yield, and the signal's shape variations {name: (up, down)}.

    Yields are expected events at the analysis' luminosity. The background MC may have negative bins (negative
    generator weights); everything else must be >= 0.
    """

    edges: np.ndarray
    categories: tuple[str, ...]
    signal: Mapping[str, np.ndarray]
    signal_sumw2: Mapping[str, np.ndarray]
    background_mc: Mapping[str, np.ndarray]
    background_mc_sumw2: Mapping[str, np.ndarray]
    background: Mapping[str, np.ndarray]
    spurious_signal: Mapping[str, float] = field(default_factory=dict)
    signal_variations: Mapping[str, Mapping[str, Pair]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError(
                f"Templates: edges must be increasing with at least 2 values, got {self.edges!r}"
            )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "categories", tuple(self.categories))
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ValueError(f"Templates: need unique category names, got {self.categories!r}")
        n = edges.size - 1
        for attr in ("signal", "signal_sumw2", "background_mc", "background_mc_sumw2", "background"):
            table = getattr(self, attr)
            missing = [c for c in self.categories if c not in table]
            if missing:
                raise ValueError(f"Templates: {attr} lacks categories {missing}")
            object.__setattr__(
                self,
                attr,
                {
                    c: _histogram(table[c], n, f"{attr}[{c}]", attr == "background_mc")
                    for c in self.categories
                },
            )
        spurious = {}
        for c, value in self.spurious_signal.items():
            if c not in self.categories or not np.isfinite(value):
                raise ValueError(
                    f"Templates: spurious_signal[{c!r}] = {value!r}: unknown category or not finite"
                )
            spurious[c] = float(value)
        object.__setattr__(self, "spurious_signal", spurious)
        variations: dict[str, dict[str, Pair]] = {}
        for c, by_name in self.signal_variations.items():
            if c not in self.categories:
                raise ValueError(f"Templates: signal_variations of unknown category {c!r}")
            for name, pair in by_name.items():
                if len(pair) != 2:
                    raise ValueError(f"Templates: signal_variations[{c}][{name}] must be (up, down)")
                variations.setdefault(c, {})[name] = tuple(
                    _histogram(h, n, f"signal_variations[{c}][{name}][{k}]")
                    for k, h in zip(("up", "down"), pair)
                )
        object.__setattr__(self, "signal_variations", variations)

    @property
    def variation_names(self) -> list[str]:
        """Names of all signal shape variations, over all categories, sorted."""
        return sorted({name for by_name in self.signal_variations.values() for name in by_name})

    def signal_shape(self, category: str) -> np.ndarray:
        """The category's signal MC histogram normalised to 1 (uniform if it has no signal)."""
        s = self.signal[category]
        return s / s.sum() if s.sum() > 0 else np.full(s.size, 1.0 / s.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; `Templates.from_dict` reads it back."""
        hists = {
            attr: {c: getattr(self, attr)[c].tolist() for c in self.categories}
            for attr in ("signal", "signal_sumw2", "background_mc", "background_mc_sumw2", "background")
        }
        variations = {
            c: {name: [h.tolist() for h in pair] for name, pair in by_name.items()}
            for c, by_name in self.signal_variations.items()
        }
        return {
            "edges": self.edges.tolist(),
            "categories": list(self.categories),
            **hists,
            "spurious_signal": dict(self.spurious_signal),
            "signal_variations": variations,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Templates:
        """Templates from the output of `to_dict` (or its JSON)."""
        keys = (
            "edges",
            "categories",
            "signal",
            "signal_sumw2",
            "background_mc",
            "background_mc_sumw2",
            "background",
        )
        missing = [k for k in keys if k not in payload]
        if missing:
            raise ValueError(f"Templates.from_dict: missing keys {missing}")
        return cls(
            **{k: payload[k] for k in keys},
            spurious_signal=payload.get("spurious_signal", {}),
            signal_variations=payload.get("signal_variations", {}),
        )


def defaults_updated(defaults: Mapping[str, Any], cfg: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """`defaults` updated with `cfg`; a key of `cfg` not in `defaults` raises ValueError naming config key
    `name`."""
    unknown = sorted(set(cfg or {}) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown key {unknown[0]!r}; expected one of {sorted(defaults)}")
    return {**defaults, **(cfg or {})}


def systematics_config(systematics: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_SYSTEMATICS updated with `systematics`; unknown keys or bad values raise ValueError."""
    cfg = defaults_updated(DEFAULT_SYSTEMATICS, systematics, "fit.systematics")
    for key in ("luminosity", "signal_xsec"):
        if cfg[key] is not None and not (isinstance(cfg[key], (int, float)) and 0 <= cfg[key] < 1):
            raise ValueError(
                f"fit.systematics: {key} must be null or a relative uncertainty in [0, 1), got {cfg[key]!r}"
            )
    for key in ("signal_mc_stat", "spurious_signal"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"fit.systematics: {key} must be true or false, got {cfg[key]!r}")
    cfg["shape"] = list(cfg["shape"] or [])
    return cfg


def _normsys(name: str, rel: float | None) -> list[dict[str, Any]]:
    """A normsys modifier (hi = 1 + rel, lo = 1 - rel) in a list, or an empty list for None / 0."""
    return [{"name": name, "type": "normsys", "data": {"hi": 1.0 + rel, "lo": 1.0 - rel}}] if rel else []


def observations(templates: Templates, mu: float = 1.0) -> dict[str, np.ndarray]:
    """Asimov data from the MC per category: mu x signal MC + background MC, negative bins set to 0."""
    return {
        c: np.clip(mu * templates.signal[c] + templates.background_mc[c], 0.0, None)
        for c in templates.categories
    }


def build_workspace(
    templates: Templates,
    systematics: Mapping[str, Any] | None = None,
    asimov_mu: float = 1.0,
    poi_bounds: Sequence[float] = DEFAULT_POI_BOUNDS,
) -> dict[str, Any]:
    """pyhf workspace spec (dict) of the templates, with the MC as observations (module text)."""
    cfg = systematics_config(systematics)
    unknown = [name for name in cfg["shape"] if name not in templates.variation_names]
    if unknown:
        raise ValueError(
            f"build_workspace: shape systematics {unknown} have no signal variation in the templates "
            f"(available: {templates.variation_names})"
        )
    data = observations(templates, asimov_mu)
    channels, obs, parameters = [], [], []
    for cat in templates.categories:
        sig, bkg = templates.signal[cat], templates.background[cat]
        sig_mods: list[dict[str, Any]] = [{"name": POI, "type": "normfactor", "data": None}]
        sig_mods += _normsys("luminosity", cfg["luminosity"]) + _normsys("signal_xsec", cfg["signal_xsec"])
        total = float(sig.sum())
        if cfg["signal_mc_stat"] and total > 0:
            rel = float(np.sqrt(templates.signal_sumw2[cat].sum())) / total
            sig_mods += _normsys(f"signal_mc_stat_{cat}", min(rel, 0.99))
        for name in cfg["shape"]:
            pair = templates.signal_variations.get(cat, {}).get(name)
            if pair is not None:  # pruned where the nominal has no signal (module text)
                hi_data, lo_data = (np.where(sig > 0, h, 0.0) for h in pair)
                sig_mods.append(
                    {
                        "name": name,
                        "type": "histosys",
                        "data": {"hi_data": hi_data.tolist(), "lo_data": lo_data.tolist()},
                    }
                )
        bkg_mods: list[dict[str, Any]] = [{"name": f"bkg_norm_{cat}", "type": "normfactor", "data": None}]
        parameters.append({"name": f"bkg_norm_{cat}", "bounds": [list(BKG_NORM_BOUNDS)], "inits": [1.0]})
        spur = abs(templates.spurious_signal.get(cat, 0.0))
        if cfg["spurious_signal"] and spur > 0:
            delta = spur * templates.signal_shape(cat)
            bkg_mods.append(
                {
                    "name": f"spurious_signal_{cat}",
                    "type": "histosys",
                    "data": {"hi_data": (bkg + delta).tolist(), "lo_data": (bkg - delta).tolist()},
                }
            )
            # linear in the parameter: bounded so that every bin's expectation stays positive
            reach = float(min(SPURIOUS_BOUND, 0.9 * np.min(bkg[delta > 0] / delta[delta > 0])))
            parameters.append({"name": f"spurious_signal_{cat}", "bounds": [[-reach, reach]], "inits": [0.0]})
        channels.append(
            {
                "name": cat,
                "samples": [
                    {"name": "signal", "data": sig.tolist(), "modifiers": sig_mods},
                    {"name": "background", "data": bkg.tolist(), "modifiers": bkg_mods},
                ],
            }
        )
        obs.append({"name": cat, "data": data[cat].tolist()})
    lo, hi = physical_poi_bounds(templates, poi_bounds)
    for name in cfg[
        "shape"
    ]:  # linear extrapolation beyond +-1: bounded so that no bin's expectation turns negative
        reach = min(
            histosys_reach(
                templates.signal[c],
                *templates.signal_variations[c][name],
                floor=BKG_FLOOR_FRACTION * templates.background[c],
                scale=max(hi, 1.0),
            )
            for c in templates.categories
            if name in templates.signal_variations.get(c, {})
        )
        parameters.append({"name": name, "bounds": [[-reach, reach]], "inits": [0.0]})
    parameters.insert(0, {"name": POI, "bounds": [[lo, hi]], "inits": [float(np.clip(asimov_mu, lo, hi))]})
    spec = {
        "channels": channels,
        "observations": obs,
        "version": "1.0.0",
        "measurements": [{"name": MEASUREMENT, "config": {"poi": POI, "parameters": parameters}}],
    }
    pyhf.Workspace(spec)  # schema validation: raises pyhf.exceptions.InvalidSpecification
    return spec


def histosys_reach(
    nominal: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    floor: np.ndarray | float = 0.0,
    scale: float = 1.0,
    limit: float = SPURIOUS_BOUND,
) -> float:
    """Largest |alpha| (at most `limit`, at least 1) for which scale x (the linearly extrapolated histosys
    nominal + |alpha| (up - nominal), resp. nominal - |alpha| (nominal - down)) + floor stays >= 0 in every
    bin, with a 10 % margin. `floor`: what else is in the bin (the background), `scale`: the largest mu."""
    reach = float(limit)
    floor = np.broadcast_to(np.asarray(floor, dtype=float), np.shape(nominal))
    for varied in (up, down):
        below = varied < nominal
        if np.any(below):
            room = scale * nominal[below] + floor[below]
            reach = min(reach, 0.9 * float(np.min(room / (scale * (nominal[below] - varied[below])))))
    return max(reach, 1.0)


def physical_poi_bounds(templates: Templates, poi_bounds: Sequence[float]) -> tuple[float, float]:
    """POI bounds with the lower one raised to -0.9 min(b / s) over bins with signal (positive Poisson
    means)."""
    lo, hi = float(poi_bounds[0]), float(poi_bounds[1])
    if not lo < hi:
        raise ValueError(f"poi_bounds must be (low, high) with low < high, got {poi_bounds!r}")
    s = np.concatenate([templates.signal[c] for c in templates.categories])
    b = np.concatenate([templates.background[c] for c in templates.categories])
    if lo < 0 and np.any(s > 0):
        lo = max(lo, -0.9 * float(np.min(b[s > 0] / s[s > 0])))
    return lo, hi


def stat_only(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The workspace with every modifier removed except normfactors (the POI and the background norms)."""
    out = copy.deepcopy(dict(spec))
    kept: set[str] = set()
    for channel in out["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] == "normfactor"]
            kept.update(m["name"] for m in sample["modifiers"])
    for measurement in out["measurements"]:
        measurement["config"]["parameters"] = [
            p for p in measurement["config"].get("parameters", []) if p["name"] in kept
        ]
    pyhf.Workspace(out)
    return out


def with_observations(spec: Mapping[str, Any], data: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The workspace with its observations replaced by `data` (category -> yields)."""
    out = copy.deepcopy(dict(spec))
    out["observations"] = [
        {"name": o["name"], "data": np.asarray(data[o["name"]], float).tolist()} for o in out["observations"]
    ]
    return out


def workspace(spec: Mapping[str, Any] | pyhf.Workspace) -> pyhf.Workspace:
    """A pyhf.Workspace from a spec dict (validated) or the workspace itself."""
    return spec if isinstance(spec, pyhf.Workspace) else pyhf.Workspace(json.loads(json.dumps(spec)))


def model_and_data(spec: Mapping[str, Any] | pyhf.Workspace) -> tuple[pyhf.Model, np.ndarray]:
    """The workspace's model (module's interpolation codes) and its observations with auxiliary data."""
    ws = workspace(spec)
    model = ws.model(modifier_settings=MODIFIER_SETTINGS)
    return model, np.asarray(ws.data(model), dtype=float)
