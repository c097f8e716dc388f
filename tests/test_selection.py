"""Tests for hzg.data.selection on hand-built events and hand-set candidate columns."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from hzg.data import selection
from hzg.data.selection import (
    CUT_ORDER,
    LEPTON_MASS,
    Z_MASS,
    Cuts,
    EmptySelectionError,
    best_candidates,
    candidate_kinematics,
    cut_masks,
    cutflow,
    preselect,
)

ROOT = Path(__file__).resolve().parents[1]
M_MU, M_E = LEPTON_MASS[13], LEPTON_MASS[11]

# Fields (and dtypes) of the collections as hzg.io.read_events returns them (NanoAOD, with truth pT).
LEPTON_FIELDS = {
    "pt": np.float64,
    "eta": np.float64,
    "phi": np.float64,
    "charge": np.int32,
    "gen_pt": np.float64,
}
PHOTON_FIELDS = {"pt": np.float64, "eta": np.float64, "phi": np.float64, "gen_pt": np.float64}


# ---------------------------------------------------------------- helpers
def lep(pt, eta, phi, charge, gen_pt=None):
    return {
        "pt": float(pt),
        "eta": float(eta),
        "phi": float(phi),
        "charge": int(charge),
        "gen_pt": float(pt if gen_pt is None else gen_pt),
    }


def pho(pt, eta, phi, gen_pt=None):
    return {
        "pt": float(pt),
        "eta": float(eta),
        "phi": float(phi),
        "gen_pt": float(pt if gen_pt is None else gen_pt),
    }


def _collection(per_event, dtypes):
    """Jagged records from per-event lists of dicts; typed even where every list is empty."""
    flat = [obj for objs in per_event for obj in objs]
    cols = {k: np.array([obj[k] for obj in flat], dtype=dt) for k, dt in dtypes.items()}
    return ak.unflatten(ak.zip(cols), np.array([len(objs) for objs in per_event], dtype=np.int64))


def make_events(*evts):
    """Event records (electron, muon, photon, weight, entry) as hzg.io.read_events returns them.

    Each argument is a dict with optional keys electron, muon, photon (lists of object dicts),
    weight (default 1) and entry (default: position).
    """
    return ak.zip(
        {
            "electron": _collection([ev.get("electron", []) for ev in evts], LEPTON_FIELDS),
            "muon": _collection([ev.get("muon", []) for ev in evts], LEPTON_FIELDS),
            "photon": _collection([ev.get("photon", []) for ev in evts], PHOTON_FIELDS),
            "weight": np.array([ev.get("weight", 1.0) for ev in evts], dtype=np.float64),
            "entry": np.array([ev.get("entry", i) for i, ev in enumerate(evts)], dtype=np.int64),
        },
        depth_limit=1,
    )


def test_make_events_matches_hand_written_records():
    """The helper builds the same array as ak.Array of plain records."""
    ev = {
        "electron": [lep(30.0, 0.1, 0.2, -1)],
        "muon": [lep(20.0, 1.0, 2.0, +1, gen_pt=21.0)],
        "photon": [pho(15.0, -0.3, 3.0)],
        "weight": 0.5,
        "entry": 7,
    }
    ref = ak.Array([ev])
    built = make_events(ev)
    assert built.to_list() == ref.to_list()
    assert ak.fields(built) == ["electron", "muon", "photon", "weight", "entry"]


def p4(pt, eta, phi, m):
    """(E, px, py, pz) of one object, independent of `vector`."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.array([np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz])


def inv_mass(*vs):
    tot = np.sum(vs, axis=0)
    return float(np.sqrt(tot[0] ** 2 - np.sum(tot[1:] ** 2)))


def photon_pt_for_mllg(mll, mllg):
    """Photon pT at eta 0 giving mllg for a Z at rest (back-to-back leptons at eta 0) of mass mll."""
    return (mllg**2 - mll**2) / (2.0 * mll)


