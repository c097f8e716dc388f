"""Mass-resolution map: per-object relative pT resolution measured on signal, binned in |eta| and pT.

The paper estimates sigma_m by binning signal events in eta and pT of the photon and leptons and
measuring the width in each bin. We measure, for each object type (electron, muon, photon) and each
(|eta|, pT) bin, the width of pT_reco / pT_true - 1 on the signal sample (half the 16-84 % interval,
robust against tails), and propagate the three objects' widths into the ll-gamma mass with the exact
three-body derivatives (`hzg.kinematics.mass_log_derivatives`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OBJECTS = ("electron", "muon", "photon")
MIN_PER_BIN = 20


def robust_width(x: np.ndarray) -> float:
    """Half the 16-84 % interquantile range (sigma of a Gaussian core)."""
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def binned_width(pt: np.ndarray, eta: np.ndarray, response: np.ndarray,
                 eta_edges: Sequence[float], pt_edges: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Width of `response` per (|eta|, pT) bin and the number of entries per bin.

    Bins with fewer than MIN_PER_BIN entries take the width of all entries of the object.
    """
    ie = np.digitize(np.abs(eta), eta_edges) - 1
    ip = np.digitize(pt, pt_edges) - 1
    n_eta, n_pt = len(eta_edges) - 1, len(pt_edges) - 1
    inside = (ie >= 0) & (ie < n_eta) & (ip >= 0) & (ip < n_pt) & np.isfinite(response)
    if inside.sum() < MIN_PER_BIN:
        raise ValueError(f"only {int(inside.sum())} objects inside the resolution-map binning; "
                         f"need at least {MIN_PER_BIN}")
    overall = robust_width(response[inside])
    flat = ie[inside] * n_pt + ip[inside]
    order = np.argsort(flat, kind="stable")
    sorted_resp = response[inside][order]
    counts = np.bincount(flat, minlength=n_eta * n_pt)
    width = np.full(n_eta * n_pt, overall)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for b in np.flatnonzero(counts >= MIN_PER_BIN):  # loop over bins (tens), not events
        width[b] = robust_width(sorted_resp[starts[b]:starts[b + 1]])
    return width.reshape(n_eta, n_pt), counts.reshape(n_eta, n_pt)


def build_map(objects: Mapping[str, Mapping[str, np.ndarray]], eta_edges: Sequence[float],
              pt_edges: Sequence[float]) -> dict[str, Any]:
    """Resolution map from signal objects {type: {pt, eta, gen_pt}} (JSON-serialisable)."""
    out: dict[str, Any] = {"eta_edges": list(map(float, eta_edges)), "pt_edges": list(map(float, pt_edges))}
    for name in OBJECTS:
        if name not in objects or len(objects[name]["pt"]) == 0:
            raise ValueError(f"resolution map: no signal {name}s with generator truth (gen_pt)")
        obj = objects[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            response = np.asarray(obj["pt"]) / np.asarray(obj["gen_pt"]) - 1.0
        width, counts = binned_width(np.asarray(obj["pt"]), np.asarray(obj["eta"]), response, eta_edges, pt_edges)
        out[name] = {"width": width.tolist(), "entries": counts.tolist()}
    return out


def lookup(res_map: Mapping[str, Any], name: str, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Relative pT resolution of objects of type `name` from the map (clamped to the edge bins)."""
    width = np.asarray(res_map[name]["width"])
    ie = np.clip(np.digitize(np.abs(eta), res_map["eta_edges"]) - 1, 0, width.shape[0] - 1)
    ip = np.clip(np.digitize(pt, res_map["pt_edges"]) - 1, 0, width.shape[1] - 1)
    return width[ie, ip]


def objects_from_skim(cols: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Electrons, muons and photons (pt, eta, gen_pt) of skimmed candidates, for `build_map`."""
    flavour = np.asarray(cols["flavour"])
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, pdg in (("electron", 11), ("muon", 13)):
        sel = flavour == pdg
        out[name] = {f: np.concatenate([cols[f"lm_{f}"][sel], cols[f"lp_{f}"][sel]]) for f in ("pt", "eta", "gen_pt")}
    out["photon"] = {f: np.asarray(cols[f"g_{f}"]) for f in ("pt", "eta", "gen_pt")}
    for name, obj in out.items():
        if not np.isfinite(obj["gen_pt"]).any():
            raise ValueError(f"resolution map: the signal {name}s carry no generator truth (gen_pt branch); "
                             "give the branch map a gen_pt entry or use a sample with truth")
    return out
