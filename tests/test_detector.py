"""Detector response: resolutions, acceptance, efficiencies, isolation, determinism."""

from pathlib import Path
import awkward as ak
import numpy as np
import pytest
import yaml

from hzg.data import detector

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())["detector"]


def test_ecal_resolution_formula_barrel_and_endcap():
    # barrel photon, E = 100 GeV: sqrt((0.08/10)^2 + (0.2/100)^2 + 0.01^2)
    expected = np.sqrt(0.008**2 + 0.002**2 + 0.01**2)
    assert detector.ecal_resolution(np.array([100.0]), np.array([0.5]), detector.PHOTON_RESOLUTION)[
        0
    ] == pytest.approx(expected)
    endcap = detector.ecal_resolution(np.array([100.0]), np.array([2.0]), detector.PHOTON_RESOLUTION)[0]
    assert endcap == pytest.approx(np.sqrt(0.015**2 + 0.003**2 + 0.025**2))
    # resolution improves with energy
    assert (
        detector.relative_resolution("Electron", np.array([20.0]), np.array([0.0]))[0]
        > detector.relative_resolution("Electron", np.array([80.0]), np.array([0.0]))[0]
    )


def test_muon_resolution_regions():
    r = detector.muon_resolution(np.array([1.0, 1.0, 1.0]), np.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(r, np.hypot([0.013, 0.020, 0.030], 1e-4), rtol=1e-12)


def test_acceptance_gap_only_for_ecal_objects():
    eta = np.array([0.0, 1.5, -1.5, 2.45, 2.55])
    np.testing.assert_array_equal(
        detector.in_acceptance("Photon", eta, 2.5, (1.4442, 1.566)), [1, 0, 0, 1, 0]
    )
    np.testing.assert_array_equal(detector.in_acceptance("Muon", eta, 2.4, (1.4442, 1.566)), [1, 1, 1, 0, 0])


def test_efficiencies_are_probabilities_with_turn_on():
    pt = np.array([7.0, 10.0, 40.0])
    eff = detector.identification_efficiency("Electron", pt, np.zeros(3))
    assert eff[1] == pytest.approx(0.46)
    assert eff[2] == pytest.approx(0.92, abs=1e-5)
    assert np.all(np.diff(eff) > 0)


def _event(pid, pt, eta, phi):
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    return {"pid": pid, "px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2)}


def _particles(events):
    return ak.Array([{k: list(map(type(v[0].item()), v)) for k, v in ev.items()} for ev in events])


def test_isolation_sums_other_particles_inside_the_cone():
    # photon at (0, 0); gluon at dR = 0.2 with 10 GeV, quark at dR = 0.5 with 50 GeV
    ev = _event(np.array([22, 21, 1]), np.array([40.0, 10.0, 50.0]), np.array([0.0, 0.2, 0.5]), np.zeros(3))
    parts = detector.with_kinematics(_particles([ev]))
    iso = detector.relative_isolation(parts[parts.pid == 22], parts, 0.3)
    assert ak.to_list(iso) == [[pytest.approx(10.0 / 40.0)]]


def test_reconstruct_is_seeded_and_applies_isolation():
    isolated = _event(
        np.array([13, -13, 22]),
        np.array([45.0, 40.0, 30.0]),
        np.array([0.1, -0.5, 1.0]),
        np.array([0.0, 3.0, 1.5]),
    )
    busy = _event(np.array([22, 21]), np.array([30.0, 20.0]), np.array([0.0, 0.1]), np.array([0.0, 0.0]))
    parts = _particles([isolated, busy])
    a = detector.reconstruct(parts, CONFIG, np.random.default_rng(5))
    b = detector.reconstruct(parts, CONFIG, np.random.default_rng(5))
    assert ak.to_list(a["Muon"]) == ak.to_list(b["Muon"])
    assert ak.num(a["Photon"]).tolist()[1] == 0  # 20 GeV gluon inside the cone: not isolated
    muons = a["Muon"][0]
    assert ak.to_list(muons.charge) == [-1, 1] or ak.to_list(muons.charge) == [1, -1]
    assert np.all(np.asarray(muons.pt)[:-1] >= np.asarray(muons.pt)[1:])  # pT-ordered
    np.testing.assert_allclose(sorted(ak.to_list(muons.genPt)), [40.0, 45.0])


def test_anti_kt_merges_two_close_particles_and_separates_far_ones():
    # two quarks Delta R = 0.2 apart: one jet, their summed four-momentum; 1.0 apart: two jets
    close = _event(np.array([1, 2]), np.array([50.0, 30.0]), np.array([0.0, 0.2]), np.zeros(2))
    far = _event(np.array([1, 2]), np.array([50.0, 30.0]), np.array([0.0, 1.0]), np.zeros(2))
    jets = detector.cluster_jets(_particles([close, far]), radius=0.4)
    assert ak.num(jets).tolist() == [1, 2]
    for k in ("px", "py", "pz", "E"):
        assert ak.to_list(jets[0][k])[0] == pytest.approx(close[k].sum())
    lead = jets[1][0]
    assert np.hypot(lead.px, lead.py) == pytest.approx(50.0)  # pT-ordered, each jet one quark
    assert ak.num(detector.cluster_jets(_particles([close]), radius=0.1)).tolist() == [2]


def test_reconstruct_jets_smears_with_its_resolution_and_applies_threshold_and_acceptance():
    cfg = CONFIG["jet"]
    hard = _event(np.array([1]), np.array([100.0]), np.array([0.5]), np.array([1.0]))
    soft = _event(np.array([21]), np.array([12.0]), np.array([0.0]), np.array([0.0]))
    forward = _event(np.array([21]), np.array([100.0]), np.array([4.9]), np.array([0.0]))
    parts = _particles([hard, soft, forward] * 200)
    jets = detector.reconstruct_jets(parts, cfg, np.random.default_rng(3))
    again = detector.reconstruct_jets(parts, cfg, np.random.default_rng(3))
    assert ak.to_list(jets) == ak.to_list(again)
    assert ak.num(jets).tolist()[:3] == [1, 0, 0]  # 12 GeV below 30 GeV; |eta| = 4.9 outside 4.7
    pt = ak.to_numpy(ak.flatten(jets.pt))
    assert np.all(pt > cfg["pt_min"])
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(jets.genPt)), 100.0)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(jets.eta)), 0.5)
    expected = np.hypot(1.0 / np.sqrt(100.0), 0.05)
    assert detector.jet_resolution(np.array([100.0]))[0] == pytest.approx(expected)
    assert np.std(pt / 100.0 - 1.0) == pytest.approx(expected, rel=0.15)


