"""The fiducial region of ATLAS' 13 TeV Z(ll)gamma measurement on generated final states, and the comparison
of a generated spectrum with its unfolded one (hzg.data.fiducial, hzg.results.unfolded)."""

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import vector

from hzg.data import fiducial
from hzg.results import unfolded

REFERENCE = Path(__file__).resolve().parents[1] / "docs/reference/ATLAS_2019_I1764342.yaml"


def _p(pid, pt, eta, phi):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return {"pid": pid, "px": px, "py": py, "pz": pz, "E": float(np.sqrt(px**2 + py**2 + pz**2))}


def _events(*events):
    return ak.Array([{k: [p[k] for p in ev] for k in ("pid", "px", "py", "pz", "E")} for ev in events])


def _sum(*ps):
    return sum(
        (vector.obj(px=p["px"], py=p["py"], pz=p["pz"], E=p["E"]) for p in ps[1:]),
        vector.obj(px=ps[0]["px"], py=ps[0]["py"], pz=ps[0]["pz"], E=ps[0]["E"]),
    )


E_M = _p(11, 60.0, 0.2, 0.0)
E_P = _p(-11, 45.0, -0.4, 2.6)
GAMMA = _p(22, 50.0, 0.8, -2.2)
QUARK = _p(2, 30.0, -2.0, 1.0)


def test_a_clean_event_passes_with_the_hand_computed_kinematics():
    out = fiducial.atlas_2019_zgamma(_events([E_M, E_P, GAMMA, QUARK]))
    ll, llg = _sum(E_M, E_P), _sum(E_M, E_P, GAMMA)
    assert out["passed"].tolist() == [True]
    assert out["m_ll"][0] == pytest.approx(ll.mass)
    assert out["m_llg"][0] == pytest.approx(llg.mass)
    assert out["pt_llg"][0] == pytest.approx(llg.pt)
    assert out["pt_llg_over_m_llg"][0] == pytest.approx(llg.pt / llg.mass)
    assert out["photon_pt"][0] == pytest.approx(50.0)


@pytest.mark.parametrize("dr, dressed", [(0.05, True), (0.15, False)])
def test_a_photon_within_0p1_of_a_lepton_dresses_it(dr, dressed):
    soft = _p(22, 4.0, 0.2, dr)  # E_M's eta, its phi + dr: Delta R = dr
    out = fiducial.atlas_2019_zgamma(_events([E_M, E_P, GAMMA, soft]))
    expected = _sum(E_M, soft, E_P) if dressed else _sum(E_M, E_P)
    assert out["passed"].tolist() == [True]
    assert out["m_ll"][0] == pytest.approx(expected.mass)


def test_electrons_are_taken_before_muons():
    mu_m, mu_p = _p(13, 80.0, 1.0, 0.5), _p(-13, 70.0, -1.0, 3.0)
    out = fiducial.atlas_2019_zgamma(_events([E_M, E_P, mu_m, mu_p, GAMMA]))
    assert out["m_ll"][0] == pytest.approx(_sum(E_M, E_P).mass)
    muons_only = fiducial.atlas_2019_zgamma(_events([mu_m, mu_p, GAMMA]))
    assert muons_only["m_ll"][0] == pytest.approx(_sum(mu_m, mu_p).mass)


@pytest.mark.parametrize("share, dr, isolated", [(0.08, 0.1, False), (0.06, 0.1, True), (0.5, 0.3, True)])
def test_photon_isolation_takes_the_et_within_0p2(share, dr, isolated):
    gluon = _p(21, share * 50.0, 0.8, -2.2 + dr)
    out = fiducial.atlas_2019_zgamma(_events([E_M, E_P, GAMMA, gluon]))
    assert out["passed"].tolist() == [isolated]


def test_a_photon_near_a_lepton_is_skipped_for_the_next_one():
    near = _p(22, 70.0, 0.2, 0.3)  # Delta R 0.3 from E_M: not the Z gamma candidate
    out = fiducial.atlas_2019_zgamma(_events([E_M, E_P, near, GAMMA]))
    assert out["photon_pt"][0] == pytest.approx(50.0)
    alone = fiducial.atlas_2019_zgamma(_events([E_M, E_P, near]))
    assert alone["passed"].tolist() == [False]


