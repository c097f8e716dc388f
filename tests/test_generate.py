"""Generation: seeds, settings, bit-for-bit reproducibility of a chunk."""

from pathlib import Path
import awkward as ak
import numpy as np
import pytest
import yaml

from hzg.data import generate

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())


def test_chunk_seed_is_deterministic_distinct_and_in_pythia_range():
    seeds = [generate.chunk_seed(1001, c) for c in range(50)]
    assert seeds == [generate.chunk_seed(1001, c) for c in range(50)]
    assert len(set(seeds)) == 50
    assert generate.chunk_seed(1001, 0) != generate.chunk_seed(1002, 0)
    assert all(1 <= s <= 900_000_000 for s in seeds)


def test_settings_carry_seed_level_and_cuts():
    spec = generate.ChunkSpec("qqbar_Zgamma", 10, seed=1234, level="parton", z_mass_min=50.0)
    lines = generate.pythia_settings(spec)
    assert "Random:seed = 1234" in lines
    assert "PartonLevel:MPI = off" in lines and "HadronLevel:all = off" in lines
    assert "23:mMin = 50.0" in lines
    hadron = generate.pythia_settings(generate.ChunkSpec("ggH_Zgamma", 10, seed=1, level="hadron"))
    assert "HadronLevel:all = on" in hadron and not any("mMin" in line for line in hadron)


@pytest.mark.parametrize("bad", [{"process": "ttH"}, {"level": "detector"}])
def test_unknown_process_or_level_is_refused(bad):
    spec = generate.ChunkSpec(**{"process": "ggH_Zgamma", "n_events": 1, "seed": 1, **bad})
    with pytest.raises(ValueError, match=list(bad.values())[0]):
        generate.pythia_settings(spec)


def _chunk(seed):
    spec = generate.ChunkSpec("ggH_Zgamma", 150, seed=seed)
    return generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)


def test_same_seed_same_chunk_bit_for_bit_and_other_seed_differs():
    a, b, c = _chunk(7), _chunk(7), _chunk(8)
    for name in ("Electron", "Muon", "Photon"):
        assert ak.to_list(a["Events"][name]) == ak.to_list(b["Events"][name])
    assert ak.to_list(a["Events"]["Photon"]) != ak.to_list(c["Events"]["Photon"])
    assert a["Runs"]["genEventCount"][0] == 150
    assert a["Runs"]["genEventSumw"][0] == pytest.approx(150.0)


def test_signal_chunk_has_h_to_zgamma_final_state():
    particles, weights, meta = generate.generate_chunk(
        generate.ChunkSpec("ggH_Zgamma", 100, seed=3), progress=False
    )
    pid = particles.pid
    # a prompt photon in (nearly) every event; Pythia's QED shower lets a photon split into a
    # fermion pair (gamma -> q qbar, l+ l-), so a rare event has none
    assert ak.mean(ak.sum(pid == 22, axis=1) >= 1) > 0.95
    n_e = ak.sum(abs(pid) == 11, axis=1)
    n_mu = ak.sum(abs(pid) == 13, axis=1)
    assert ak.all((n_e >= 2) | (n_mu >= 2))
    assert ak.all(np.hypot(particles.px, particles.py) > generate.PARTICLE_PT_MIN)
    assert 1e-3 < meta.sigma_gen_pb < 1e-2  # LO gg->H x BR(H->Zg) x BR(Z->ee,mumu)
    assert np.all(np.asarray(weights) == 1.0)


# ---------------------------------------------------------------- background generation: scale, cuts, veto,
# bias