def z_at_rest(pt=45.0, flavour=13, phi=0.0, gen=True):
    """An opposite-sign pair at eta 0, back to back: mll = 2 sqrt(pt^2 + m^2)."""
    lm = lep(pt, 0.0, phi, -1, gen_pt=pt + 1.0 if gen else None)
    lp = lep(pt, 0.0, phi + np.pi, +1, gen_pt=pt - 1.0 if gen else None)
    return {"electron" if flavour == 11 else "muon": [lp, lm]}


def good_columns(n=1, **overrides):
    """Candidate columns (as from candidate_kinematics) of events passing every cut."""
    cols = {
        "flavour": np.full(n, 13, dtype=np.int32),
        "lm_pt": np.full(n, 40.0),
        "lp_pt": np.full(n, 30.0),
        "g_pt": np.full(n, 30.0),
        "mll": np.full(n, 90.0),
        "mllg": np.full(n, 125.0),
        "dr_lm_g": np.full(n, 1.5),
        "dr_lp_g": np.full(n, 2.0),
    }
    for k, v in overrides.items():
        cols[k] = np.asarray(v, dtype=cols[k].dtype)
    return cols


# ---------------------------------------------------------------- single cuts at their thresholds
EPS = 1e-6
# (cut, column overrides for [just above, just below] the threshold); the other columns pass.
THRESHOLDS = [
    ("lepton_pt", {"lm_pt": [25.0 + EPS, 25.0 - EPS], "lp_pt": [20.0, 20.0]}),  # leading, lm leads
    ("lepton_pt", {"lm_pt": [20.0, 20.0], "lp_pt": [25.0 + EPS, 25.0 - EPS]}),  # leading, lp leads
    ("lepton_pt", {"lm_pt": [15.0 + EPS, 15.0 - EPS], "lp_pt": [40.0, 40.0]}),  # subleading = lm
    ("lepton_pt", {"lm_pt": [40.0, 40.0], "lp_pt": [15.0 + EPS, 15.0 - EPS]}),  # subleading = lp
    ("photon_pt_over_mllg", {"g_pt": [15.0 + EPS, 15.0 - EPS], "mllg": [110.0, 110.0], "mll": [91.0, 91.0]}),
    ("photon_pt_over_mllg", {"g_pt": [125.0 * 15 / 110 + EPS, 125.0 * 15 / 110 - EPS]}),
    ("min_dr_lepton_photon", {"dr_lm_g": [0.4 + EPS, 0.4 - EPS], "dr_lp_g": [3.0, 3.0]}),
    ("min_dr_lepton_photon", {"dr_lm_g": [3.0, 3.0], "dr_lp_g": [0.4 + EPS, 0.4 - EPS]}),
    ("mll", {"mll": [50.0 + EPS, 50.0 - EPS], "mllg": [140.0, 140.0]}),
    ("mllg_plus_mll", {"mll": [60.0, 60.0], "mllg": [125.0 + EPS, 125.0 - EPS]}),
    ("mllg_plus_mll", {"mll": [85.0 + EPS, 85.0 - EPS], "mllg": [100.0 + EPS / 2, 100.0 + EPS / 2]}),
    ("mllg_window", {"mllg": [100.0 + EPS, 100.0 - EPS]}),  # lower edge
    ("mllg_window", {"mllg": [180.0 - EPS, 180.0 + EPS]}),  # upper edge
]


@pytest.mark.parametrize(
    "cut, overrides", THRESHOLDS, ids=[f"{c}-{'-'.join(o)}-{i}" for i, (c, o) in enumerate(THRESHOLDS)]
)
def test_each_cut_passes_just_above_and_fails_just_below(cut, overrides):
    masks = cut_masks(good_columns(2, **overrides), Cuts())
    assert masks[cut].tolist() == [True, False]
    # the columns were chosen so that no other cut is involved
    for name in CUT_ORDER:
        if name != cut:
            assert masks[name].tolist() == [True, True], name