@pytest.mark.parametrize(
    "event",
    [
        [_p(11, 28.0, 0.2, 0.0), _p(-11, 27.0, -0.4, 2.6), GAMMA],  # leading lepton below 30 GeV
        [E_M, _p(-11, 45.0, 2.6, 2.6), GAMMA],  # second electron outside |eta| < 2.47
        [E_M, E_P, _p(22, 25.0, 0.8, -2.2)],  # photon below 30 GeV
        [E_M, E_P, _p(22, 50.0, 2.4, -2.2)],  # photon outside |eta| < 2.37
        [_p(11, 40.0, 0.0, 0.0), _p(-11, 30.0, 0.0, 0.9), _p(22, 31.0, 0.0, -2.0)],  # m_ll < 40 GeV
        [E_M, _p(13, 45.0, -0.4, 2.6), GAMMA],  # no same-flavour pair
        [],
    ],
)
def test_events_outside_the_region_fail_with_nan_columns(event):
    out = fiducial.atlas_2019_zgamma(_events(event, [E_M, E_P, GAMMA]))
    assert out["passed"].tolist() == [False, True]
    assert np.isnan(out["pt_llg_over_m_llg"][0]) and np.isfinite(out["pt_llg_over_m_llg"][1])


def test_mll_plus_mllg_must_exceed_182():
    e1, e2 = _p(11, 35.0, 0.0, 0.0), _p(-11, 30.0, 0.0, 1.6)
    ll = _sum(e1, e2)
    g = _p(22, 31.0, 1.5, -1.6)
    total = ll.mass + _sum(e1, e2, g).mass
    out = fiducial.atlas_2019_zgamma(_events([e1, e2, g]))
    assert out["passed"].tolist() == [total > 182.0]
    assert total < 182.0  # this event sits below the cut


def test_the_reference_spectra_integrate_to_the_measured_fiducial_cross_section():
    refs = unfolded.load_references(REFERENCE)
    assert set(refs) == {"pt_llg", "pt_llg_over_m_llg"}
    for ref in refs.values():
        assert ref.integral() == pytest.approx(533.7, rel=0.01)
        frac, cov = unfolded.reference_fractions(ref)
        assert frac.sum() == pytest.approx(1.0)
        assert np.all(np.linalg.eigvalsh(cov) > -1e-12)


def test_a_source_moving_every_bin_alike_cancels_in_the_shape():
    values = np.array([4.0, 2.0, 1.0])
    ref = unfolded.Reference("x", np.array([0.0, 1.0, 2.0, 4.0]), values, {"Lumi": 0.02 * values})
    _, cov = unfolded.reference_fractions(ref)
    assert np.allclose(cov, 0.0, atol=1e-15)
    stat = unfolded.Reference("x", ref.edges, values, {"Stat": 0.1 * values})
    assert np.diag(unfolded.reference_fractions(stat)[1]).min() > 0


def test_unit_weight_fractions_have_the_multinomial_variance():
    x = np.array([0.5] * 6 + [1.5] * 3 + [2.5])
    frac, cov, raw = unfolded.histogram_fractions(x, np.ones_like(x), [0.0, 1.0, 2.0, 3.0])
    assert raw.tolist() == [6, 3, 1]
    assert np.allclose(frac, [0.6, 0.3, 0.1])
    assert np.allclose(np.diag(cov), frac * (1 - frac) / 10)
    assert cov[0, 1] == pytest.approx(-frac[0] * frac[1] / 10)


def test_shape_chi2_does_not_depend_on_the_bin_left_out():
    rng = np.random.default_rng(3)
    gen, ref = rng.dirichlet(np.ones(5) * 20), rng.dirichlet(np.ones(5) * 20)
    a = rng.normal(size=(5, 5)) * 1e-3
    jac = np.eye(5) - np.outer(ref, np.ones(5))  # covariances of normalised spectra: rows sum to 0
    gen_cov, ref_cov = jac @ (a @ a.T + 1e-5 * np.eye(5)) @ jac.T, jac @ (1e-5 * np.eye(5)) @ jac.T
    one = unfolded.compare_shapes(gen, gen_cov, ref, ref_cov)
    order = [4, 0, 1, 2, 3]
    other = unfolded.compare_shapes(
        gen[order], gen_cov[np.ix_(order, order)], ref[order], ref_cov[np.ix_(order, order)]
    )
    assert one.ndf == other.ndf == 4
    assert one.chi2 == pytest.approx(other.chi2, rel=1e-8)


