"""Property-based tests (hypothesis) of the kinematics, features and selection: symmetries where physics says
so,
finite outputs for finite inputs, any number of leptons and photons, and conservation in the cutflow."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hzg.data import features, kinematics, selection
from hzg.data.selection import Cuts

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pts = st.floats(5.0, 500.0)
etas = st.floats(-2.5, 2.5)
phis = st.floats(-math.pi, math.pi)
obj = st.tuples(pts, etas, phis)


def _separated(*objects, min_dr=0.1):
    """Objects apart in (eta, phi): collinear massless objects make the angles ill-defined (NaN by
    construction)."""
    return all(
        kinematics.delta_r(a[1], a[2], b[1], b[2]) > min_dr for a, b in itertools.combinations(objects, 2)
    )


def _angles(lm, lp, g):
    return [np.asarray(a, float) for a in kinematics.production_decay_angles(*lm, *lp, *g)]


def _pt_balanced_photon(lm, lp, eta):
    """The photon that makes pT(llg) = 0."""
    px = lm[0] * math.cos(lm[2]) + lp[0] * math.cos(lp[2])
    py = lm[0] * math.sin(lm[2]) + lp[0] * math.sin(lp[2])
    return (math.hypot(px, py), eta, math.atan2(-py, -px))


# ---------------------------------------------------------------- kinematics
@SETTINGS
@given(obj, obj, obj, st.floats(-math.pi, math.pi))
def test_angles_are_invariant_under_rotations_about_the_beam(lm, lp, g, alpha):
    assume(_separated(lm, lp, g))
    base = _angles(lm, lp, g)
    rot = _angles(*[(o[0], o[1], o[2] + alpha) for o in (lm, lp, g)])
    assume(np.isfinite(base).all())
    np.testing.assert_allclose(rot[:2], base[:2], atol=1e-7)
    dphi = np.abs(rot[2] - base[2])
    assert min(dphi, 2 * math.pi - dphi) < 1e-6  # phi on a circle: 0 and 2 pi are the same angle


@SETTINGS
@given(obj, obj, obj, st.floats(-2.0, 2.0), st.floats(0.2, 5.0))
def test_cos_theta_is_lorentz_invariant_and_every_angle_scale_invariant(lm, lp, g, rapidity, scale):
    """cos theta is built from invariants only: unchanged by a boost along the beam (eta + y for massless
    objects); all three angles are unchanged when every momentum is scaled."""
    assume(_separated(lm, lp, g))
    base = _angles(lm, lp, g)
    assume(np.isfinite(base).all() and abs(base[1]) < 0.999)  # away from the code's clamp
    boosted = _angles(*[(o[0], o[1] + rapidity, o[2]) for o in (lm, lp, g)])
    np.testing.assert_allclose(boosted[1], base[1], atol=1e-6)
    scaled = _angles(*[(o[0] * scale, o[1], o[2]) for o in (lm, lp, g)])
    np.testing.assert_allclose(scaled[:2], base[:2], atol=1e-7)
    dphi = np.abs(scaled[2] - base[2])
    assert min(dphi, 2 * math.pi - dphi) < 1e-6


@SETTINGS
@given(obj, obj, etas, st.floats(-2.0, 2.0))
def test_production_angles_are_boost_invariant_when_the_system_has_no_transverse_momentum(
    lm, lp, g_eta, rapidity
):
    """With pT(llg) = 0 the authors' q1 lies along the beam in every longitudinally boosted frame, so cos
    Theta
    and phi do not depend on the boost (with recoil they do, by the authors' definition: not asserted)."""
    g = _pt_balanced_photon(lm, lp, g_eta)
    assume(g[0] > 1.0 and _separated(lm, lp, g))
    base = _angles(lm, lp, g)
    assume(np.isfinite(base).all() and abs(base[0]) < 0.999)
    boosted = _angles(*[(o[0], o[1] + rapidity, o[2]) for o in (lm, lp, g)])
    np.testing.assert_allclose(boosted[0], base[0], atol=1e-6)
    dphi = np.abs(boosted[2] - base[2])
    assert min(dphi, 2 * math.pi - dphi) < 1e-5


@SETTINGS
@given(obj, obj, obj)
def test_angles_are_finite_and_in_range_for_separated_objects(lm, lp, g):
    assume(_separated(lm, lp, g, min_dr=0.4))
    cos_big, cos_small, phi = _angles(lm, lp, g)
    assert np.isfinite(cos_small) and -1.0 <= cos_small <= 1.0
    assert np.isfinite(cos_big) and -1.0 - 1e-9 <= cos_big <= 1.0 + 1e-9
    assert np.isfinite(phi) and 0.0 <= phi < 2 * math.pi
    assert kinematics.delta_r(lm[1], lm[2], g[1], g[2]) >= 0


@SETTINGS
@given(phis, phis)
def test_delta_phi_is_wrapped_and_antisymmetric(a, b):
    d = float(kinematics.delta_phi(a, b))
    assert -math.pi <= d < math.pi
    assert math.isclose(math.cos(d), math.cos(a - b), abs_tol=1e-12)
    assert abs(abs(d) - abs(float(kinematics.delta_phi(b, a)))) < 1e-12 or abs(abs(d) - math.pi) < 1e-12


# ---------------------------------------------------------------- features
def _res_map():
    """A resolution map (as hzg.data.resolution.build_map writes it): relative widths per (|eta|, pT) bin."""
    return {
        "eta_edges": [0.0, 1.5, 2.5],
        "pt_edges": [5.0, 50.0, 13000.0],
        **{k: {"width": [[0.02, 0.015], [0.03, 0.02]]} for k in ("electron", "muon", "photon")},
    }


@SETTINGS
@given(st.lists(st.tuples(obj, obj, obj, st.sampled_from([11, 13])), min_size=1, max_size=6))
def test_features_are_finite_for_every_selected_like_event(events):
    events = [e for e in events if _separated(e[0], e[1], e[2], min_dr=0.4)]
    assume(events)
    cols = {}
    for name, i in (("lm", 0), ("lp", 1), ("g", 2)):
        for j, field in enumerate(("pt", "eta", "phi")):
            cols[f"{name}_{field}"] = np.array([e[i][j] for e in events])
    cols["flavour"] = np.array([e[3] for e in events])
    p = [kinematics._p4(cols[f"{n}_pt"], cols[f"{n}_eta"], cols[f"{n}_phi"]) for n in ("lm", "lp", "g")]
    cols["mllg"] = kinematics.invariant_mass(p[0] + p[1] + p[2])
    frame = features.compute_features(cols, _res_map())
    features.check_finite(frame, list(features.FEATURES) + list(features.DISCO_FEATURES), source="hypothesis")
    assert len(frame) == len(events)
    assert frame["min_dr_lg"].le(frame["max_dr_lg"]).all() and frame["lep1_pt"].ge(frame["lep2_pt"]).all()
    assert frame["lep_flavour"].isin([0.0, 1.0]).all() and frame["phi"].between(0, 2 * math.pi).all()
    assert (frame["sigma_m"] > 0).all()


# ---------------------------------------------------------------- selection
lepton = st.tuples(pts, etas, phis, st.sampled_from([-1, 1]))
photon = st.tuples(pts, etas, phis)
event = st.fixed_dictionaries(
    {
        "electron": st.lists(lepton, max_size=4),
        "muon": st.lists(lepton, max_size=4),
        "photon": st.lists(photon, max_size=4),
        "weight": st.floats(-2.0, 5.0),
    }
)


def _events(evts):
    def coll(key, charged):
        per = [e[key] for e in evts]
        flat = [o for objs in per for o in objs]
        fields = {
            "pt": np.array([o[0] for o in flat], float),
            "eta": np.array([o[1] for o in flat], float),
            "phi": np.array([o[2] for o in flat], float),
        }
        if charged:
            fields["charge"] = np.array([o[3] for o in flat], np.int32)
        fields["gen_pt"] = fields["pt"].copy()
        return ak.unflatten(ak.zip(fields), np.array([len(o) for o in per], np.int64))

    return ak.zip(
        {
            "electron": coll("electron", True),
            "muon": coll("muon", True),
            "photon": coll("photon", False),
            "weight": ak.Array(np.array([e["weight"] for e in evts], float)),
            "entry": ak.Array(np.arange(len(evts), dtype=np.int64)),
        },
        depth_limit=1,
    )


def _mass(*objs, masses):
    tot = np.zeros(4)
    for (pt, eta, phi, *_), m in zip(objs, masses):
        p = np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)])
        tot += np.r_[math.sqrt(p @ p + m * m), p]
    return math.sqrt(max(tot[0] ** 2 - tot[1:] @ tot[1:], 0.0))


