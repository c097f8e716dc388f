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


# vector's own compute functions for (pt, phi, eta, mass) vectors, called on plain numpy arrays: the same
# numbers as vector.array(...) arithmetic, bit for bit, without its per-call overhead (pinned vector version).
from vector._compute.lorentz import add as _lorentz_add  # noqa: E402
from vector._compute.spatial import deltaR as _spatial_delta_r  # noqa: E402
from vector._methods import AzimuthalRhoPhi as _RhoPhi, LongitudinalEta as _Eta, TemporalTau as _Tau  # noqa: E402


def _sum(*objects: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Sum of (pt, phi, eta, mass) four-vectors: its coordinates, the last one the mass."""
    total, kind = objects[0], (_RhoPhi, _Eta, _Tau)
    for other in objects[1:]:
        func, *kind = _lorentz_add.dispatch_map[(*kind, _RhoPhi, _Eta, _Tau)]
        total = func(np, *total, *other)
    return total


def _delta_r(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    return _spatial_delta_r.dispatch_map[(_RhoPhi, _Eta, _RhoPhi, _Eta)][0](np, *a[:3], *b[:3])


def _flat(values: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(values, axis=1))


def _pair_indices(charge: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Opposite-sign pairs (i < j, in ak.combinations order) of a jagged collection: event, flat i, flat j."""
    counts = ak.to_numpy(ak.num(charge, axis=1))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    events, firsts, seconds = [], [], []
    for j in range(1, int(counts.max(initial=0))):
        has = np.flatnonzero(counts > j)
        for i in range(j):
            events.append(has)
            firsts.append(np.full(len(has), i))
            seconds.append(np.full(len(has), j))
    if not events:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    event = np.concatenate(events)
    order = np.lexsort(
        (np.concatenate(seconds), np.concatenate(firsts), event)
    )  # per event (0,1), (0,2), (1,2), ...
    event = event[order]
    i = np.concatenate(firsts)[order] + starts[event]
    j = np.concatenate(seconds)[order] + starts[event]
    q = _flat(charge)
    opposite = q[i] * q[j] < 0
    return event[opposite], i[opposite], j[opposite]


def candidate_columns(events: ak.Array) -> dict[str, np.ndarray]:
    """`candidate_kinematics(best_candidates(events))`, computed on flat numpy arrays (the skim's fast path).

    Same choice (the SFOS pair closest to the Z mass, electrons' pairs before muons' on a tie, the
    leading photon) and the same numbers, bit for bit (tests/test_selection.py).
    """
    n = len(events)
    flat: dict[str, dict[str, np.ndarray]] = {}
    pair_event, pair_lm, pair_lp, pair_flavour, pair_dist = [], [], [], [], []
    for coll, flavour in (("electron", 11), ("muon", 13)):
        leptons = events[coll]
        fields = ak.fields(leptons)
        flat[coll] = {f: _flat(leptons[f]) for f in ("pt", "eta", "phi", "charge", "gen_pt") if f in fields}
        event, i, j = _pair_indices(leptons.charge)
        f = flat[coll]
        zero = np.zeros(len(i))
        a = (f["pt"][i], f["phi"][i], f["eta"][i], zero)
        b = (f["pt"][j], f["phi"][j], f["eta"][j], zero)
        a_neg = f["charge"][i] < 0
        pair_event.append(event)
        pair_lm.append(np.where(a_neg, i, j))
        pair_lp.append(np.where(a_neg, j, i))
        pair_flavour.append(np.full(len(i), flavour, dtype=np.int32))
        pair_dist.append(np.abs(_sum(a, b)[3] - Z_MASS))
    event = np.concatenate(pair_event)
    dist = np.concatenate(pair_dist)
    # per event the first pair of smallest distance, electrons' pairs before muons' (as ak.argmin over the
    # concatenation)
    rank = np.concatenate([np.full(len(pair_event[0]), 0), np.full(len(pair_event[1]), 1)])
    order = np.lexsort((np.arange(len(event)), rank, dist, event))
    first = order[np.r_[True, event[order][1:] != event[order][:-1]]] if len(order) else order
    best_event = event[first]
    flavour = np.zeros(n, dtype=np.int32)
    flavour[best_event] = np.concatenate(pair_flavour)[first]
    lm_index = np.concatenate(pair_lm)[first]
    lp_index = np.concatenate(pair_lp)[first]
    is_e = flavour[best_event] == 11
    cols: dict[str, np.ndarray] = {"flavour": flavour}
    for name, index in (("lm", lm_index), ("lp", lp_index)):
        for field in ("pt", "eta", "phi", "gen_pt"):
            out = np.full(n, np.nan)
            for coll, mask in (("electron", is_e), ("muon", ~is_e)):
                values = flat[coll].get(field)
                if values is not None:
                    out[best_event[mask]] = values[index[mask]].astype(np.float64)
            cols[f"{name}_{field}"] = out
    photons = events.photon
    lead = ak.to_numpy(ak.fill_none(ak.argmax(photons.pt, axis=1), -1))
    has = lead >= 0
    counts = ak.to_numpy(ak.num(photons.pt, axis=1))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    for field in ("pt", "eta", "phi", "gen_pt"):
        out = np.full(n, np.nan)
        if field in ak.fields(photons):
            out[has] = _flat(photons[field])[starts[has] + lead[has]].astype(np.float64)
        cols[f"g_{field}"] = out
    # the kinematics exactly as candidate_kinematics computes them
    cols = {
        k: cols[k]
        for k in ["flavour"] + [f"{o}_{f}" for o in ("lm", "lp", "g") for f in ("pt", "eta", "phi", "gen_pt")]
    }
    # computed where defined (a pair; a pair and a photon): NaN elsewhere, as vector gives for NaN inputs
    mass = np.where(flavour == 13, LEPTON_MASS[13], LEPTON_MASS[11])
    pair = best_event  # events with a pair, ascending
    full = pair[has[pair]]

    def vec(obj: str, where: np.ndarray) -> tuple[np.ndarray, ...]:
        m = mass[where] if obj != "g" else np.zeros(len(where))
        return cols[f"{obj}_pt"][where], cols[f"{obj}_phi"][where], cols[f"{obj}_eta"][where], m

    values = {
        "mll": (pair, _sum(vec("lm", pair), vec("lp", pair))[3]),
        "mllg": (full, _sum(vec("lm", full), vec("lp", full), vec("g", full))[3]),
        "dr_lm_g": (full, _delta_r(vec("lm", full), vec("g", full))),
        "dr_lp_g": (full, _delta_r(vec("lp", full), vec("g", full))),
    }
    for key, (where, value) in values.items():
        cols[key] = np.full(n, np.nan)
        cols[key][where] = value
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
    events: ak.Array, cuts: Cuts, source: str = "<events>", objects_cfg: Mapping | None = None
) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """Apply the selection; return flat columns of the passing candidates and the cutflow.

    With `objects_cfg` (config `objects`) the columns also carry the extra photons and jets of every
    passing event (`hzg.data.objects.skim_columns`); the candidate's columns are the same either way.
    Raises EmptySelectionError naming `source` and the first cut that leaves no event.
    """
    cols = candidate_columns(events)
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
    out = {k: v[passed] for k, v in cols.items()}
    if objects_cfg is not None:
        from hzg.data import objects

        out.update(objects.skim_columns(events[passed], out, objects_cfg))
    return out, flow
