"""Parametric CMS-like detector response applied to the generated final state (columnar).

Numbers used (all resolutions are relative, sigma/E or sigma/pT):

* Photons, ECAL: sigma_E/E = S/sqrt(E) (+) N/E (+) C with (S, N[GeV], C) = (0.08, 0.2, 0.010) in the
  barrel and (0.15, 0.3, 0.025) in the endcaps. Tuned to the in-situ photon resolution of CMS,
  1-2.5 % in the barrel and 2.5-4 % in the endcaps (CMS, JINST 10 (2015) P08010).
* Electrons: (S, N, C) = (0.10, 0.25, 0.015) barrel, (0.20, 0.3, 0.030) endcap, giving the 1.7-4.5 %
  resolution of electrons from Z decays (CMS, JINST 10 (2015) P06005).
* Muons, tracker + muon system: sigma_pT/pT = a(|eta|) (+) b pT with a = 1.3 % (|eta| < 0.9), 2.0 %
  (0.9-1.2), 3.0 % (1.2-2.4) and b = 1e-4 / GeV: 1.3-2 % in the barrel and up to 6 % in the endcaps
  for pT < 100 GeV (CMS, JINST 7 (2012) P10002).
* Acceptance and thresholds of the CMS H->Zgamma analysis (CMS, JHEP 05 (2023) 233): electrons
  pT > 7 GeV, |eta| < 2.5; muons pT > 5 GeV, |eta| < 2.4; photons pT > 15 GeV, |eta| < 2.5; electrons
  and photons in the barrel/endcap transition 1.4442 < |eta| < 1.566 are lost.
* Identification efficiencies (plateaus of the working points used there): electrons 92 % barrel,
  85 % endcap with a turn-on 1/(1+exp(-(pT-10)/2)); muons 99 %; photons 90 % barrel, 85 % endcap.
* Isolation: scalar sum of the pT of all other visible final-state particles with pT > 0.5 GeV in a
  cone Delta R < `isolation_cone` around the object, divided by the object's pT (PF-like relative
  isolation), as Delphes' Isolation module computes it over the energy-flow objects. The cone and the cuts
  come from config; the default takes the paper's detector, Delphes' CMS card: Delta R < 0.5, at most 0.12
  for electrons and photons and 0.25 for muons. A lepton within Delta R 0.5 of the photon then makes both
  non-isolated, and a lepton that radiated a photon of more than 12 % (25 %) of its pT nearby is lost, as in
  the paper's samples (docs/physics.md, "Detector response"). The n-tuple's `*_pfRelIso03_all` holds this
  value whatever the cone.
* Jets (`reconstruct_jets`): anti-kT, R = 0.4 (config `detector.jet.radius`), clustered with FastJet (the
  `fastjet` package's awkward interface, all events at once) from every visible final-state particle of
  the record (neutrinos are never in it), leptons and photons included, as CMS's generator-level jets;
  the skim removes the jets within Delta R < 0.4 of the candidate's leptons and photon. At hadron level
  the inputs are hadrons, leptons and photons; at parton level (the default: no hadronisation, no
  multi-parton interactions) they are the showered partons, leptons and photons, so a "jet" there is a
  cluster of showered partons, without hadronisation or underlying event. Jet pT is smeared with
  sigma_pT/pT = 1.0/sqrt(pT [GeV]) (+) 0.05 (a CMS-like PF-jet resolution, JINST 12 (2017) P02014: about
  20 % at 30 GeV, 10 % at 100 GeV); eta, phi and the mass are the clustered jet's, the four-momentum scaled
  with pT. Kept: pT > 30 GeV, |eta| < 4.7 (config). The smearing draws from its own random stream
  (`hzg.data.generate.jet_seed`), so adding jets changes no other collection's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

BARREL_ETA = 1.4442
ISO_PARTICLE_PT_MIN = 0.5  # GeV

#: (stochastic, noise [GeV], constant) of the ECAL energy resolution, barrel and endcap.
PHOTON_RESOLUTION = {"barrel": (0.08, 0.2, 0.010), "endcap": (0.15, 0.3, 0.025)}
ELECTRON_RESOLUTION = {"barrel": (0.10, 0.25, 0.015), "endcap": (0.20, 0.3, 0.030)}
#: muon resolution: constant term by |eta| region (edges), and curvature term per GeV.
MUON_RESOLUTION_ETA_EDGES = np.array([0.0, 0.9, 1.2, np.inf])
MUON_RESOLUTION_CONST = np.array([0.013, 0.020, 0.030])
MUON_RESOLUTION_SLOPE = 1.0e-4

#: (pdg id, mass [GeV]) of the reconstructed collections.
COLLECTIONS: dict[str, tuple[int, float]] = {
    "Electron": (11, 0.000511),
    "Muon": (13, 0.10566),
    "Photon": (22, 0.0),
}
#: The jet collection's name in the n-tuple (written only when the config has `detector.jet`).
JET_COLLECTION = "Jet"
#: (stochastic [sqrt(GeV)], constant) of the relative jet pT resolution.
JET_RESOLUTION = (1.0, 0.05)


def ecal_resolution(
    energy: np.ndarray, abseta: np.ndarray, params: Mapping[str, tuple[float, float, float]]
) -> np.ndarray:
    """Relative ECAL energy resolution sigma_E/E = S/sqrt(E) (+) N/E (+) C, barrel or endcap."""
    energy = np.maximum(np.asarray(energy, dtype=np.float64), 1e-6)
    barrel = np.asarray(abseta) < BARREL_ETA
    s, n, c = (np.where(barrel, params["barrel"][k], params["endcap"][k]) for k in range(3))
    return np.sqrt((s / np.sqrt(energy)) ** 2 + (n / energy) ** 2 + c**2)


def muon_resolution(pt: np.ndarray, abseta: np.ndarray) -> np.ndarray:
    """Relative muon pT resolution a(|eta|) (+) b pT."""
    region = np.clip(np.searchsorted(MUON_RESOLUTION_ETA_EDGES, abseta, side="right") - 1, 0, 2)
    return np.hypot(MUON_RESOLUTION_CONST[region], MUON_RESOLUTION_SLOPE * np.asarray(pt))


def relative_resolution(name: str, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Relative pT resolution of a massless object of collection `name` at (pT, eta)."""
    abseta = np.abs(eta)
    energy = np.asarray(pt) * np.cosh(eta)
    if name == "Photon":
        return ecal_resolution(energy, abseta, PHOTON_RESOLUTION)
    if name == "Electron":
        return ecal_resolution(energy, abseta, ELECTRON_RESOLUTION)
    if name == "Muon":
        return muon_resolution(pt, abseta)
    raise ValueError(f"no resolution model for collection {name!r}")