def test_cut_masks_are_strict_inequalities_at_the_exact_threshold():
    cols = good_columns(2, lm_pt=[25.0, 40.0], lp_pt=[20.0, 15.0])
    assert cut_masks(cols, Cuts())["lepton_pt"].tolist() == [False, False]
    masks = cut_masks(good_columns(2, g_pt=[15.0, 30.0], mllg=[110.0, 125.0], dr_lp_g=[2.0, 0.4]), Cuts())
    assert masks["photon_pt_over_mllg"].tolist() == [False, True]
    assert masks["min_dr_lepton_photon"].tolist() == [True, False]
    assert cut_masks(good_columns(1, mll=[60.0], mllg=[125.0]), Cuts())["mllg_plus_mll"].tolist() == [False]
    masks = cut_masks(good_columns(2, mllg=[100.0, 180.0], mll=[90.0, 90.0]), Cuts())
    assert masks["mllg_window"].tolist() == [False, False]
    assert cut_masks(good_columns(1, mll=[50.0], mllg=[140.0]), Cuts())["mll"].tolist() == [False]
    assert cut_masks(good_columns(1, dr_lm_g=[0.4]), Cuts())["min_dr_lepton_photon"].tolist() == [False]


def test_cut_masks_keys_follow_cut_order_and_use_given_thresholds():
    cols = good_columns(1)
    masks = cut_masks(cols, Cuts())
    assert tuple(masks) == CUT_ORDER
    assert all(m.tolist() == [True] for m in masks.values())
    tight = Cuts(lead_lepton_pt=41.0, mll_min=95.0, mllg_max=120.0)
    masks = cut_masks(cols, tight)
    assert {k for k, m in masks.items() if not m[0]} == {"lepton_pt", "mll", "mllg_window"}


def test_cut_masks_missing_candidates_fail_their_cuts():
    nan = np.nan
    cols = good_columns(
        3,
        flavour=[0, 13, 0],
        lm_pt=[nan, 40.0, nan],
        lp_pt=[nan, 30.0, nan],
        g_pt=[30.0, nan, nan],
        mll=[nan, 90.0, nan],
        mllg=[nan, nan, nan],
        dr_lm_g=[nan, nan, nan],
        dr_lp_g=[nan, nan, nan],
    )
    masks = cut_masks(cols, Cuts())
    assert masks["all"].tolist() == [True, True, True]
    assert masks["sfos_lepton_pair"].tolist() == [False, True, False]
    assert masks["photon"].tolist() == [True, False, False]
    for name in CUT_ORDER[3:]:
        assert masks[name].tolist()[0] is False and masks[name].tolist()[2] is False


# ---------------------------------------------------------------- full preselection, kinematic events
def test_preselect_back_to_back_muons_and_photon_exact_values():
    mll0 = 2.0 * np.hypot(45.0, M_MU)
    g_pt = photon_pt_for_mllg(mll0, 125.0)
    ev = z_at_rest(45.0, 13) | {"photon": [pho(g_pt, 0.0, np.pi / 2, gen_pt=40.0)], "weight": 0.7}
    cols, flow = preselect(make_events(ev), Cuts(), source="one.root")
    assert cols["flavour"].tolist() == [13]
    np.testing.assert_allclose(cols["mll"], [90.000248089338], rtol=1e-11)
    np.testing.assert_allclose(cols["mll"], [mll0], rtol=1e-12)
    np.testing.assert_allclose(cols["mllg"], [125.0], rtol=1e-12)
    np.testing.assert_allclose(cols["dr_lm_g"], [np.pi / 2], rtol=1e-12)
    np.testing.assert_allclose(cols["dr_lp_g"], [np.pi / 2], rtol=1e-12)
    assert cols["lm_phi"].tolist() == [0.0] and cols["lp_phi"].tolist() == [np.pi]
    assert cols["lm_gen_pt"].tolist() == [46.0] and cols["lp_gen_pt"].tolist() == [44.0]
    assert cols["g_gen_pt"].tolist() == [40.0]
    assert cols["g_pt"].tolist() == [g_pt]
    assert cols["weight"].tolist() == [0.7] and cols["entry"].tolist() == [0]
    assert [r["n_raw"] for r in flow] == [1] * len(CUT_ORDER)
    np.testing.assert_allclose([r["sum_weights"] for r in flow], [0.7] * len(CUT_ORDER))


