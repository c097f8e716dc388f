"""Preselection of H -> Z(ll) gamma candidates (paper 000, Sec. IV A), columnar, with a cutflow.

Candidate choice, stated once:
* Z candidate: among all same-flavour opposite-sign pairs of identified electrons or muons, the
  pair whose invariant mass is closest to m_Z = 91.1876 GeV (as in the CMS H->Zgamma analysis).
* Photon: the highest-pT identified photon of the event.
The cuts are then applied, in order, to that (Z, photon) candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

Z_MASS = 91.1876
LEPTON_MASS = {11: 0.000511, 13: 0.10566}

#: Cut names in the order they are applied; the cutflow lists them so.
CUT_ORDER = (
    "all",
    "sfos_lepton_pair",
    "photon",
    "lepton_pt",
    "photon_pt_over_mllg",
    "min_dr_lepton_photon",
    "mll",
    "mllg_plus_mll",
    "mllg_window",
)


@dataclass(frozen=True)
class Cuts:
    """Thresholds of the selection (config section `selection`)."""

    lead_lepton_pt: float = 25.0
    sublead_lepton_pt: float = 15.0
    photon_pt_over_mass: float = 15.0 / 110.0
    min_dr_lepton_photon: float = 0.4
    mll_min: float = 50.0
    mllg_plus_mll_min: float = 185.0
    mllg_min: float = 100.0
    mllg_max: float = 180.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, float]) -> "Cuts":
        return cls(**{k: float(v) for k, v in cfg.items()})


class EmptySelectionError(RuntimeError):
    """No event survives the selection; the message names the input and the cut."""


def _p4(objects: ak.Array, mass: float) -> ak.Array:
    return ak.zip(
        {"pt": objects.pt, "eta": objects.eta, "phi": objects.phi, "mass": ak.zeros_like(objects.pt) + mass},
        with_name="Momentum4D",
    )


def _sfos_pairs(leptons: ak.Array, flavour: int) -> ak.Array:
    """All opposite-sign pairs of one flavour, as records (lm, lp, flavour) with lm the negative lepton."""
    a, b = ak.unzip(ak.combinations(leptons, 2, fields=["0", "1"]))
    pairs = ak.zip({"a": a, "b": b}, depth_limit=2)
    pairs = pairs[pairs.a.charge * pairs.b.charge < 0]
    a_neg = pairs.a.charge < 0
    lm = ak.where(a_neg, pairs.a, pairs.b)
    lp = ak.where(a_neg, pairs.b, pairs.a)
    return ak.zip(
        {"lm": lm, "lp": lp, "flavour": ak.values_astype(ak.zeros_like(lm.pt) + flavour, np.int32)},
        depth_limit=2,
    )


def best_candidates(events: ak.Array) -> ak.Array:
    """Per event the best Z candidate (lm, lp, flavour) and the leading photon, None where absent."""
    pairs = ak.concatenate([_sfos_pairs(events.electron, 11), _sfos_pairs(events.muon, 13)], axis=1)
    mll = (_p4(pairs.lm, 0.0) + _p4(pairs.lp, 0.0)).mass
    best = ak.firsts(pairs[ak.argmin(abs(mll - Z_MASS), axis=1, keepdims=True)])
    photon = ak.firsts(events.photon[ak.argmax(events.photon.pt, axis=1, keepdims=True)])
    return ak.zip({"z": best, "photon": photon}, depth_limit=1)


def candidate_kinematics(cand: ak.Array) -> dict[str, np.ndarray]:
    """Flat columns of the chosen leptons and photon plus mll, mllg and Delta R's (None -> NaN)."""
    flavour = ak.to_numpy(ak.fill_none(cand.z.flavour, 0))
    mass = np.where(flavour == 13, LEPTON_MASS[13], LEPTON_MASS[11])
    cols: dict[str, np.ndarray] = {"flavour": flavour.astype(np.int32)}
    for name, obj in (("lm", cand.z.lm), ("lp", cand.z.lp), ("g", cand.photon)):
        for field in ("pt", "eta", "phi"):
            cols[f"{name}_{field}"] = ak.to_numpy(ak.fill_none(obj[field], np.nan)).astype(np.float64)
        gen = obj["gen_pt"] if "gen_pt" in ak.fields(obj) else ak.full_like(obj.pt, np.nan)
        cols[f"{name}_gen_pt"] = ak.to_numpy(ak.fill_none(gen, np.nan)).astype(np.float64)
    lm = vector.array({"pt": cols["lm_pt"], "eta": cols["lm_eta"], "phi": cols["lm_phi"], "mass": mass})
    lp = vector.array({"pt": cols["lp_pt"], "eta": cols["lp_eta"], "phi": cols["lp_phi"], "mass": mass})
    g = vector.array(
        {"pt": cols["g_pt"], "eta": cols["g_eta"], "phi": cols["g_phi"], "mass": np.zeros_like(mass)}
    )
    cols["mll"] = np.asarray((lm + lp).mass)
    cols["mllg"] = np.asarray((lm + lp + g).mass)
    cols["dr_lm_g"] = np.asarray(lm.deltaR(g))
    cols["dr_lp_g"] = np.asarray(lp.deltaR(g))
    return cols


