"""The reconstructed objects of an event as a second input stream (issue 14, seed paper 003): their order,
properties and type codes, the skim's object columns and the feature table's object block, in one place.

Order of the objects of an event: [l1, l2, gamma, extra photons..., jets...], l1 and l2 the candidate's
leptons by pT, gamma its photon, then up to `n_extra_photons` further photons and up to `n_jets` jets, each
kind pT-ordered and cleaned against the candidate's leptons and photon (Delta R > `clean_dr`). Every slot
has the properties (pT, eta, phi, E, type); an empty slot is padding: all properties 0 and type 0
(`PADDING`), and the object model masks it by its type, so its values change nothing.

phi is measured from the candidate photon's phi (wrapped to [-pi, pi)): the physics is invariant under a
rotation about the beam, and the relative angle keeps what matters (the photon's own phi is 0). The 12
features of the paper are untouched: this block is added beside them as columns obj{i}_{pt,eta,phi,e,type}.

Skim columns (flat, one per slot): pho{k}_{pt,eta,phi} and the count n_extra_photons; jet{k}_{pt,eta,phi,mass}
and the count n_jets (objects that pass the cleaning, before truncation to the slots). Padding is 0 there
too. An n-tuple without a Jet collection gives no jet columns, and then the feature table has no jet slots
(`check_object_columns` says so, for the object model only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

#: Type codes of the `type` property.
PADDING, ELECTRON, MUON, PHOTON, JET = 0, 1, 2, 3, 4
N_TYPES = 5
#: Properties of every object slot, in the order of the feature columns; `type` is last.
PROPERTIES: tuple[str, ...] = ("pt", "eta", "phi", "e", "type")
#: Properties that the normaliser standardises (the type is a code, kept as is).
CONTINUOUS: tuple[str, ...] = PROPERTIES[:-1]
#: The candidate's objects, always present after the selection.
CANDIDATE_OBJECTS = 3
#: Default numbers of slots (config `objects`).
DEFAULTS: dict[str, Any] = {"n_extra_photons": 2, "n_jets": 3, "clean_dr": 0.4}
LEPTON_MASS = {11: 0.000511, 13: 0.10566}

_COLUMN = re.compile(r"^obj(\d+)_(pt|eta|phi|e|type)$")


def settings(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config's `objects` section with the defaults filled in."""
    return {**DEFAULTS, **dict(cfg or {})}


def n_objects(cfg: Mapping[str, Any] | None) -> int:
    """Slots per event: the candidate's three objects plus the extra photons and jets of config `objects`."""
    s = settings(cfg)
    return CANDIDATE_OBJECTS + int(s["n_extra_photons"]) + int(s["n_jets"])


def slot_names(cfg: Mapping[str, Any] | None) -> list[str]:
    """Name of every object slot, in order: l1, l2, gamma, photon1..., jet1... (config `objects`)."""
    s = settings(cfg)
    photons = [f"photon{k + 1}" for k in range(int(s["n_extra_photons"]))]
    return ["l1", "l2", "gamma", *photons, *[f"jet{k + 1}" for k in range(int(s["n_jets"]))]]


def column(i: int, prop: str) -> str:
    """Feature column of property `prop` of object slot `i`."""
    return f"obj{int(i)}_{prop}"


def object_columns(n: int) -> list[str]:
    """The object block's columns, slot by slot, properties in PROPERTIES order."""
    return [column(i, p) for i in range(int(n)) for p in PROPERTIES]


def count_objects(columns: Sequence[str]) -> int:
    """Number of object slots in a list of input columns (0 for the paper's models); checks the layout."""
    found = [m for m in map(_COLUMN.match, columns) if m]
    if not found:
        return 0
    n = len(found) // len(PROPERTIES)
    if [m.group(0) for m in found] != object_columns(n) or list(columns[-len(found) :]) != object_columns(n):
        raise ValueError(
            f"object columns must be the last ones and complete, obj0_pt ... obj{n - 1}_type: {columns}"
        )
    return n


def is_type_column(name: str) -> bool:
    m = _COLUMN.match(name)
    return bool(m) and m.group(2) == "type"