def test_candidate_kinematics_generic_event_matches_independent_computation():
    lm, lp, g = (38.0, 0.4, 0.3), (27.0, -1.1, 2.6), (33.0, 1.7, -1.9)
    ev = {"electron": [lep(*lp, +1), lep(*lm, -1)], "photon": [pho(*g)]}
    cols = candidate_kinematics(best_candidates(make_events(ev)))
    vl, vp, vg = p4(*lm, M_E), p4(*lp, M_E), p4(*g, 0.0)
    assert cols["flavour"].tolist() == [11]
    np.testing.assert_allclose(cols["mll"], [inv_mass(vl, vp)], rtol=1e-10)
    np.testing.assert_allclose(cols["mllg"], [inv_mass(vl, vp, vg)], rtol=1e-10)
    np.testing.assert_allclose(cols["dr_lm_g"], [np.hypot(0.4 - 1.7, 0.3 + 1.9)], rtol=1e-12)
    dphi = (2.6 + 1.9) - 2 * np.pi
    np.testing.assert_allclose(cols["dr_lp_g"], [np.hypot(-1.1 - 1.7, dphi)], rtol=1e-12)


def _event_with(mll_pt=45.0, g_pt=None, g_phi=np.pi / 2, mllg=125.0, lm_pt=None):
    mll0 = 2.0 * np.hypot(mll_pt, M_MU)
    g = photon_pt_for_mllg(mll0, mllg) if g_pt is None else g_pt
    return z_at_rest(mll_pt, 13) | {"photon": [pho(g, 0.0, g_phi)]}


def test_preselect_events_at_kinematic_thresholds():
    evs = [
        _event_with(mllg=125.0),  # 0 passes
        _event_with(mllg=179.99),  # 1 passes (just inside the window)
        _event_with(mllg=180.01),  # 2 fails mllg_window
        # mll ~ 86 so that mllg + mll > 185 and pT(photon)/mllg > 15/110 near the lower edge
        _event_with(mll_pt=43.0, mllg=100.01),  # 3 passes
        _event_with(mll_pt=43.0, mllg=99.99),  # 4 fails mllg_window only
        # photon 0.41 / 0.39 in phi from the lm muon (at phi 0, eta 0), with pT 40
        _event_with(g_pt=40.0, g_phi=0.41),  # 5 passes
        _event_with(g_pt=40.0, g_phi=0.39),  # 6 fails min_dr_lepton_photon
        _event_with(mll_pt=24.99, g_pt=60.0),  # 7 fails mll (2*24.99 < 50) and lepton_pt
    ]
    events = make_events(*evs)
    cols, flow = preselect(events, Cuts())
    assert cols["entry"].tolist() == [0, 1, 3, 5]
    np.testing.assert_allclose(cols["mllg"][:3], [125.0, 179.99, 100.01], rtol=1e-12)
    # independent check of the close-photon events' masses and Delta R
    all_cols = candidate_kinematics(best_candidates(events))
    np.testing.assert_allclose(all_cols["dr_lm_g"][5:7], [0.41, 0.39], rtol=1e-12)
    for i, phi in ((5, 0.41), (6, 0.39)):
        ref = inv_mass(p4(45.0, 0, 0, M_MU), p4(45.0, 0, np.pi, M_MU), p4(40.0, 0, phi, 0.0))
        np.testing.assert_allclose(all_cols["mllg"][i], ref, rtol=1e-12)
    masks = cut_masks(all_cols, Cuts())
    assert masks["mllg_window"].tolist() == [True, True, False, True, False, True, True, False]
    assert masks["min_dr_lepton_photon"].tolist() == [True] * 6 + [False, True]
    assert masks["mll"].tolist() == [True] * 7 + [False]
    assert masks["photon_pt_over_mllg"].tolist() == [True] * 8
    assert masks["mllg_plus_mll"].tolist() == [True] * 7 + [False]
    assert masks["lepton_pt"].tolist() == [True] * 7 + [False]
    assert [(r["cut"], r["n_raw"]) for r in flow] == [
        ("all", 8),
        ("sfos_lepton_pair", 8),
        ("photon", 8),
        ("lepton_pt", 7),
        ("photon_pt_over_mllg", 7),
        ("min_dr_lepton_photon", 6),
        ("mll", 6),
        ("mllg_plus_mll", 6),
        ("mllg_window", 4),
    ]