def test_chunk_spec_from_config_applies_background_settings_to_the_background_only():
    gen = CONFIG["generation"]
    bkg = generate.chunk_spec("qqbar_Zgamma", 10, 5, gen, 13.0)
    sig = generate.chunk_spec("ggH_Zgamma", 10, 5, gen, 13.0)
    assert bkg.factor_scale2 == 2 and bkg.mhat_max == gen["mhat_max"]
    assert bkg.veto == generate.AcceptanceVeto(**gen["acceptance_veto"]) and bkg.bias == generate.Bias(
        **gen["bias"]
    )
    assert sig.veto is None and sig.bias is None
    lines = generate.pythia_settings(bkg)
    assert "SigmaProcess:factorScale2 = 2" in lines and f"PhaseSpace:mHatMax = {gen['mhat_max']}" in lines
    assert bkg.isr_max == gen["isr_max"] and set(generate.ISR_MAX[gen["isr_max"]]) <= set(lines)
    assert sig.isr_max == "factorization"  # the signal keeps Pythia's own choice (power shower for gg -> H)
    assert not any(line.startswith("SpaceShower:pT") for line in generate.pythia_settings(sig))
    old = generate.chunk_spec(
        "qqbar_Zgamma", 10, 5, {k: gen[k] for k in ("level", "z_mass_min", "pthat_min", "mhat_min")}, 13.0
    )
    assert old.veto is None and old.bias is None and old.factor_scale2 == 1  # optional keys: off
    assert old.isr_max == "factorization"
    damped = generate.pythia_settings(
        generate.ChunkSpec("qqbar_Zgamma", 10, seed=1, isr_max="power_damped", isr_damp_fudge=2.0)
    )
    assert {
        "SpaceShower:pTmaxMatch = 2",
        "SpaceShower:pTdampMatch = 1",
        "SpaceShower:pTdampFudge = 2.0",
    } <= set(damped)


def test_unknown_isr_max_is_refused_with_the_key_named():
    spec = generate.ChunkSpec("qqbar_Zgamma", 10, seed=1, isr_max="wimpy")
    with pytest.raises(ValueError, match="generation.isr_max"):
        generate.pythia_settings(spec)


@pytest.mark.slow
def test_power_shower_gives_the_background_a_drell_yan_like_recoil():
    """The recoil pT(Z gamma)/m of the background: a tail above 0.5 with the power shower, none without.

    Drell-Yan at m = 115-135 GeV (Pythia's matrix-element-corrected shower) has 9 % above 0.5; the
    factorisation-scale shower has well under 1 %.
    """

    def recoil_fraction(isr_max: str) -> float:
        spec = generate.ChunkSpec(
            "qqbar_Zgamma", 2000, seed=21, factor_scale2=2, mhat_min=115.0, mhat_max=135.0, isr_max=isr_max
        )
        parts, weights, _ = generate.generate_chunk(spec, progress=False)
        leptons_photons = parts[(abs(parts.pid) == 11) | (abs(parts.pid) == 13) | (parts.pid == 22)]
        px, py = ak.sum(leptons_photons.px, axis=1), ak.sum(leptons_photons.py, axis=1)
        energy, pz = ak.sum(leptons_photons.E, axis=1), ak.sum(leptons_photons.pz, axis=1)
        mass = np.sqrt(np.maximum(np.asarray(energy**2 - px**2 - py**2 - pz**2), 1.0))
        return float(np.mean(np.hypot(np.asarray(px), np.asarray(py)) / mass > 0.5))

    power, factorization = recoil_fraction("power"), recoil_fraction("factorization")
    assert 0.03 < power < 0.2
    assert factorization < 0.5 * power
    assert factorization < recoil_fraction("power_damped") < power


def test_selection_bias_values():
    bias = generate.Bias(
        pt_over_m_power=2.0, pt_over_m_ref=0.1, mass_peak=125.0, mass_width=8.0, mass_boost=4.0
    )
    # pT/m = 0.2 at the peak: (0.2/0.1)^2 x (1 + 4) = 20; far from the peak the mass factor is 1
    assert generate.selection_bias(25.0, 125.0, bias) == pytest.approx(20.0)
    assert generate.selection_bias(40.0, 200.0, bias) == pytest.approx(
        4.0 * (1 + 4 * np.exp(-0.5 * (75 / 8) ** 2))
    )
    # below the floor the bias stays constant instead of vanishing
    assert generate.selection_bias(0.0, 100.0, bias) == generate.selection_bias(0.5, 100.0, bias) > 0
    flat = generate.Bias()
    assert generate.selection_bias(np.array([5.0, 50.0]), np.array([100.0, 150.0]), flat).tolist() == [
        1.0,
        1.0,
    ]