def test_a_two_bin_shape_chi2_is_the_closed_form():
    gen, ref = np.array([0.7, 0.3]), np.array([0.6, 0.4])
    v_gen, v_ref = 0.01, 0.02
    cov = lambda v: np.array([[v, -v], [-v, v]])  # noqa: E731
    out = unfolded.compare_shapes(gen, cov(v_gen), ref, cov(v_ref))
    assert out.chi2 == pytest.approx(0.1**2 / (v_gen + v_ref))
    assert out.ratio.tolist() == pytest.approx([0.7 / 0.6, 0.3 / 0.4])


def test_bad_reference_files_name_the_file_or_spectrum(tmp_path):
    with pytest.raises(ValueError, match="cannot read reference file"):
        unfolded.load_references(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spectrum: {edges: [0, 1], values: [1.0]}\n")
    with pytest.raises(ValueError, match="spectrum 'spectrum' lacks 'uncertainties'"):
        unfolded.load_references(bad)
    with pytest.raises(ValueError, match="need 3 increasing edges"):
        unfolded.Reference("y", np.array([0.0, 1.0]), np.array([1.0, 2.0]), {})


def test_tail_ratio_is_the_generated_fraction_above_a_cut_over_the_measured_one():
    ref = unfolded.Reference("x", np.array([0.0, 1.0, 2.0, 4.0]), np.array([4.0, 2.0, 1.0]), {})
    measured = (2.0 + 2.0) / (4.0 + 2.0 + 2.0)  # the cross-section above 1.0 over the total
    x = np.array([0.5, 0.5, 1.5, 3.0, 9.0])  # the last one outside the edges: left out
    w = np.array([1.0, 1.0, 1.0, 1.0, 5.0])
    ratio, err = unfolded.tail_ratio(ref, x, w, 1.0)
    assert ratio == pytest.approx(0.5 / measured)
    assert err == pytest.approx(np.sqrt(2.0) / 4.0 / measured)
    with pytest.raises(ValueError, match="not one of its bin edges"):
        unfolded.tail_ratio(ref, x, w, 1.5)


def _recoil_script():
    import importlib.util

    path = REFERENCE.parents[1] / "atlas_zgamma_recoil.py"
    spec = importlib.util.spec_from_file_location("atlas_zgamma_recoil", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recoil_study_settings_are_the_showers_they_name():
    """docs/atlas_zgamma_recoil.py: each ISR setting turns into the Pythia lines its label says, on top of the
    default's generation section."""
    import yaml

    from hzg.data import generate

    script = _recoil_script()
    cfg = yaml.safe_load((REFERENCE.parents[2] / "config/config.yaml").read_text())
    lines = {}
    for label, overrides in script.SETTINGS.items():
        spec = generate.chunk_spec("qqbar_Zgamma", 10, 1, script.generation_config(cfg, overrides), 13.0)
        lines[label] = (set(generate.pythia_settings(spec)), spec.isr_veto_ht)
    default, _ = lines["default: power, damped k = 3, veto 2 HT/2"]
    assert {"SpaceShower:pTdampMatch = 1", "SpaceShower:pTdampFudge = 3.0"} <= default
    power, power_veto = lines["power shower, no damping, no veto"]
    assert {"SpaceShower:pTmaxMatch = 2", "SpaceShower:pTdampMatch = 0"} <= power and power_veto is None
    first, _ = lines["Pythia's default ISR (the first default)"]
    assert {"SpaceShower:pTmaxMatch = 0", "SigmaProcess:factorScale2 = 1"} <= first
    assert all("PhaseSpace:mHatMax = -1.0" in s for s, _ in lines.values())


def test_the_recoil_study_runs_the_fiducial_region_on_generated_events():
    pytest.importorskip("pythia8mc")
    import yaml

    script = _recoil_script()
    cfg = yaml.safe_load((REFERENCE.parents[2] / "config/config.yaml").read_text())
    cols, w, sigma_fid = script.generated(cfg, {}, 400, 3)
    assert len(w) == len(cols["pt_llg"]) > 20  # about a fifth of the events are in the fiducial region
    assert np.all(cols["photon_pt"] > 30.0) and np.all(cols["m_ll"] + cols["m_llg"] > 182.0)
    assert 0.1 < sigma_fid < 0.4  # pb per flavour at LO (216 fb with 120 000 events)