def test_preselect_lepton_pt_thresholds_on_built_events():
    # Z not at rest: lm (pt a, phi 0), lp (pt b, phi pi) at eta 0; photon balances nothing in particular.
    def ev(a, b):
        return {"muon": [lep(a, 0.0, 0.0, -1), lep(b, 0.0, np.pi, +1)], "photon": [pho(40.0, 1.0, np.pi / 2)]}

    events = make_events(ev(25.01, 20.0), ev(60.0, 24.99), ev(80.0, 15.01), ev(14.99, 80.0), ev(24.99, 24.0))
    masks = cut_masks(candidate_kinematics(best_candidates(events)), Cuts())
    # lead 25.01 / sublead 15.01 pass; lead 24.99 / sublead 14.99 fail
    assert masks["lepton_pt"].tolist() == [True, True, True, False, False]


# ---------------------------------------------------------------- candidate choice
def test_best_z_among_three_muons_is_closest_to_mz():
    # mu- (45, phi 0) with mu+a (45, phi pi): m ~ 90; with mu+b (40, phi pi): m ~ 84.85
    mum, mupa, mupb = lep(45.0, 0.0, 0.0, -1), lep(45.0, 0.0, np.pi, +1), lep(40.0, 0.0, np.pi, +1)
    events = make_events(
        {"muon": [mupb, mum, mupa], "photon": [pho(30.0, 1.0, 1.0)]},
        {"muon": [mupa, mupb, mum], "photon": [pho(30.0, 1.0, 1.0)]},
    )
    cand = best_candidates(events)
    assert cand.z.lm.pt.tolist() == [45.0, 45.0]
    assert cand.z.lp.pt.tolist() == [45.0, 45.0]
    assert cand.z.lm.charge.tolist() == [-1, -1] and cand.z.lp.charge.tolist() == [1, 1]
    # now make the other pair the nearer one: mu+b at 46 gives m ~ 90.99 vs 90.00
    mupb2 = lep(46.0, 0.0, np.pi, +1)
    cand = best_candidates(make_events({"muon": [mupa, mum, mupb2]}))
    assert cand.z.lp.pt.tolist() == [46.0]


def test_same_sign_pair_is_never_chosen():
    # mu+a (30, phi pi) + mu+b (x, phi 0): m = 2 sqrt(30 x) = m_Z exactly (same sign)
    x = Z_MASS**2 / 120.0
    mum, mupa, mupb = lep(30.0, 0.0, 0.0, -1), lep(30.0, 0.0, np.pi, +1), lep(x, 0.0, 0.0, +1)
    events = make_events(
        {"muon": [mupa, mupb, mum], "photon": [pho(30.0, 2.0, 1.5)]},
        {"muon": [lep(45.0, 0, 0, +1), lep(45.0, 0, np.pi, +1)], "photon": [pho(30.0, 2.0, 1.5)]},
        {"electron": [lep(45.0, 0, 0, -1), lep(45.0, 0, np.pi, -1)], "muon": [lep(45.0, 0, 1, +1)]},
    )
    cand = best_candidates(events)
    # the only OS pair with m near m_Z... is (mu-, mu+a) at m = 60 (mu- with mu+b is collinear, m ~ 0)
    assert cand.z.lm.pt.tolist()[0] == 30.0 and cand.z.lp.pt.tolist()[0] == 30.0
    assert cand.z.lp.phi.tolist()[0] == np.pi
    # only same-sign pairs (and an e mu pair): no Z candidate
    assert cand.z[1] is None and cand.z[2] is None
    cols = candidate_kinematics(cand)
    assert cols["flavour"].tolist() == [13, 0, 0]
    np.testing.assert_allclose(cols["mll"][0], 2.0 * np.hypot(30.0, M_MU), rtol=1e-12)
    assert np.isnan(cols["mll"][1:]).all() and np.isnan(cols["lm_pt"][1:]).all()


