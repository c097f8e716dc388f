"""Mass-resolution map: per-object relative pT resolution measured on signal, binned in |eta| and pT.

The paper estimates sigma_m by binning signal events in eta and pT of the photon and leptons and
measuring the width in each bin. We measure, for each object type (electron, muon, photon) and each
(|eta|, pT) bin, the width of pT_reco / pT_true - 1 on the signal sample (half the 16-84 % interval,
robust against tails), and propagate the three objects' widths into the ll-gamma mass with the exact
three-body derivatives (`hzg.data.kinematics.mass_log_derivatives`).

Those widths describe the detector smearing alone: on signal, (m_llg(reco) - m_llg(truth pT)) / sigma_m
has a 16-84 % half-width of 1.02. The signal peak is wider than that: QED final-state radiation that
the photon candidate does not recover moves m_llg(truth pT) below 125 GeV (its own 16-84 % half-width
is 0.59 GeV), so (m_llg - 125 GeV) / sigma_m has a half-width of 1.25. The paper defines sigma_m as
"the signal's mass width" in bins of eta and pT of the photon and leptons, which includes that
radiation. `calibrate` therefore rescales the per-object widths of each (|eta|, pT) bin, iteratively,
until the pull (m_llg - 125 GeV) / sigma_m of the signal has a 16-84 % half-width of 1 among the events
with an object in that bin, for every bin of every object type. The calibrated widths replace `width`
(so `lookup` and every user of the map get the calibrated sigma_m); the truth-measured ones stay in
`raw_width`, the factors in `calibration`, and the pull widths before and after in `pull_width`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hzg.data import kinematics

OBJECTS = ("electron", "muon", "photon")
MIN_PER_BIN = 20
#: Nominal Higgs-boson mass [GeV], the reference of the signal pull.
HIGGS_MASS = 125.0
#: Fewest events with an object in a bin for that bin's own calibration (else the object type's).
MIN_PULL_PER_BIN = 100
CALIBRATION_ITERATIONS = 50
#: Bounds of a calibration factor: radiation only widens the peak, so a width never drops below the
#: truth-measured detector width.
MAX_CALIBRATION = 3.0
#: Object types whose widths the calibration rescales (the leptons radiate; see `calibrate`).
CALIBRATED_OBJECTS = ("electron", "muon")
#: Calibration stops once every bin's pull half-width is within this of 1.
CALIBRATION_TOLERANCE = 0.002


def robust_width(x: np.ndarray) -> float:
    """Half the 16-84 % interquantile range (sigma of a Gaussian core)."""
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def binned_width(
    pt: np.ndarray,
    eta: np.ndarray,
    response: np.ndarray,
    eta_edges: Sequence[float],
    pt_edges: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Width of `response` per (|eta|, pT) bin and the number of entries per bin.

    Bins with fewer than MIN_PER_BIN entries take the width of all entries of the object.
    """
    ie = np.digitize(np.abs(eta), eta_edges) - 1
    ip = np.digitize(pt, pt_edges) - 1
    n_eta, n_pt = len(eta_edges) - 1, len(pt_edges) - 1
    inside = (ie >= 0) & (ie < n_eta) & (ip >= 0) & (ip < n_pt) & np.isfinite(response)
    if inside.sum() < MIN_PER_BIN:
        raise ValueError(
            f"only {int(inside.sum())} objects inside the resolution-map binning; need at least {MIN_PER_BIN}"
        )
    overall = robust_width(response[inside])
    flat = ie[inside] * n_pt + ip[inside]
    order = np.argsort(flat, kind="stable")
    sorted_resp = response[inside][order]
    counts = np.bincount(flat, minlength=n_eta * n_pt)
    width = np.full(n_eta * n_pt, overall)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for b in np.flatnonzero(counts >= MIN_PER_BIN):  # loop over bins (tens), not events
        width[b] = robust_width(sorted_resp[starts[b] : starts[b + 1]])
    return width.reshape(n_eta, n_pt), counts.reshape(n_eta, n_pt)