@SETTINGS
@given(st.lists(event, min_size=1, max_size=8))
def test_selection_handles_any_number_of_objects_and_conserves_events_and_weights(evts):
    events = _events(evts)
    cols = selection.candidate_kinematics(selection.best_candidates(events))
    cols["weight"] = np.array([e["weight"] for e in evts])
    masks = selection.cut_masks(cols, Cuts())
    flow = selection.cutflow(masks, cols["weight"])
    assert [r["cut"] for r in flow] == list(selection.CUT_ORDER)
    passed = np.ones(len(evts), bool)
    for row, cut in zip(flow, selection.CUT_ORDER):
        before = passed.copy()
        passed &= masks[cut]
        # conservation: the events (and weights) of a cut are those before it minus those it removes
        assert row["n_raw"] == passed.sum() == before.sum() - (before & ~masks[cut]).sum()
        assert math.isclose(row["sum_weights"], cols["weight"][passed].sum(), abs_tol=1e-9)
    assert flow[0]["n_raw"] == len(evts) and math.isclose(
        flow[0]["sum_weights"], sum(e["weight"] for e in evts), abs_tol=1e-9
    )
    assert all(a["n_raw"] >= b["n_raw"] for a, b in zip(flow, flow[1:]))
    for i, e in enumerate(evts):
        pairs = [
            (a, b, fl, m)
            for fl, key, m in ((11, "electron", 0.000511), (13, "muon", 0.10566))
            for a, b in itertools.combinations(e[key], 2)
            if a[3] * b[3] < 0
        ]
        assert masks["sfos_lepton_pair"][i] == bool(pairs)  # 0, 1 or same-sign leptons: no candidate
        assert masks["photon"][i] == bool(e["photon"])
        if pairs:  # the pair nearest the Z mass (massless leptons: the mass ranking the code uses)
            best = min(pairs, key=lambda p: abs(_mass(p[0], p[1], masses=(0, 0)) - selection.Z_MASS))
            assert cols["flavour"][i] == best[2]
            assert {cols["lm_pt"][i], cols["lp_pt"][i]} == {best[0][0], best[1][0]}
        if e["photon"]:
            assert cols["g_pt"][i] == max(p[0] for p in e["photon"])
        if passed[i]:
            assert all(np.isfinite(cols[k][i]) for k in ("mll", "mllg", "dr_lm_g", "dr_lp_g"))
            assert cols["mll"][i] > 50 and 100 < cols["mllg"][i] < 180


@SETTINGS
@given(st.lists(st.integers(0, 2**20), min_size=1, max_size=200, unique=True), st.integers(0, 2**31))
def test_trial_splits_partition_the_events(entries, seed):
    """Every event is in exactly one of train, validation, test; a function of (key, seed) only."""
    entries = np.array(entries)
    split = features.split_index(np.full(len(entries), 7), np.zeros(len(entries)), entries, seed, [1, 1, 1])
    assert set(np.unique(split)) <= {0, 1, 2}
    assert sum((split == k).sum() for k in range(3)) == len(entries)
    order = np.random.default_rng(seed % 1000).permutation(len(entries))
    again = features.split_index(
        np.full(len(entries), 7), np.zeros(len(entries)), entries[order], seed, [1, 1, 1]
    )
    np.testing.assert_array_equal(again, split[order])