def test_electron_pair_vs_muon_pair_picks_the_one_nearer_mz():
    def pair(pt, flav_key):
        return {flav_key: [lep(pt, 0.0, 0.3, +1), lep(pt, 0.0, 0.3 - np.pi, -1)]}

    # back to back at eta 0: m = 2 pt (massless choice); ee 88 (3.19 off) vs mumu 95 (3.81 off)
    ev1 = pair(44.0, "electron") | pair(47.5, "muon")
    # ee 85 (6.19 off) vs mumu 93 (1.81 off)
    ev2 = pair(42.5, "electron") | pair(46.5, "muon")
    # equal distance is not tested; muons only
    ev3 = pair(46.5, "muon")
    cand = best_candidates(make_events(ev1, ev2, ev3))
    assert cand.z.flavour.tolist() == [11, 13, 13]
    assert cand.z.lm.pt.tolist() == [44.0, 46.5, 46.5]
    cols = candidate_kinematics(cand)
    np.testing.assert_allclose(
        cols["mll"], [2 * np.hypot(44.0, M_E), 2 * np.hypot(46.5, M_MU), 2 * np.hypot(46.5, M_MU)], rtol=1e-12
    )


def test_leading_photon_is_highest_pt_regardless_of_order():
    base = z_at_rest(45.0, 13)
    photons = [pho(20.0, 0.1, 0.2), pho(50.0, -0.5, 2.0, gen_pt=49.0), pho(30.0, 1.2, -1.0)]
    events = make_events(
        base | {"photon": photons},
        base | {"photon": photons[::-1]},
        base | {"photon": [photons[1], photons[0], photons[2]]},
        base,
    )
    cand = best_candidates(events)
    assert cand.photon.pt.tolist() == [50.0, 50.0, 50.0, None]
    cols = candidate_kinematics(cand)
    assert cols["g_eta"][:3].tolist() == [-0.5] * 3 and cols["g_phi"][:3].tolist() == [2.0] * 3
    assert cols["g_gen_pt"][:3].tolist() == [49.0] * 3
    assert np.isnan(cols["g_pt"][3]) and np.isnan(cols["mllg"][3])


def test_lm_is_the_negative_lepton_in_either_order():
    a, b = (38.0, 0.5, 1.0), (27.0, -0.2, -2.0)
    events = make_events(
        {"electron": [lep(*a, -1), lep(*b, +1)]},
        {"electron": [lep(*a, +1), lep(*b, -1)]},
        {"muon": [lep(*b, +1), lep(*a, -1)]},
    )
    cols = candidate_kinematics(best_candidates(events))
    assert cols["lm_pt"].tolist() == [38.0, 27.0, 38.0]
    assert cols["lm_eta"].tolist() == [0.5, -0.2, 0.5]
    assert cols["lp_pt"].tolist() == [27.0, 38.0, 27.0]
    assert cols["lp_phi"].tolist() == [-2.0, 1.0, -2.0]
    assert cols["flavour"].tolist() == [11, 11, 13]