def build_map(
    objects: Mapping[str, Mapping[str, np.ndarray]], eta_edges: Sequence[float], pt_edges: Sequence[float]
) -> dict[str, Any]:
    """Resolution map from signal objects {type: {pt, eta, gen_pt}} (JSON-serialisable)."""
    out: dict[str, Any] = {"eta_edges": list(map(float, eta_edges)), "pt_edges": list(map(float, pt_edges))}
    for name in OBJECTS:
        if name not in objects or len(objects[name]["pt"]) == 0:
            raise ValueError(f"resolution map: no signal {name}s with generator truth (gen_pt)")
        obj = objects[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            response = np.asarray(obj["pt"]) / np.asarray(obj["gen_pt"]) - 1.0
        width, counts = binned_width(
            np.asarray(obj["pt"]), np.asarray(obj["eta"]), response, eta_edges, pt_edges
        )
        out[name] = {"width": width.tolist(), "entries": counts.tolist()}
    return out


def bin_index(res_map: Mapping[str, Any], pt: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|eta|, pT) bin of each object, clamped to the edge bins as `lookup` does."""
    n_eta, n_pt = len(res_map["eta_edges"]) - 1, len(res_map["pt_edges"]) - 1
    ie = np.clip(np.digitize(np.abs(eta), res_map["eta_edges"]) - 1, 0, n_eta - 1)
    ip = np.clip(np.digitize(pt, res_map["pt_edges"]) - 1, 0, n_pt - 1)
    return ie, ip


def lookup(res_map: Mapping[str, Any], name: str, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Relative pT resolution of objects of type `name` from the map (clamped to the edge bins)."""
    ie, ip = bin_index(res_map, pt, eta)
    return np.asarray(res_map[name]["width"])[ie, ip]


# ---------------------------------------------------------------- calibration of sigma_m on the signal peak


def _event_objects(
    cols: Mapping[str, np.ndarray], res_map: Mapping[str, Any]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per candidate object (lm, lp, photon): (object type index in OBJECTS, flat bin, log-derivative of
    m)."""
    lm = (np.asarray(cols["lm_pt"]), np.asarray(cols["lm_eta"]), np.asarray(cols["lm_phi"]))
    lp = (np.asarray(cols["lp_pt"]), np.asarray(cols["lp_eta"]), np.asarray(cols["lp_phi"]))
    g = (np.asarray(cols["g_pt"]), np.asarray(cols["g_eta"]), np.asarray(cols["g_phi"]))
    derivs = kinematics.mass_log_derivatives(*lm, *lp, *g)
    lepton = np.where(np.asarray(cols["flavour"]) == 13, OBJECTS.index("muon"), OBJECTS.index("electron"))
    n_pt = len(res_map["pt_edges"]) - 1
    out = []
    for (pt, eta, _), kind, d in zip(
        (lm, lp, g), (lepton, lepton, np.full(len(lepton), OBJECTS.index("photon"))), derivs
    ):
        ie, ip = bin_index(res_map, pt, eta)
        out.append((kind, ie * n_pt + ip, np.asarray(d)))
    return out


def _sigma_m(
    objects: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], widths: np.ndarray, mllg: np.ndarray
) -> np.ndarray:
    """sigma_m [GeV] = m sqrt(sum_i (d_i r_i)^2), r_i from `widths[type, flat bin]`."""
    return mllg * np.sqrt(sum((d * widths[kind, b]) ** 2 for kind, b, d in objects))


def mass_resolution(cols: Mapping[str, np.ndarray], res_map: Mapping[str, Any]) -> np.ndarray:
    """sigma_m [GeV] of skimmed candidates from the map (the same propagation as the sigma_m feature)."""
    widths = np.stack([np.asarray(res_map[o]["width"], dtype=np.float64).ravel() for o in OBJECTS])
    return _sigma_m(_event_objects(cols, res_map), widths, np.asarray(cols["mllg"], dtype=np.float64))


def _binned_pull_widths(
    objects: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    pull: np.ndarray,
    n_bins: int,
    share: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (object type, bin): 16-84 % half-width of `pull` among the events with such an object, entries,
    mean of the per-event `share` over those events; and the half-width over all events with the type.

    An event counts once in a (type, bin) even when both leptons fall in it. Bins with fewer than
    MIN_PULL_PER_BIN events take the width of all events with an object of that type (or 1 if none).
    """
    n_types = len(OBJECTS)
    codes = np.stack([kind * n_bins + b for kind, b, _ in objects])  # (3, n_events)
    event = np.broadcast_to(np.arange(codes.shape[1]), codes.shape)
    keep = np.ones(codes.shape, dtype=bool)
    keep[1] = codes[1] != codes[0]  # both leptons in one bin: once
    code, ev = codes[keep], event[keep]
    order = np.argsort(code, kind="stable")
    code, ev = code[order], ev[order]
    values = pull[ev]
    counts = np.bincount(code, minlength=n_types * n_bins)
    mean_share = np.ones(n_types * n_bins)
    if share is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_share = np.bincount(code, weights=share[ev], minlength=n_types * n_bins) / counts
    starts = np.concatenate([[0], np.cumsum(counts)])
    width = np.ones(n_types * n_bins)
    for c in np.flatnonzero(counts >= MIN_PULL_PER_BIN):  # loop over bins (tens), not events
        width[c] = robust_width(values[starts[c] : starts[c + 1]])
    per_type = np.ones(n_types)
    kinds = np.stack([kind for kind, _, _ in objects])
    for t in range(n_types):
        sel = (kinds == t).any(axis=0)
        if sel.sum() >= MIN_PULL_PER_BIN:
            per_type[t] = robust_width(pull[sel])
    sparse = counts < MIN_PULL_PER_BIN
    width[sparse] = np.repeat(per_type, n_bins)[sparse]
    shape = (n_types, n_bins)
    return (
        width.reshape(shape),
        counts.reshape(shape),
        np.nan_to_num(mean_share, nan=1.0).reshape(shape),
        per_type,
    )


def pull_widths(
    cols: Mapping[str, np.ndarray], res_map: Mapping[str, Any], m_ref: float = HIGGS_MASS
) -> dict[str, Any]:
    """16-84 % half-width of the signal pull (m_llg - m_ref) / sigma_m per object type and (|eta|, pT) bin.

    {"all": width over all events, type: {"width": [[...]], "entries": [[...]], "all": width of the type}};
    bins with fewer than MIN_PULL_PER_BIN events report the type's overall width.
    """
    objects = _event_objects(cols, res_map)
    mllg = np.asarray(cols["mllg"], dtype=np.float64)
    pull = (mllg - m_ref) / mass_resolution(cols, res_map)
    shape = (len(res_map["eta_edges"]) - 1, len(res_map["pt_edges"]) - 1)
    width, counts, _, per_type = _binned_pull_widths(objects, pull, shape[0] * shape[1])
    out: dict[str, Any] = {"all": robust_width(pull)}
    for t, name in enumerate(OBJECTS):
        out[name] = {
            "width": width[t].reshape(shape).tolist(),
            "entries": counts[t].reshape(shape).tolist(),
            "all": float(per_type[t]),
        }
    return out


def calibrate(
    cols: Mapping[str, np.ndarray],
    res_map: Mapping[str, Any],
    m_ref: float = HIGGS_MASS,
    calibrated: Sequence[str] = CALIBRATED_OBJECTS,
    iterations: int = CALIBRATION_ITERATIONS,
    tolerance: float = CALIBRATION_TOLERANCE,
) -> dict[str, Any]:
    """Map whose widths give a signal pull (m_llg - m_ref) / sigma_m of 16-84 % half-width 1 in every bin.

    `cols` are skimmed signal candidates (`hzg.data.selection`: lm_/lp_/g_ pt, eta, phi, flavour, mllg).
    Only the object types in `calibrated` are rescaled (default: the leptons, whose final-state
    radiation widens the peak; the photon keeps its truth-measured width). Each iteration measures,
    per (type, |eta|, pT) bin, the pull half-width s among the events with such an object and the
    mean share f of sigma_m^2 that the calibrated objects carry there, and multiplies the bin's width
    by sqrt(1 + (s^2 - 1) / f) (clipped to [0.7, 1.4] per step): the factor that makes sigma_m of those
    events grow by s if all calibrated objects in them moved alike. The factors stay within
    [1, MAX_CALIBRATION]: radiation only adds to the detector width measured from truth. Bins with
    fewer than MIN_PULL_PER_BIN events follow the factor of their object type as a whole.
    """
    unknown = set(calibrated) - set(OBJECTS)
    if unknown:
        raise ValueError(f"calibrate: unknown object types {sorted(unknown)}; choose from {OBJECTS}")
    objects = _event_objects(cols, res_map)
    mllg = np.asarray(cols["mllg"], dtype=np.float64)
    raw = np.stack([np.asarray(res_map[o]["width"], dtype=np.float64).ravel() for o in OBJECTS])
    n_bins = raw.shape[1]
    movable = np.array([o in calibrated for o in OBJECTS])
    factor = np.ones_like(raw)
    done = 0
    for done in range(1, iterations + 1):
        widths = raw * factor
        terms = [(d * widths[kind, b]) ** 2 for kind, b, d in objects]
        total = sum(terms)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = sum(t * movable[kind] for t, (kind, _, _) in zip(terms, objects)) / total
        pull = (mllg - m_ref) / (mllg * np.sqrt(total))
        width, _, mean_share, _ = _binned_pull_widths(objects, pull, n_bins, share)
        at_bound = ((factor <= 1.0) & (width < 1.0)) | ((factor >= MAX_CALIBRATION) & (width > 1.0))
        free = movable[:, None] & ~at_bound  # sparse bins carry their type's width
        if np.max(np.abs(width[free] - 1.0), initial=0.0) < tolerance:
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            step = np.sqrt(np.clip(1.0 + (width**2 - 1.0) / np.maximum(mean_share, 0.05), 0.49, 1.96))
        factor = np.where(movable[:, None], np.clip(factor * step, 1.0, MAX_CALIBRATION), 1.0)
    shape = np.asarray(res_map[OBJECTS[0]]["width"]).shape
    out = {k: v for k, v in res_map.items() if k not in OBJECTS}
    for t, name in enumerate(OBJECTS):
        out[name] = {
            **res_map[name],
            "raw_width": raw[t].reshape(shape).tolist(),
            "calibration": factor[t].reshape(shape).tolist(),
            "width": (raw[t] * factor[t]).reshape(shape).tolist(),
        }
    out["calibration"] = {
        "reference_mass_gev": float(m_ref),
        "calibrated_objects": list(calibrated),
        "iterations": done,
        "n_events": int(len(mllg)),
        "pull_width_before": pull_widths(cols, res_map, m_ref),
        "pull_width_after": pull_widths(cols, out, m_ref),
        "sigma_m_median_gev_before": float(np.median(mass_resolution(cols, res_map))),
        "sigma_m_median_gev_after": float(np.median(mass_resolution(cols, out))),
    }
    return out


def objects_from_skim(cols: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Electrons, muons and photons (pt, eta, gen_pt) of skimmed candidates, for `build_map`."""
    flavour = np.asarray(cols["flavour"])
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, pdg in (("electron", 11), ("muon", 13)):
        sel = flavour == pdg
        out[name] = {
            f: np.concatenate([cols[f"lm_{f}"][sel], cols[f"lp_{f}"][sel]]) for f in ("pt", "eta", "gen_pt")
        }
    out["photon"] = {f: np.asarray(cols[f"g_{f}"]) for f in ("pt", "eta", "gen_pt")}
    for name, obj in out.items():
        if not np.isfinite(obj["gen_pt"]).any():
            raise ValueError(
                f"resolution map: the signal {name}s carry no generator truth (gen_pt branch); "
                "give the branch map a gen_pt entry or use a sample with truth"
            )
    return out