def identification_efficiency(name: str, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Probability that an object in the acceptance passes identification."""
    barrel = np.abs(eta) < BARREL_ETA
    if name == "Electron":
        return np.where(barrel, 0.92, 0.85) / (1.0 + np.exp(-(np.asarray(pt) - 10.0) / 2.0))
    if name == "Muon":
        return np.full(np.shape(pt), 0.99)
    if name == "Photon":
        return np.where(barrel, 0.90, 0.85)
    raise ValueError(f"no efficiency model for collection {name!r}")


def in_acceptance(name: str, eta: np.ndarray, eta_max: float, gap: tuple[float, float]) -> np.ndarray:
    """|eta| acceptance; electrons and photons in the barrel/endcap gap are lost."""
    abseta = np.abs(eta)
    ok = abseta < eta_max
    if name in ("Electron", "Photon"):
        ok &= ~((abseta > gap[0]) & (abseta < gap[1]))
    return ok


def with_kinematics(particles: ak.Array) -> ak.Array:
    """Add pt, eta, phi and the index in the event to jagged particles with pid, px, py, pz, E."""
    p4 = ak.zip(
        {"px": particles.px, "py": particles.py, "pz": particles.pz, "E": particles.E}, with_name="Momentum4D"
    )
    return ak.zip(
        {
            "pid": particles.pid,
            "pt": p4.pt,
            "eta": p4.eta,
            "phi": p4.phi,
            "index": ak.local_index(particles.pid),
        }
    )


def relative_isolation(candidates: ak.Array, pool: ak.Array, cone: float) -> ak.Array:
    """Sum of pT of the other `pool` particles within Delta R < cone, over the candidate's pT."""
    cand, other = ak.unzip(ak.cartesian([candidates, pool], nested=True))
    dphi = (cand.phi - other.phi + np.pi) % (2 * np.pi) - np.pi
    inside = (np.hypot(cand.eta - other.eta, dphi) < cone) & (cand.index != other.index)
    return ak.sum(ak.where(inside, other.pt, 0.0), axis=-1) / candidates.pt


def reconstruct(particles: ak.Array, cfg: Mapping[str, Any], rng: np.random.Generator) -> dict[str, ak.Array]:
    """Reconstructed electrons, muons and photons (pT-ordered) from the generated final state.

    `cfg` is the `detector` section of the config. Random numbers are drawn in a fixed order
    (collection by collection, all smearings then all efficiencies) so a seed fixes the result.
    """
    parts = with_kinematics(particles)
    pool = parts[parts.pt > ISO_PARTICLE_PT_MIN]
    out: dict[str, ak.Array] = {}
    for name, (pid, mass) in COLLECTIONS.items():
        cuts = cfg[name.lower()]
        cands = parts[
            (abs(parts.pid) == pid)
            & (parts.pt > 0.5 * cuts["pt_min"])
            & (abs(parts.eta) < cuts["eta_max"] + 0.5)
        ]
        iso = ak.flatten(relative_isolation(cands, pool, cfg["isolation_cone"]))
        counts = ak.num(cands)
        flat = ak.flatten(cands)
        gen_pt = ak.to_numpy(flat.pt)
        eta = ak.to_numpy(flat.eta)
        sigma = relative_resolution(name, gen_pt, eta)
        pt = gen_pt * (1.0 + sigma * rng.standard_normal(len(gen_pt)))
        passed_id = rng.uniform(size=len(gen_pt)) < identification_efficiency(name, gen_pt, eta)
        keep = (
            (pt > cuts["pt_min"])
            & in_acceptance(name, eta, cuts["eta_max"], tuple(cfg["gap"]))
            & passed_id
            & (ak.to_numpy(iso) < cuts["rel_iso_max"])
        )
        fields = {"pt": pt, "eta": eta, "phi": ak.to_numpy(flat.phi)}
        if name != "Photon":
            fields["mass"] = np.full(len(pt), mass)
            fields["charge"] = -np.sign(ak.to_numpy(flat.pid)).astype(np.int32)
        fields["genPt"] = gen_pt
        fields["pfRelIso03_all"] = ak.to_numpy(iso)
        objects = ak.unflatten(ak.zip(fields), counts)[ak.unflatten(keep, counts)]
        out[name] = objects[ak.argsort(objects.pt, axis=-1, ascending=False)]
    return out


def jet_resolution(pt: np.ndarray) -> np.ndarray:
    """Relative jet pT resolution S/sqrt(pT) (+) C."""
    pt = np.maximum(np.asarray(pt, dtype=np.float64), 1e-6)
    return np.hypot(JET_RESOLUTION[0] / np.sqrt(pt), JET_RESOLUTION[1])


def cluster_jets(particles: ak.Array, radius: float, pt_min: float = 0.0) -> ak.Array:
    """Anti-kT jets (px, py, pz, E; jagged, pT-ordered) of jagged particles with px, py, pz, E, clustered by
    FastJet over all events at once."""
    import fastjet

    inputs = ak.zip(
        {f: ak.values_astype(particles[f], np.float64) for f in ("px", "py", "pz", "E")}, depth_limit=2
    )
    sequence = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, float(radius)))
    jets = sequence.inclusive_jets(min_pt=float(pt_min))
    jets = ak.zip({f: jets[f] for f in ("px", "py", "pz", "E")})
    pt = np.hypot(jets.px, jets.py)
    return jets[ak.argsort(pt, axis=-1, ascending=False, stable=True)]