def test_gen_pt_columns_are_nan_without_truth():
    ev = {
        "muon": [lep(45.0, 0, 0, -1), lep(45.0, 0, np.pi, +1)],
        "photon": [pho(40.0, 0, 1.0)],
        "weight": 1.0,
        "entry": 0,
    }
    events = ak.without_field(ak.without_field(make_events(ev), ["muon", "gen_pt"]), ["photon", "gen_pt"])
    events = ak.without_field(events, ["electron", "gen_pt"])
    cols = candidate_kinematics(best_candidates(events))
    assert np.isnan(cols["lm_gen_pt"]).all() and np.isnan(cols["g_gen_pt"]).all()
    assert cols["lm_pt"].tolist() == [45.0]


# ---------------------------------------------------------------- cutflow
def test_cutflow_is_cumulative_and_weighted():
    w = np.array([1.5, 2.0, -0.5, 3.0, 0.25])
    t, f = True, False
    masks = {name: np.ones(5, dtype=bool) for name in CUT_ORDER}
    masks["sfos_lepton_pair"] = np.array([t, t, t, t, f])
    masks["photon"] = np.array([t, f, t, t, t])
    masks["lepton_pt"] = np.array([t, t, t, f, t])
    masks["mll"] = np.array([t, t, f, t, t])  # event 1 fails earlier already
    masks["mllg_window"] = np.array([f, t, t, t, t])
    flow = cutflow(masks, w)
    assert [r["cut"] for r in flow] == list(CUT_ORDER)
    assert [r["n_raw"] for r in flow] == [5, 4, 3, 2, 2, 2, 1, 1, 0]
    np.testing.assert_allclose(
        [r["sum_weights"] for r in flow], [6.25, 6.0, 4.0, 1.0, 1.0, 1.0, 1.5, 1.5, 0.0]
    )
    # not cumulative would give n_raw 4 after mll; weights must not be counts
    assert flow[6]["sum_weights"] == 1.5 and flow[2]["sum_weights"] == 4.0
    # the masks were not modified
    assert masks["all"].all()


def test_preselect_cutflow_weights_from_events():
    good = _event_with(mllg=125.0)
    events = make_events(
        good | {"weight": 2.5, "entry": 40},
        good | {"weight": -1.0, "entry": 41},
        {"muon": good["muon"], "weight": 4.0, "entry": 42},
        _event_with(mllg=190.0) | {"weight": 0.5, "entry": 43},
    )
    cols, flow = preselect(events, Cuts())
    rows = {r["cut"]: (r["n_raw"], r["sum_weights"]) for r in flow}
    assert rows["all"] == (4, 6.0)
    assert rows["photon"] == (3, 2.0)
    assert rows["mllg_plus_mll"] == (3, 2.0)
    assert rows["mllg_window"] == (2, 1.5)
    assert cols["weight"].tolist() == [2.5, -1.0] and cols["entry"].tolist() == [40, 41]
    assert set(cols) == {"flavour", "entry", "weight", "mll", "mllg", "dr_lm_g", "dr_lp_g"} | {
        f"{o}_{f}" for o in ("lm", "lp", "g") for f in ("pt", "eta", "phi", "gen_pt")
    }


# ---------------------------------------------------------------- empty selections
def test_preselect_raises_naming_source_and_first_emptying_cut():
    # both events: leptons too soft (lepton_pt) and mll < 50 as well; lepton_pt comes first
    soft = {"muon": [lep(20.0, 0, 0, -1), lep(20.0, 0, np.pi, +1)], "photon": [pho(60.0, 0, 1.5)]}
    with pytest.raises(EmptySelectionError) as err:
        preselect(make_events(soft, soft), Cuts(), source="data/soft_sample.root")
    msg = str(err.value)
    assert msg == (
        "data/soft_sample.root: no event passes the cut 'lepton_pt' (cutflow: all=2, "
        "sfos_lepton_pair=2, photon=2, lepton_pt=0, photon_pt_over_mllg=0, "
        "min_dr_lepton_photon=0, mll=0, mllg_plus_mll=0, mllg_window=0)"
    )