def test_default_isolation_is_the_paper_detectors():
    """The paper's detector is Delphes' CMS card: Delta R < 0.5; pT sum / pT < 0.12 (e, gamma), 0.25 (mu)."""
    assert CONFIG["isolation_cone"] == 0.5
    assert (
        CONFIG["electron"]["rel_iso_max"],
        CONFIG["muon"]["rel_iso_max"],
        CONFIG["photon"]["rel_iso_max"],
    ) == (
        0.12,
        0.25,
        0.12,
    )


@pytest.mark.parametrize("dr, kept", [(0.45, False), (0.55, True)])
def test_a_lepton_near_the_photon_makes_both_non_isolated(dr, kept):
    # e+ e- and a photon; the photon at dR from the e-: inside 0.5 each is in the other's cone
    ev = _event(
        np.array([11, -11, 22]),
        np.array([40.0, 35.0, 30.0]),
        np.array([0.0, -1.0, dr]),
        np.array([0.0, 2.5, 0.0]),
    )
    out = detector.reconstruct(_particles([ev]), CONFIG, np.random.default_rng(1))
    assert (ak.num(out["Photon"])[0] == 1) == kept
    if kept:  # nothing else within 0.5 of the photon
        assert float(out["Photon"][0].pfRelIso03_all[0]) == 0.0
    # the e- at dR < 0.5 from the photon: 30 / 40 > 0.12, never kept; at 0.55 its cone is empty
    electrons = out["Electron"][0]
    if kept:
        assert ak.to_list(electrons.pfRelIso03_all) == [0.0] * len(electrons)
    else:
        assert 40.0 not in ak.to_list(electrons.genPt)


@pytest.mark.parametrize("pid, kept", [(11, False), (13, True)])
def test_final_state_radiation_near_a_lepton_costs_electrons_more_than_muons(pid, kept):
    # a 35 GeV lepton, a 5 GeV photon at dR = 0.2: ratio 0.143, above the electrons' 0.12, below 0.25 (muons)
    ev = _event(np.array([pid, 22]), np.array([35.0, 5.0]), np.array([0.0, 0.2]), np.array([0.0, 0.0]))
    name = "Electron" if pid == 11 else "Muon"
    rng = np.random.default_rng(3)
    n = [int(ak.num(detector.reconstruct(_particles([ev]), CONFIG, rng)[name])[0]) for _ in range(20)]
    # identification may lose the lepton now and then; isolation loses the electron always
    assert (max(n) == 1) == kept