def reconstruct_jets(particles: ak.Array, cfg: Mapping[str, Any], rng: np.random.Generator) -> ak.Array:
    """Smeared anti-kT jets (pt, eta, phi, mass; pT-ordered) of the visible final state; `cfg` is
    `detector.jet` (radius, pt_min, eta_max). `rng` must be the jets' own stream (see the module doc)."""
    # clustered above half the threshold: smearing moves jets across it both ways
    jets = cluster_jets(particles, cfg["radius"], 0.5 * float(cfg["pt_min"]))
    counts = ak.num(jets)
    flat = ak.flatten(jets)
    p4 = vector.array({k: ak.to_numpy(flat[k]) for k in ("px", "py", "pz", "E")})
    gen_pt = np.asarray(p4.pt, dtype=np.float64)
    eta = np.asarray(p4.eta, dtype=np.float64)
    mass = np.nan_to_num(np.asarray(p4.mass, dtype=np.float64))
    pt = gen_pt * (1.0 + jet_resolution(gen_pt) * rng.standard_normal(len(gen_pt)))
    keep = (pt > float(cfg["pt_min"])) & (np.abs(eta) < float(cfg["eta_max"]))
    scale = np.clip(pt / np.maximum(gen_pt, 1e-12), 0.0, None)
    fields = {
        "pt": pt,
        "eta": eta,
        "phi": np.asarray(p4.phi, dtype=np.float64),
        "mass": mass * scale,
        "genPt": gen_pt,
    }
    objects = ak.unflatten(ak.zip(fields), counts)[ak.unflatten(keep, counts)]
    return objects[ak.argsort(objects.pt, axis=-1, ascending=False, stable=True)]