@pytest.mark.parametrize(
    "events, cut",
    [
        (
            [{"muon": [lep(45.0, 0, 0, -1), lep(45.0, 0, np.pi, -1)], "photon": [pho(40.0, 0, 1.5)]}],
            "sfos_lepton_pair",
        ),
        ([{"muon": [lep(45.0, 0, 0, -1), lep(45.0, 0, np.pi, +1)]}], "photon"),
        ([_event_with(mllg=181.0), _event_with(mllg=99.0)], "mllg_window"),
        ([_event_with(g_pt=40.0, g_phi=0.2)], "min_dr_lepton_photon"),
    ],
)
def test_preselect_empty_names_the_cut(events, cut):
    with pytest.raises(EmptySelectionError, match=rf"^sample\.root: no event passes the cut '{cut}' "):
        preselect(make_events(*events), Cuts(), source="sample.root")


def test_preselect_default_source_name():
    with pytest.raises(EmptySelectionError, match=r"^<events>: no event passes the cut 'photon'"):
        preselect(make_events({"muon": [lep(45.0, 0, 0, -1), lep(45.0, 0, np.pi, +1)]}), Cuts())


# ---------------------------------------------------------------- configuration
def test_cuts_from_config_reads_selection_section():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    section = cfg["selection"]
    assert set(section) == {f.name for f in fields(Cuts)}
    cuts = Cuts.from_config(section)
    assert cuts == Cuts()  # the config holds exactly the paper's thresholds, 15/110 to the last digit
    assert cuts.photon_pt_over_mass == 15.0 / 110.0


def test_cuts_from_config_converts_and_overrides():
    cuts = Cuts.from_config({"lead_lepton_pt": 30, "mllg_max": "170"})
    assert cuts.lead_lepton_pt == 30.0 and isinstance(cuts.lead_lepton_pt, float)
    assert cuts.mllg_max == 170.0 and cuts.mllg_min == 100.0
    with pytest.raises(TypeError):
        Cuts.from_config({"lead_pt": 30.0})


def test_module_constants():
    assert selection.Z_MASS == 91.1876
    assert CUT_ORDER[0] == "all" and CUT_ORDER[-1] == "mllg_window" and len(CUT_ORDER) == 9


def test_columnar_candidates_equal_the_awkward_ones_bit_for_bit():
    """selection.candidate_columns (the skim's numpy path, issue 15) =
    candidate_kinematics(best_candidates(...))."""
    from hzg.data.selection import candidate_columns

    rng = np.random.default_rng(15)
    evs = []
    for i in range(400):
        ev = {}
        for coll in ("electron", "muon"):
            ev[coll] = [
                lep(
                    float(rng.uniform(5, 80)),
                    float(rng.uniform(-2.5, 2.5)),
                    float(rng.uniform(-np.pi, np.pi)),
                    int(rng.choice([-1, 1])),
                    gen_pt=float(rng.uniform(5, 80)),
                )
                for _ in range(int(rng.integers(0, 5)))
            ]
        ev["photon"] = [
            pho(float(rng.uniform(10, 90)), float(rng.uniform(-2.5, 2.5)), float(rng.uniform(-np.pi, np.pi)))
            for _ in range(int(rng.integers(0, 4)))
        ]
        evs.append(ev)
    # ties: two identical muon pairs and an electron pair of the same mass -> the electron pair wins, as
    # ak.argmin
    tie = [lep(45.0, 0.0, 0.0, -1), lep(45.0, 0.0, np.pi, +1)]
    evs.append({"electron": tie, "muon": tie + tie, "photon": [pho(30.0, 1.0, 1.0), pho(30.0, -1.0, -1.0)]})
    evs.append({})
    events = make_events(*evs)
    old = candidate_kinematics(best_candidates(events))
    new = candidate_columns(events)
    assert list(new) == list(old)
    for key in old:
        assert new[key].dtype == old[key].dtype and np.array_equal(new[key], old[key], equal_nan=True), key
    assert (new["flavour"] > 0).sum() > 100 and new["flavour"][-2] == 11