def test_acceptance_veto_logic():
    veto = generate.AcceptanceVeto(lead_lepton_pt=15.0, sublead_lepton_pt=8.0, photon_pt=8.0, eta_max=3.0)
    assert veto.passes([30.0, 10.0], [0.1, -2.0], [12.0], [1.0])
    assert not veto.passes([30.0, 7.0], [0.1, -2.0], [12.0], [1.0])  # soft second lepton
    assert not veto.passes([30.0, 10.0], [0.1, -3.5], [12.0], [1.0])  # lepton outside |eta| < 3
    assert not veto.passes([30.0, 10.0], [0.1, 0.2], [7.0], [1.0])  # soft photon
    assert not veto.passes([30.0, 10.0], [0.1, 0.2], [], [])  # no photon
    assert veto.passes([10.0, 20.0], [0.0, 0.0], [9.0], [0.0])  # order of the leptons does not matter


def _bkg(n, seed, **kw):
    spec = generate.ChunkSpec("qqbar_Zgamma", n, seed=seed, factor_scale2=2, mhat_max=200.0, **kw)
    particles, weights, meta = generate.generate_chunk(spec, progress=False)
    return particles, weights, meta


def test_biased_generation_is_unbiased_after_weights():
    """Closure: the weighted biased sample gives Pythia's unbiased cross-section and photon spectrum."""
    _, w0, m0 = _bkg(4000, 11)
    parts, w1, m1 = _bkg(3000, 12, bias=generate.Bias(pt_over_m_power=2.0, mass_boost=4.0))
    assert np.all(w0 == 1.0) and w1.std() > 0.3 * w1.mean()  # the bias really weights the events
    assert m1.sigma_gen_pb == pytest.approx(m0.sigma_gen_pb, rel=0.05)
    assert m1.sum_weights == pytest.approx(w1.sum())
    photon_pt = ak.max(ak.where(parts.pid == 22, np.hypot(parts.px, parts.py), 0.0), axis=1).to_numpy()
    # the fraction of events with a hard photon (pT > 30 GeV) agrees with an unbiased sample within statistics
    parts0, _, _ = generate.generate_chunk(
        generate.ChunkSpec("qqbar_Zgamma", 3000, seed=14, factor_scale2=2, mhat_max=200.0), progress=False
    )
    pt0 = ak.max(ak.where(parts0.pid == 22, np.hypot(parts0.px, parts0.py), 0.0), axis=1).to_numpy()
    f0 = np.mean(pt0 > 30.0)
    f1 = np.sum(w1 * (photon_pt > 30.0)) / np.sum(w1)
    err = np.sqrt(f0 * (1 - f0) / 3000 + np.sum((w1 / w1.sum()) ** 2 * ((photon_pt > 30.0) - f1) ** 2))
    assert abs(f1 - f0) < 4 * err
    assert np.mean(photon_pt > 30.0) > 1.5 * f0  # and it puts more MC events where it should


def test_acceptance_veto_reduces_the_cross_section_by_the_vetoed_fraction():
    _, _, loose = _bkg(2000, 21)
    parts, _, vetoed = _bkg(2000, 22, veto=generate.AcceptanceVeto())
    assert 0.2 < vetoed.sigma_gen_pb / loose.sigma_gen_pb < 0.8
    lep = (abs(parts.pid) == 11) | (abs(parts.pid) == 13)
    assert ak.all(ak.sum(lep, axis=1) >= 2)