def check_object_columns(available: Sequence[str], n: int, source: str) -> None:
    """Raise naming what is missing when the feature files lack the object block the object model needs."""
    missing = [c for c in object_columns(n) if c not in set(available)]
    if missing:
        raise KeyError(
            f"{source}: the object model needs {n} object slots but the feature files lack {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; n-tuples without a Jet collection (Delphes without "
            "jets, or generated before jets were added: regenerate them) give no jet slots, or set "
            "objects.n_jets: 0"
        )


# ---------------------------------------------------------------- skim
def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _flat_collection(objects: ak.Array, fields: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A jagged collection as (objects per event, {field: flat numpy values}): the few awkward calls the
    object block makes; everything after them is numpy."""
    counts = ak.to_numpy(ak.num(objects, axis=1)).astype(np.int64)
    return counts, {f: ak.to_numpy(ak.flatten(objects[f], axis=1)) for f in fields}


def _cleaned_slots(
    objects: ak.Array,
    cand: Mapping[str, np.ndarray],
    clean_dr: float,
    n: int,
    fields: Sequence[str],
    prefix: str,
) -> dict[str, np.ndarray]:
    """The first `n` of `objects` (jagged) farther than `clean_dr` from the candidate's two leptons and
    photon, pT-ordered (ties keep the n-tuple's order), as flat columns {prefix}{k}_{field}, 0 where the event
    has fewer; and `n_kept`, how many pass the cleaning (before the truncation to `n`).

    Columnar on flat arrays: each object carries its event's index, the cleaning is one mask, the order one
    stable lexsort by (event, -pT), and an object's slot is its rank within its event."""
    counts, flat = _flat_collection(objects, list(dict.fromkeys(("pt", "eta", "phi", *fields))))
    n_events = len(counts)
    event = np.repeat(np.arange(n_events), counts)
    keep = np.ones(len(event), dtype=bool)
    for name in ("lm", "lp", "g"):
        eta, phi = np.asarray(cand[f"{name}_eta"])[event], np.asarray(cand[f"{name}_phi"])[event]
        with np.errstate(invalid="ignore"):
            keep &= _delta_r(flat["eta"], flat["phi"], eta, phi) > clean_dr
    kept = np.flatnonzero(keep)
    kept = kept[np.lexsort((-flat["pt"][kept], event[kept]))]
    kept_event = event[kept]
    n_kept = np.bincount(kept_event, minlength=n_events)
    rank = np.arange(len(kept)) - (np.cumsum(n_kept) - n_kept)[kept_event]
    in_slot = rank < n
    slot_event, slot = kept_event[in_slot], rank[in_slot]
    tables = {}
    for f in fields:
        tables[f] = np.zeros((n, n_events), dtype=np.float64)
        tables[f][slot, slot_event] = flat[f][kept[in_slot]]
    out = {f"{prefix}{k}_{f}": tables[f][k] for k in range(n) for f in fields}  # slot by slot
    out["n_kept"] = n_kept.astype(np.int32)
    return out


def skim_columns(
    events: ak.Array, cand: Mapping[str, np.ndarray], cfg: Mapping[str, Any] | None
) -> dict[str, np.ndarray]:
    """Extra photons and jets of every event as flat skim columns (see the module doc), cleaned against the
    candidate columns `cand` (`hzg.data.selection.candidate_columns`: lm_, lp_, g_ eta and phi)."""
    s = settings(cfg)
    clean_dr = float(s["clean_dr"])
    cols = _cleaned_slots(
        events.photon, cand, clean_dr, int(s["n_extra_photons"]), ("pt", "eta", "phi"), "pho"
    )
    cols["n_extra_photons"] = cols.pop("n_kept")
    if "jet" in ak.fields(events):
        jets = _cleaned_slots(
            events.jet, cand, clean_dr, int(s["n_jets"]), ("pt", "eta", "phi", "mass"), "jet"
        )
        jets["n_jets"] = jets.pop("n_kept")
        cols.update(jets)
    return cols


# ---------------------------------------------------------------- features
def _energy(pt, eta, mass):
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)


def feature_block(skim: Mapping[str, np.ndarray], cfg: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The object block obj{i}_{pt,eta,phi,e,type} of the feature table from the skim columns.

    Jet slots are written only when the skim has jets (`skim_columns`); fewer slots than config asks for
    are then left out, and the object model's input check names them.
    """
    s = settings(cfg)
    flavour = np.asarray(skim["flavour"])
    n = len(flavour)
    lep_type = np.where(flavour == 13, MUON, ELECTRON)
    lep_mass = np.where(flavour == 13, LEPTON_MASS[13], LEPTON_MASS[11])
    lm_lead = np.asarray(skim["lm_pt"]) >= np.asarray(skim["lp_pt"])
    g_phi = np.asarray(skim["g_phi"], np.float64)

    def lead(a, b):
        return np.where(lm_lead, skim[f"lm_{a}"], skim[f"lp_{b}"])

    # (pt, eta, phi, mass, type, present) per slot
    slots = [
        (lead("pt", "pt"), lead("eta", "eta"), lead("phi", "phi"), lep_mass, lep_type, None),
        (
            np.where(lm_lead, skim["lp_pt"], skim["lm_pt"]),
            np.where(lm_lead, skim["lp_eta"], skim["lm_eta"]),
            np.where(lm_lead, skim["lp_phi"], skim["lm_phi"]),
            lep_mass,
            lep_type,
            None,
        ),
        (skim["g_pt"], skim["g_eta"], g_phi, np.zeros(n), np.full(n, PHOTON), None),
    ]
    for k in range(int(s["n_extra_photons"])):
        present = np.asarray(skim["n_extra_photons"]) > k
        slots.append(
            (skim[f"pho{k}_pt"], skim[f"pho{k}_eta"], skim[f"pho{k}_phi"], np.zeros(n), PHOTON, present)
        )
    if "n_jets" in skim:
        for k in range(int(s["n_jets"])):
            present = np.asarray(skim["n_jets"]) > k
            slots.append(
                (
                    skim[f"jet{k}_pt"],
                    skim[f"jet{k}_eta"],
                    skim[f"jet{k}_phi"],
                    skim[f"jet{k}_mass"],
                    JET,
                    present,
                )
            )
    out: dict[str, np.ndarray] = {}
    for i, (pt, eta, phi, mass, kind, present) in enumerate(slots):
        pt, eta, phi, mass = (np.asarray(v, np.float64) for v in (pt, eta, phi, mass))
        ok = np.ones(n, bool) if present is None else present
        dphi = (phi - g_phi + np.pi) % (2 * np.pi) - np.pi
        values = {"pt": pt, "eta": eta, "phi": dphi, "e": _energy(pt, eta, mass)}
        for prop in CONTINUOUS:
            out[column(i, prop)] = np.where(ok, values[prop], 0.0)
        out[column(i, "type")] = np.where(ok, np.broadcast_to(kind, (n,)), PADDING).astype(np.float64)
    return out


# ---------------------------------------------------------------- normalisation
def normalisation(x: np.ndarray, columns: Sequence[str], mean: np.ndarray, std: np.ndarray) -> None:
    """Fix the normaliser's `mean` and `std` (in place) for the object block of inputs `x` (n, columns):
    type columns are kept as they are (mean 0, std 1: the model reads the codes for its mask), and each
    continuous object column is standardised with the statistics of its real objects only (padding excluded;
    mean 0, std 1 for a slot that is never filled)."""
    n = count_objects(columns)
    if not n:
        return
    start = len(columns) - n * len(PROPERTIES)
    for i in range(n):
        base = start + i * len(PROPERTIES)
        real = x[:, base + len(PROPERTIES) - 1] > 0
        for j in range(len(PROPERTIES)):
            values = x[real, base + j].astype(np.float64)
            if j == len(PROPERTIES) - 1 or not real.any():
                mean[base + j], std[base + j] = 0.0, 1.0
            else:
                mean[base + j] = values.mean()
                sd = values.std()
                std[base + j] = sd if sd > 0 else 1.0
