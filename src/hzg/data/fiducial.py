"""The particle-level fiducial region of a published 13 TeV Z(ll)gamma measurement, for the generated
background's recoil.

ATLAS measured pp -> Z(ll)gamma with 139 fb^-1 at 13 TeV and unfolded it to particle level (arXiv:1911.04813,
JHEP 03 (2020) 054; HEPData ins1764342, doi:10.17182/hepdata.89875.v2), among others in pT(llg) and in
pT(llg)/m(llg), the recoil that sets the background in this analysis' top score bins. `atlas_2019_zgamma`
applies its fiducial selection, as the Rivet routine ATLAS_2019_I1764342 defines it, to generated final
states (jagged pid, px, py, pz, E, as `generate.ChunkGenerator.batch` gives them):

* leptons dressed with the photons within Delta R < 0.1 (each photon to its nearest lepton), pT > 25 GeV,
  |eta| < 2.47; two electrons, else two muons (the leading two of the flavour); leading pT > 30 GeV;
  m(ll) > 40 GeV;
* photons pT > 30 GeV, |eta| < 2.37, isolated: the ET of the other final-state particles within Delta R < 0.2
  (not counting those photons, the dressed muons or invisible particles, which the record has none of) at
  most 0.07 of the photon's ET; Delta R(l, gamma) > 0.4 to both leptons; the leading such photon;
* m(ll) + m(llg) > 182 GeV.

At parton level (this workflow's default generation) the "other particles" of the isolation are partons: a
parton within 0.2 of the photon carrying more than 7 % of its ET fails it, which is what the hadrons of
its jet would do. At hadron level the record holds no ancestry, so leptons and photons from hadron decays are
not told apart from the prompt ones the routine takes: above 25-30 GeV, isolated and away from the leptons
they are rare. The measurement is per lepton flavour (the Rivet routine's 0.5 for e and mu together).
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

ELECTRON, MUON, PHOTON = 11, 13, 22


@dataclass(frozen=True)
class FiducialCuts:
    """The cuts of ATLAS_2019_I1764342 (GeV)."""

    lepton_pt: float = 25.0
    lead_lepton_pt: float = 30.0
    lepton_eta: float = 2.47
    dress_dr: float = 0.1
    mll_min: float = 40.0
    photon_pt: float = 30.0
    photon_eta: float = 2.37
    iso_dr: float = 0.2
    iso_max: float = 0.07
    lepton_photon_dr: float = 0.4
    mll_plus_mllg_min: float = 182.0


def _momenta(particles: ak.Array) -> ak.Array:
    return ak.zip(
        {"px": particles.px, "py": particles.py, "pz": particles.pz, "E": particles.E, "pid": particles.pid},
        with_name="Momentum4D",
    )


def _dressed(bare: ak.Array, photons: ak.Array, dress_dr: float) -> ak.Array:
    """`bare` leptons plus the photons within dress_dr whose nearest bare lepton (of any flavour) they are."""
    dr = _delta_r_to(photons, bare)
    nearest = ak.argmin(dr, axis=-1)
    assigned = ak.where(ak.fill_none(ak.min(dr, axis=-1), np.inf) < dress_dr, ak.fill_none(nearest, -1), -1)
    idx, owner = ak.unzip(ak.cartesian([ak.local_index(bare), assigned], nested=True))
    gp = ak.broadcast_arrays(idx, photons[:, np.newaxis, :])[1]
    take = idx == owner
    add = {c: ak.sum(ak.where(take, getattr(gp, c), 0.0), axis=-1) for c in ("px", "py", "pz", "E")}
    return ak.zip(
        {c: getattr(bare, c) + add[c] for c in ("px", "py", "pz", "E")} | {"pid": bare.pid},
        with_name="Momentum4D",
    )


def _leading_two(leptons: ak.Array) -> ak.Array:
    ordered = leptons[ak.argsort(leptons.pt, axis=-1, ascending=False)]
    return ak.pad_none(ordered, 2, axis=-1)[:, :2]


def atlas_2019_zgamma(particles: ak.Array, cuts: FiducialCuts | None = None) -> dict[str, np.ndarray]:
    """The fiducial selection of ATLAS_2019_I1764342 on jagged final-state particles.

    Returns `passed` (bool per event) and, for every event (NaN where it fails), `m_ll`, `m_llg`,
    `pt_llg`, `pt_llg_over_m_llg`, `photon_pt` and `photon_abseta`.
    """
    cuts = cuts or FiducialCuts()
    p = _momenta(particles)
    absid = abs(p.pid)
    photons = p[absid == PHOTON]
    bare = p[(absid == ELECTRON) | (absid == MUON)]
    dressed = _dressed(bare, photons, cuts.dress_dr)
    good = dressed[(dressed.pt > cuts.lepton_pt) & (abs(dressed.eta) < cuts.lepton_eta)]
    electrons = good[abs(good.pid) == ELECTRON]
    muons = good[abs(good.pid) == MUON]
    use_e = ak.num(electrons) >= 2
    two = ak.where(use_e, _leading_two(electrons), _leading_two(muons))
    has_pair = use_e | (ak.num(muons) >= 2)
    l1, l2 = two[:, 0], two[:, 1]
    ll = l1 + l2
    pair_ok = has_pair & ak.fill_none((l1.pt > cuts.lead_lepton_pt) & (ll.mass > cuts.mll_min), False)

    # isolation of the candidate photons: every final-state particle but the candidates and the dressed
    # muons (Rivet vetoes those from its isolation final state), so also the muons' bare constituents
    is_cand = (absid == PHOTON) & (p.pt > cuts.photon_pt) & (abs(p.eta) < cuts.photon_eta)
    cand = p[is_cand]
    in_muon = ak.fill_none(ak.min(_delta_r_to(p, muons), axis=-1), np.inf) < cuts.dress_dr
    others = p[~is_cand & ~((absid == MUON) | ((absid == PHOTON) & in_muon))]
    _, o = ak.unzip(ak.cartesian([cand, others], nested=True))
    cone = ak.sum(ak.where(_delta_r_to(cand, others) < cuts.iso_dr, _et(o), 0.0), axis=-1)
    far = ak.fill_none(
        (cand.deltaR(l1) > cuts.lepton_photon_dr) & (cand.deltaR(l2) > cuts.lepton_photon_dr), False
    )
    chosen = cand[(cone / _et(cand) <= cuts.iso_max) & far]
    chosen = chosen[ak.argsort(chosen.pt, axis=-1, ascending=False)]
    gamma = ak.firsts(chosen)
    llg = ll + gamma
    passed = ak.fill_none(pair_ok & ~ak.is_none(gamma) & (ll.mass + llg.mass > cuts.mll_plus_mllg_min), False)
    passed = ak.to_numpy(passed).astype(bool)

    def column(values: ak.Array) -> np.ndarray:
        out = ak.to_numpy(ak.fill_none(values, np.nan)).astype(np.float64)
        return np.where(passed, out, np.nan)

    return {
        "passed": passed,
        "m_ll": column(ll.mass),
        "m_llg": column(llg.mass),
        "pt_llg": column(llg.pt),
        "pt_llg_over_m_llg": column(llg.pt / llg.mass),
        "photon_pt": column(gamma.pt),
        "photon_abseta": column(abs(gamma.eta)),
    }


def _et(p: ak.Array) -> ak.Array:
    """Transverse energy E sin(theta), as Rivet's Et()."""
    return p.E * p.pt / p.p


def _delta_r_to(p: ak.Array, objects: ak.Array) -> ak.Array:
    """Per particle, the Delta R to each of `objects` (nested: event, particle, object)."""
    a, b = ak.unzip(ak.cartesian([p, objects], nested=True))
    return a.deltaR(b)