def test_drellyan_fsr_settings_mass_range_and_no_quark_qed_shower():
    spec = generate.chunk_spec("drellyan_fsr", 10, 3, CONFIG["generation"], 13.0)
    lines = generate.pythia_settings(spec)
    assert "WeakSingleBoson:ffbar2gmZ = on" in lines and "SpaceShower:QEDshowerByQ = off" in lines
    assert (
        f"23:mMin = {CONFIG['generation']['mhat_min']}" in lines
        and f"23:mMax = {CONFIG['generation']['mhat_max']}" in lines
    )
    assert spec.bias is None
    # no hard photon: the veto looks at the leptons only
    assert spec.veto is not None and spec.veto.require_photon is False
    assert spec.veto.passes([40.0, 20.0], [0.1, -1.0], [], [])
    assert not spec.veto.passes([40.0, 5.0], [0.1, -1.0], [], [])
    fsr = CONFIG["generation"]["fsr"]
    assert spec.fsr == generate.FsrFilter(**fsr)
    assert f"TimeShower:pTminChgL = {fsr['lepton_qed_cutoff']}" in lines
    assert (
        "Enhancements:doEnhance = on" in lines
        and f"EnhancedSplittings:List = {{fsr:Q2QA={fsr['enhance']}}}" in lines
    )
    assert generate.chunk_spec("qqbar_Zgamma", 10, 3, CONFIG["generation"], 13.0).fsr is None


class _Particle:
    def __init__(self, pid, pt, eta, phi, final=True):
        self._v = (pid, pt, eta, phi, final)

    def id(self):
        return self._v[0]

    def pT(self):  # noqa: N802 (Pythia's names)
        return self._v[1]

    def eta(self):
        return self._v[2]

    def phi(self):
        return self._v[3]

    def isFinal(self):  # noqa: N802
        return self._v[4]


class _Event(list):
    def size(self):
        return len(self)


def test_isolated_photon_pt_takes_the_hardest_photon_away_from_every_lepton():
    lep = [_Particle(11, 40.0, 0.0, 3.1), _Particle(-11, 30.0, 1.0, 0.0)]
    near = _Particle(22, 50.0, 0.1, -3.1)  # Delta R = 0.1 from the first lepton across phi = pi
    far = _Particle(22, 20.0, -1.5, 1.5)
    not_final = _Particle(22, 90.0, -2.0, 1.0, final=False)
    assert generate.isolated_photon_pt(_Event(lep + [near, far, not_final]), 0.4) == 20.0
    assert generate.isolated_photon_pt(_Event(lep + [near]), 0.4) == 0.0
    assert generate.isolated_photon_pt(_Event(lep + [near]), 0.05) == 50.0
    filt = generate.FsrFilter(photon_pt=15.0, min_dr=0.4)
    assert filt.passes(_Event(lep + [far])) and not filt.passes(_Event(lep + [near]))


@pytest.mark.slow
def test_enhanced_filtered_drellyan_gives_the_plain_isolated_photon_cross_section():
    """Closure: FSR enhancement x filter x weights = plain Drell-Yan, for isolated photons above 15 GeV."""

    def iso_photon_xsec(fsr, n, seed):
        spec = generate.ChunkSpec("drellyan_fsr", n, seed=seed, mhat_min=95.0, mhat_max=200.0, fsr=fsr)
        parts, weights, meta = generate.generate_chunk(spec, progress=False)
        lep = parts[(abs(parts.pid) == 11) | (abs(parts.pid) == 13)]
        pho = parts[parts.pid == 22]
        pairs = ak.cartesian({"g": pho, "l": lep}, nested=True)
        dphi = (
            np.mod(np.arctan2(pairs.g.py, pairs.g.px) - np.arctan2(pairs.l.py, pairs.l.px) + np.pi, 2 * np.pi)
            - np.pi
        )

        def eta(p):
            return np.arcsinh(p.pz / np.hypot(p.px, p.py))

        isolated = ak.all(np.hypot(eta(pairs.g) - eta(pairs.l), dphi) > 0.4, axis=2)
        passed = ak.any(isolated & (np.hypot(pho.px, pho.py) > 15.0), axis=1).to_numpy()
        w = np.asarray(weights)
        frac = np.sum(w * passed) / np.sum(w)
        err = np.sqrt(np.sum(w**2 * passed)) / np.sum(w)
        return meta.sigma_gen_pb * frac, meta.sigma_gen_pb * err

    plain, plain_err = iso_photon_xsec(None, 30000, 41)
    filtered, filtered_err = iso_photon_xsec(generate.FsrFilter(enhance=5.0, photon_pt=12.0), 2000, 42)
    assert abs(filtered - plain) < 3.0 * np.hypot(plain_err, filtered_err)
    assert filtered_err < plain_err  # and it is the cheaper estimate