def cut_masks(cols: Mapping[str, np.ndarray], cuts: Cuts) -> dict[str, np.ndarray]:
    """Boolean mask of each individual cut (not cumulative), keyed as in CUT_ORDER."""
    lead = np.fmax(cols["lm_pt"], cols["lp_pt"])
    sublead = np.fmin(cols["lm_pt"], cols["lp_pt"])
    with np.errstate(invalid="ignore"):
        return {
            "all": np.ones(len(cols["flavour"]), dtype=bool),
            "sfos_lepton_pair": cols["flavour"] > 0,
            "photon": np.isfinite(cols["g_pt"]),
            "lepton_pt": (lead > cuts.lead_lepton_pt) & (sublead > cuts.sublead_lepton_pt),
            "photon_pt_over_mllg": cols["g_pt"] / cols["mllg"] > cuts.photon_pt_over_mass,
            "min_dr_lepton_photon": np.fmin(cols["dr_lm_g"], cols["dr_lp_g"]) > cuts.min_dr_lepton_photon,
            "mll": cols["mll"] > cuts.mll_min,
            "mllg_plus_mll": cols["mllg"] + cols["mll"] > cuts.mllg_plus_mll_min,
            "mllg_window": (cols["mllg"] > cuts.mllg_min) & (cols["mllg"] < cuts.mllg_max),
        }


def cutflow(masks: Mapping[str, np.ndarray], weights: np.ndarray) -> list[dict[str, float]]:
    """Cumulative cutflow rows {cut, n_raw, sum_weights} in CUT_ORDER."""
    passed = np.ones(len(weights), dtype=bool)
    rows = []
    for name in CUT_ORDER:
        passed &= masks[name]
        rows.append({"cut": name, "n_raw": int(passed.sum()), "sum_weights": float(weights[passed].sum())})
    return rows


def passes_all(masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Events that pass every cut of CUT_ORDER (the preselection)."""
    return np.logical_and.reduce([masks[name] for name in CUT_ORDER])


def preselect(
    events: ak.Array, cuts: Cuts, source: str = "<events>"
) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """Apply the selection; return flat columns of the passing candidates and the cutflow.

    Raises EmptySelectionError naming `source` and the first cut that leaves no event.
    """
    cols = candidate_kinematics(best_candidates(events))
    cols["entry"] = ak.to_numpy(events.entry).astype(np.int64)
    cols["weight"] = ak.to_numpy(events.weight).astype(np.float64)
    masks = cut_masks(cols, cuts)
    flow = cutflow(masks, cols["weight"])
    empty = next((row["cut"] for row in flow if row["n_raw"] == 0), None)
    if empty is not None:
        raise EmptySelectionError(
            f"{source}: no event passes the cut {empty!r} (cutflow: "
            + ", ".join(f"{r['cut']}={r['n_raw']}" for r in flow)
            + ")"
        )
    passed = passes_all(masks)
    return {k: v[passed] for k, v in cols.items()}, flow
