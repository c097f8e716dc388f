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


def test_a_generator_copying_the_blank_pythias_databases_makes_a_fresh_pythias_events(monkeypatch):
    """ChunkGenerator copies the settings and particle data of one blank Pythia per process: a generator
    made before (other settings, hadron level, initialised) leaves it blank, and the chunk is the one a
    newly constructed Pythia makes, bit for bit."""
    import pythia8mc

    generate.ChunkGenerator(generate.ChunkSpec("qqbar_Zgamma", 10, seed=5, level="hadron"), progress=False)
    blank = generate._blank_pythia()
    assert blank.settings.flag("HadronLevel:all") and blank.settings.mode("Random:seed") == -1
    spec = generate.ChunkSpec("ggH_Zgamma", 60, seed=11)
    copied, w_copied = generate.ChunkGenerator(spec, progress=False).batch(60)
    monkeypatch.setattr(generate, "_blank_pythia", lambda: pythia8mc.Pythia("", False))
    fresh, w_fresh = generate.ChunkGenerator(spec, progress=False).batch(60)
    assert ak.to_list(copied) == ak.to_list(fresh) and np.array_equal(w_copied, w_fresh)


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


def test_isr_settings_apply_to_both_background_processes_and_not_to_the_signal():
    gen = {**CONFIG["generation"], "isr_max": "power_damped", "isr_damp_fudge": 2.0, "isr_veto_ht": 1.5}
    for process in ("qqbar_Zgamma", "drellyan_fsr"):
        spec = generate.chunk_spec(process, 10, 5, gen, 13.0)
        assert spec.isr_max == "power_damped" and spec.isr_veto_ht == 1.5
        assert set(generate.ISR_MAX["power_damped"]) <= set(generate.pythia_settings(spec))
    sig = generate.chunk_spec("ggH_Zgamma", 10, 5, gen, 13.0)
    assert sig.isr_max == "factorization" and sig.isr_veto_ht is None
    assert generate.chunk_spec("qqbar_Zgamma", 10, 5, {**gen, "isr_veto_ht": None}, 13.0).isr_veto_ht is None
    with pytest.raises(ValueError, match="generation.isr_veto_ht"):
        generate.pythia_settings(generate.ChunkSpec("qqbar_Zgamma", 10, seed=1, isr_veto_ht=-1.0))
    scale = generate.pythia_settings(
        generate.ChunkSpec("drellyan_fsr", 10, seed=1, isr_max="scale", isr_max_fudge=1.5)
    )
    assert {"SpaceShower:pTmaxMatch = 1", "SpaceShower:pTmaxFudge = 1.5", "23:mMin = 95.0"} <= set(scale)
    with pytest.raises(ValueError, match="generation.isr_max_fudge"):
        generate.pythia_settings(
            generate.ChunkSpec("qqbar_Zgamma", 10, seed=1, isr_max="scale", isr_max_fudge=3.0)
        )


class _RecordParticle:
    def __init__(self, status: int, mt: float = 0.0, pt: float = 0.0, pid: int = 0, eta: float = 0.0) -> None:
        self._status, self._mt, self._pt, self._id, self._eta = status, mt, pt, pid, eta

    def status(self) -> int:
        return self._status

    def mT(self) -> float:  # noqa: N802
        return self._mt

    def pT(self) -> float:  # noqa: N802
        return self._pt

    def idAbs(self) -> int:  # noqa: N802
        return abs(self._id)

    def eta(self) -> float:
        return self._eta


class _PhaseSpace:
    def __init__(self, pthat: float, mhat: float) -> None:
        self._pthat, self.mHat = pthat, mhat

    def pTHat(self) -> float:  # noqa: N802
        return self._pthat


def test_hard_process_summary_from_a_hand_made_record():
    # beams and incoming partons are not final (status < 0); Z -> mu mu (mT 100 split in two) and a photon
    # (mT = pT 30): HT/2 = 65 GeV, the leptons and the photon in record order
    process = _Record(
        [
            _RecordParticle(-12, 13000.0, pid=2212),
            _RecordParticle(-21, 50.0, pid=2),
            _RecordParticle(-22, 91.0, pid=23),
            _RecordParticle(23, 30.0, pt=30.0, pid=22, eta=0.5),
            _RecordParticle(23, 60.0, pt=40.0, pid=13, eta=-1.0),
            _RecordParticle(23, 40.0, pt=25.0, pid=-13, eta=2.0),
        ]
    )
    half, lep_pt, lep_eta, pho_pt, pho_eta = generate.hard_process_summary(process)
    assert half == pytest.approx(65.0)
    assert (lep_pt, lep_eta, pho_pt, pho_eta) == ([40.0, 25.0], [-1.0, 2.0], [30.0], [0.5])


def test_isr_veto_hook_vetoes_emissions_of_the_hard_system_above_its_limit():
    hook = generate._user_hook(None, None, None, isr_scale_fudge=2.0)
    assert hook.canVetoISREmission() and hook.canVetoProcessLevel() and not hook.canBiasSelection()
    process = _Record([_RecordParticle(23, 100.0), _RecordParticle(23, 30.0, pt=30.0, pid=22)])
    assert hook.doVetoProcessLevel(process) is False  # no acceptance veto: only the limit is set
    assert hook.isr_limit == pytest.approx(2.0 * 65.0)
    # an ISR branching appends the recoiler copies (44), the new mother (-41) and the emitted parton (43)
    event = _Event(
        [_RecordParticle(23, pt=30.0), _RecordParticle(-41, pt=5.0), _RecordParticle(43, pt=142.0)]
    )
    assert hook.doVetoISREmission(1, event, 0) is True  # 142 GeV > 130 GeV
    assert hook.doVetoISREmission(1, event, 1) is False  # not the hard system (MPI)
    assert hook.doVetoISREmission(3, event, 0) is False  # no emitted parton among the new entries
    event[2] = _RecordParticle(43, pt=120.0)
    assert hook.doVetoISREmission(1, event, 0) is False
    # the emitted parton not last (Pythia's shower never does this): found among the new entries
    event = _Event([_RecordParticle(-41, pt=5.0), _RecordParticle(43, pt=142.0), _RecordParticle(44, pt=1.0)])
    assert hook.doVetoISREmission(0, event, 0) is True


def test_pythia_appends_the_emitted_isr_parton_last(monkeypatch):
    """The ISR veto reads the emitted parton from `event.back()`: at every ISR branching of the hard system
    in a Pythia run of the default background it is the parton `emitted_isr_parton` finds among the new
    entries, so the events are those of the search."""
    seen = []
    make_hook = generate._user_hook

    def checking_hook(*args, **kwargs):
        hook = make_hook(*args, **kwargs)
        veto = type(hook).doVetoISREmission

        def check(self, size_old, event, i_sys):
            if i_sys == 0:
                found = generate.emitted_isr_parton(event, size_old)
                last = event.back()
                seen.append(found is not None and (found.pT(), found.id()) == (last.pT(), last.id()))
                assert last.status() == generate.ISR_EMITTED_STATUS
            return veto(self, size_old, event, i_sys)

        type(hook).doVetoISREmission = check
        return hook

    monkeypatch.setattr(generate, "_user_hook", checking_hook)
    spec = generate.chunk_spec("qqbar_Zgamma", 300, 5, CONFIG["generation"], 13.0)
    generate.generate_chunk(spec, progress=False)
    assert len(seen) > 300 and all(seen)


@pytest.mark.slow
def test_isr_veto_at_f_half_ht_removes_the_hard_recoil_of_the_power_shower():
    """isr_veto_ht f vetoes every ISR emission of the hard system above f HT/2: with f = 1 the recoil of the
    power shower above 150 GeV (which needs an emission far above HT/2) is gone, and less is above 50 GeV."""

    def recoil(isr_max: str, veto: float | None = None) -> np.ndarray:
        spec = generate.ChunkSpec(
            "qqbar_Zgamma",
            1500,
            seed=23,
            factor_scale2=2,
            mhat_min=115.0,
            mhat_max=135.0,
            isr_max=isr_max,
            isr_veto_ht=veto,
        )
        parts, _, _ = generate.generate_chunk(spec, progress=False)
        partons = parts[(abs(parts.pid) <= 6) | (parts.pid == 21)]
        return np.hypot(np.asarray(ak.sum(partons.px, axis=1)), np.asarray(ak.sum(partons.py, axis=1)))

    power, limited = recoil("power"), recoil("power", 1.0)
    # HT/2 of a Z gamma pair at m = 115-135 GeV lies below about 90 GeV: a recoil above 150 GeV needs several
    # hard emissions, which the veto removes
    assert np.mean(limited > 150.0) < 0.5 * max(np.mean(power > 150.0), 1e-3)
    assert np.mean(limited > 50.0) < np.mean(power > 50.0)


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
    mass_bias = {
        k: v for k, v in (CONFIG["generation"].get("fsr_bias") or {}).items() if not k.startswith("pt_")
    }
    assert spec.bias == (generate.Bias(**mass_bias) if mass_bias else None)  # a 2 -> 1 event has no p-hat_T
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


def test_drellyan_fsr_bias_acts_on_the_gamma_star_mass_only():
    gen = {**CONFIG["generation"], "fsr_bias": {"mass_peak": 125.0, "mass_width": 10.0, "mass_boost": 9.0}}
    spec = generate.chunk_spec("drellyan_fsr", 10, 3, gen, 13.0)
    assert spec.bias == generate.Bias(mass_peak=125.0, mass_width=10.0, mass_boost=9.0)
    # a 2 -> 1 process has p-hat_T = 0: the bias is 1 + boost at the peak and 1 far from it
    bias_of = generate._bias_function(spec.bias)
    assert bias_of(_PhaseSpace(0.0, 125.0)) == pytest.approx(10.0)
    assert bias_of(_PhaseSpace(0.0, 190.0)) == pytest.approx(1.0, abs=1e-4)
    assert generate.selection_bias([0.0], [135.0], spec.bias)[0] == pytest.approx(1.0 + 9.0 * np.exp(-0.5))
    # the qqbar -> Z gamma sample keeps generation.bias; without fsr_bias Drell-Yan is not biased
    isr = generate.chunk_spec("qqbar_Zgamma", 10, 3, gen, 13.0)
    assert isr.bias == generate.Bias(**CONFIG["generation"]["bias"])
    assert generate.chunk_spec("drellyan_fsr", 10, 3, {**gen, "fsr_bias": None}, 13.0).bias is None


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

    def status(self):  # Pythia: > 0 for final particles
        return 1 if self._v[4] else -1


class _Event(list):
    def size(self):
        return len(self)

    def back(self):
        return self[-1]

    def particles(self):
        return list(self)


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

    def iso_photon_xsec(fsr, n, seed, bias=None):
        spec = generate.ChunkSpec(
            "drellyan_fsr", n, seed=seed, mhat_min=95.0, mhat_max=200.0, fsr=fsr, bias=bias
        )
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
    # the m* bias of generation.fsr_bias moves events, not the cross-section
    biased, biased_err = iso_photon_xsec(
        generate.FsrFilter(enhance=5.0, photon_pt=12.0),
        2000,
        43,
        generate.Bias(mass_peak=125.0, mass_width=10.0, mass_boost=9.0),
    )
    assert abs(biased - plain) < 3.0 * np.hypot(plain_err, biased_err)


# -------------------------------------------------- issue 15: faster record access, veto before hadronisation


def _old_event_particles(event):
    return [(p.id(), p.px(), p.py(), p.pz(), p.e()) for p in event if p.isFinal() and p.isVisible()]


def _old_final_leptons_and_photons(record):
    leptons, photons = [], []
    for i in range(record.size()):
        particle = record[i]
        if not particle.isFinal():
            continue
        pid = abs(particle.id())
        if pid in (11, 13):
            leptons.append((particle.pT(), particle.eta(), particle.phi()))
        elif pid == 22:
            photons.append((particle.pT(), particle.eta(), particle.phi()))
    return leptons, photons


def test_faster_record_access_gives_the_same_ntuple_for_the_same_seed(monkeypatch):
    """The speed-ups of issue 15 (nextBatch, the hook's bias in floats) are pure speed: same events, bit for
    bit, as the code before (next() and one Python call per particle property)."""
    spec = generate.chunk_spec("qqbar_Zgamma", 300, 11, CONFIG["generation"], 13.0)
    new = generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)
    monkeypatch.setattr(
        generate.ChunkGenerator, "batch", generate.ChunkGenerator._batch_event_loop
    )  # next() per event
    monkeypatch.setattr(generate, "_event_particles", _old_event_particles)
    monkeypatch.setattr(generate, "final_leptons_and_photons", _old_final_leptons_and_photons)
    monkeypatch.setattr(
        generate,
        "_bias_function",
        lambda b: lambda ps: float(generate.selection_bias(ps.pTHat(), ps.mHat, b)),
    )
    old = generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)
    for name in ("Electron", "Muon", "Photon"):
        assert ak.to_list(new["Events"][name]) == ak.to_list(old["Events"][name]), name
    assert np.array_equal(new["Events"]["genWeight"], old["Events"]["genWeight"])
    # the bias in the hook is now computed with math instead of numpy: equal to the last bit or two
    assert new["Runs"]["sigmaGen_pb"][0] == pytest.approx(old["Runs"]["sigmaGen_pb"][0], rel=1e-12)


def test_selection_bias_in_plain_floats_equals_numpy():
    bias = generate.Bias(**CONFIG["generation"]["bias"])
    pt, m = np.array([0.5, 12.0, 40.0, 150.0]), np.array([96.0, 124.0, 130.0, 199.0])
    bias_of = generate._bias_function(bias)  # the hook's: Pythia calls it for every trial point
    assert [bias_of(_PhaseSpace(a, b)) for a, b in zip(pt, m)] == pytest.approx(
        generate.selection_bias(pt, m, bias), rel=1e-14
    )


class _Record(list):
    def particles(self):
        return list(self)


def _p(pid, pt, eta, phi):
    part = _Particle(pid, pt, eta, phi)
    return part


def test_shower_acceptance_needs_an_sfos_pair_and_a_separated_photon_in_the_mass_windows():
    acc = generate.ShowerAcceptance()
    # Z(91) -> mu mu back to back-ish and a 30 GeV photon: mllg ~ 125
    good = [_p(13, 45.0, 0.1, 0.0), _p(-13, 40.0, -0.3, 2.9), _p(22, 30.0, 0.5, 1.4)]
    assert acc.passes(_Record(good))
    assert not acc.passes(_Record([good[0], _p(13, 40.0, -0.3, 2.9), good[2]]))  # same sign
    assert not acc.passes(_Record([good[0], _p(-11, 40.0, -0.3, 2.9), good[2]]))  # different flavour
    assert not acc.passes(_Record(good[:2]))  # no photon
    assert not acc.passes(_Record([good[0], good[1], _p(22, 30.0, 0.15, 0.05)]))  # photon on a lepton
    assert not acc.passes(_Record([good[0], good[1], _p(22, 30.0, 3.0, 1.4)]))  # photon outside |eta| < 2.6
    assert not acc.passes(
        _Record([_p(13, 19.0, 0.1, 0.0), _p(-13, 18.0, -0.3, 2.9), good[2]])
    )  # both below 20 GeV
    assert not acc.passes(
        _Record([_Particle(13, 45.0, 0.1, 0.0, final=False), good[1], good[2]])
    )  # not final


def test_veto_before_hadronisation_switches_pythia_hadronisation_off_and_keeps_every_event():
    generation = dict(
        CONFIG["generation"], level="hadron", veto_before_hadronisation=True, qcd_final_state_shower=True
    )
    spec = generate.chunk_spec("qqbar_Zgamma", 40, 5, generation, 13.0)
    assert spec.hadron_veto == generate.ShowerAcceptance()
    lines = generate.pythia_settings(spec)
    assert "HadronLevel:all = off" in lines and "PartonLevel:MPI = on" in lines
    assert (
        generate.chunk_spec("qqbar_Zgamma", 40, 5, dict(generation, level="parton"), 13.0).hadron_veto is None
    )
    gen = generate.ChunkGenerator(spec, progress=False)
    particles, weights = gen.batch(40)
    n = ak.to_numpy(ak.num(particles))
    assert len(n) == 40 and np.all(
        weights > 0
    )  # vetoed events keep their weight: sum_w and sigma stay those generated
    assert 0 < gen.n_hadron_vetoed < 40 and np.sum(n == 0) == gen.n_hadron_vetoed
    # the kept events are hadronised: a full final state with pions
    assert np.median(n[n > 0]) > 50
    assert ak.mean(ak.any(abs(particles.pid[n > 0]) == 211, axis=1)) > 0.9


def test_jets_leave_every_other_branch_bit_identical():
    """The jets draw from their own random stream (generate.jet_seed): with and without them, the same seed
    gives the same leptons, photons and weights, bit for bit (the numbers of Table I do not move)."""
    spec = generate.ChunkSpec("ggH_Zgamma", 150, seed=7)
    without = {k: v for k, v in CONFIG["detector"].items() if k != "jet"}
    a = generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)["Events"]
    b = generate.simulate_chunk(spec, without, chunk=0, progress=False)["Events"]
    assert "Jet" in a and "Jet" not in b
    assert set(a) - {"Jet"} == set(b)
    for name in ("Electron", "Muon", "Photon"):
        assert ak.to_list(a[name]) == ak.to_list(b[name]), name
    for name in ("genWeight", "event", "chunk"):
        assert np.array_equal(a[name], b[name]), name
    # gg -> H at parton level: initial-state radiation gives jets in some events, pT-ordered, above 30 GeV
    jets = a["Jet"]
    assert 0 < ak.sum(ak.num(jets)) and ak.all(jets.pt > CONFIG["detector"]["jet"]["pt_min"])
    assert ak.all(jets.pt[:, :-1] >= jets.pt[:, 1:])


def test_jet_stream_differs_from_the_detector_stream():
    seed, offset = generate.chunk_seed(1001, 0), CONFIG["detector"]["seed_offset"]
    a = np.random.default_rng(generate.detector_seed(seed, offset)).random(4)
    b = np.random.default_rng(generate.jet_seed(seed, offset)).random(4)
    assert not np.array_equal(a, b)
    assert np.array_equal(b, np.random.default_rng(generate.jet_seed(seed, offset)).random(4))


def test_qcd_final_state_shower_off_only_at_parton_level():
    spec = generate.chunk_spec("qqbar_Zgamma", 10, 1, CONFIG["generation"], 13.0)
    assert CONFIG["generation"]["qcd_final_state_shower"] is False and not spec.qcd_fsr
    lines = generate.pythia_settings(spec)
    assert "TimeShower:QCDshower = off" in lines and "HadronLevel:all = off" in lines
    assert "TimeShower:QEDshowerByL = off" not in lines  # the leptons still radiate photons
    with_shower = dict(CONFIG["generation"], qcd_final_state_shower=True)
    on = generate.chunk_spec("ggH_Zgamma", 10, 1, with_shower, 13.0)
    assert on.qcd_fsr and not any("QCDshower" in line for line in generate.pythia_settings(on))
    assert generate.ChunkSpec("ggH_Zgamma", 10, seed=1).qcd_fsr  # Pythia's default when the key is absent
    hadron = generate.chunk_spec("ggH_Zgamma", 10, 1, dict(CONFIG["generation"], level="hadron"), 13.0)
    with pytest.raises(ValueError, match="qcd_final_state_shower"):
        generate.pythia_settings(hadron)


class _Lepton:
    """A final lepton of a hand-made process record, with its four-momentum."""

    def __init__(self, px: float, py: float, pz: float, m: float = 0.0, pid: int = 13) -> None:
        self._p = (px, py, pz, float(np.sqrt(px * px + py * py + pz * pz + m * m)), m)
        self._id = pid

    def status(self) -> int:
        return 23

    def idAbs(self) -> int:  # noqa: N802
        return abs(self._id)

    def px(self) -> float:
        return self._p[0]

    def py(self) -> float:
        return self._p[1]

    def pz(self) -> float:
        return self._p[2]

    def e(self) -> float:
        return self._p[3]

    def m(self) -> float:
        return self._p[4]


def _boosted(p: tuple[float, float, float, float], beta: tuple[float, float, float]) -> tuple[float, ...]:
    """(px, py, pz, E) of `p` seen from a frame moving with -beta (the system gets velocity beta)."""
    b = np.asarray(beta)
    b2 = float(b @ b)
    g = 1.0 / np.sqrt(1.0 - b2)
    vec, e = np.asarray(p[:3]), p[3]
    bp = float(b @ vec)
    vec = vec + ((g - 1.0) * bp / b2 + g * e) * b
    return (*vec.tolist(), g * (e + bp))


def test_rest_frame_half_ht_is_half_the_leptons_pt_sum_at_rest_and_boost_invariant():
    # a gamma*/Z of 125 GeV at rest decaying at 60 degrees to the beam: pT of each lepton 62.5 sin 60
    pt, pz = 62.5 * np.sin(np.pi / 3), 62.5 * np.cos(np.pi / 3)
    at_rest = [(pt, 0.0, pz, 62.5, 0.0), (-pt, 0.0, -pz, 62.5, 0.0)]
    assert generate.rest_frame_half_ht(at_rest) == pytest.approx(pt)
    # boosted transversely and longitudinally (a Drell-Yan + jet gamma*/Z): the same HT/2 in its rest frame
    beta = (0.3, -0.2, 0.5)
    moving = [(*_boosted(q[:4], beta), 0.0) for q in at_rest]
    assert np.hypot(moving[0][0] + moving[1][0], moving[0][1] + moving[1][1]) > 50.0
    assert generate.rest_frame_half_ht(moving) == pytest.approx(pt, rel=1e-9)


def test_slice_pthat_limit_takes_the_gamma_star_pt_and_the_rest_frame_limit():
    pt, pz = 62.5 * np.sin(np.pi / 3), 62.5 * np.cos(np.pi / 3)
    moving = [
        _boosted((pt, 0.0, pz, 62.5), (0.4, 0.0, 0.1)),
        _boosted((-pt, 0.0, -pz, 62.5), (0.4, 0.0, 0.1)),
    ]
    process = _Record(
        [_RecordParticle(-21, pid=21), _RecordParticle(23, pt=50.0, pid=21)]
        + [_Lepton(*q[:3], pid=pid) for q, pid in zip(moving, (13, -13))]
    )
    pthat, limit = generate.slice_pthat_limit(process, 2.0)
    assert pthat == pytest.approx(moving[0][0] + moving[1][0])
    assert limit == pytest.approx(2.0 * pt, rel=1e-6)


def test_sliced_drellyan_drops_events_whose_first_kept_isr_emission_is_above_the_slice():
    hook = generate._user_hook(None, None, None, isr_scale_fudge=2.0, drop_first_isr_above=30.0)
    assert hook.canVetoISREmission() and hook.canVetoProcessLevel() and hook.canVetoPartonLevel()
    process = _Record([_RecordParticle(23, 50.0, pid=13), _RecordParticle(23, 50.0, pid=-13)])

    def emission(pt):
        return _Event([_RecordParticle(-41, pt=0.0), _RecordParticle(43, pt=pt)])

    assert hook.doVetoProcessLevel(process) is False and hook.isr_limit == pytest.approx(100.0)
    assert hook.doVetoISREmission(0, emission(120.0), 0) is True  # above the ISR veto: not an emission
    assert hook.doVetoISREmission(0, emission(45.0), 1) is False  # an MPI system's: not counted
    assert hook.doVetoISREmission(0, emission(45.0), 0) is False  # the first kept emission: above 30 GeV
    assert hook.doVetoISREmission(0, emission(10.0), 0) is False
    assert hook.doVetoPartonLevel(_Event([])) is True
    # the next event: its first emission below the slice, a later one (impossible in a pT-ordered shower,
    # but it shows that only the first counts) above
    assert hook.doVetoProcessLevel(process) is False
    assert hook.doVetoISREmission(0, emission(25.0), 0) is False
    assert hook.doVetoISREmission(0, emission(40.0), 0) is False
    assert hook.doVetoPartonLevel(_Event([])) is False
    # an event without initial-state emission is kept
    hook.doVetoProcessLevel(process)
    assert hook.doVetoPartonLevel(_Event([])) is False


def test_slice_hook_vetoes_hard_processes_above_the_two_to_one_isr_limit():
    hook = generate._user_hook(None, None, None, drop_first_isr_above=None, slice_pthat_fudge=2.0)
    assert hook.canVetoProcessLevel() and not hook.canVetoISREmission() and not hook.canVetoPartonLevel()
    pt, pz = 62.5 * np.sin(np.pi / 6), 62.5 * np.cos(np.pi / 6)  # limit 2 x 31.25 = 62.5 GeV
    for beta, vetoed in (((0.3, 0.0, 0.2), False), ((0.6, 0.0, 0.2), True)):
        leptons = [_boosted((pt, 0.0, pz, 62.5), beta), _boosted((-pt, 0.0, -pz, 62.5), beta)]
        process = _Record([_Lepton(*q[:3], pid=pid) for q, pid in zip(leptons, (11, -11))])
        assert (leptons[0][0] + leptons[1][0] > 62.5) is vetoed
        assert hook.doVetoProcessLevel(process) is vetoed


def test_drellyan_jet_slice_settings_bias_and_config_needs():
    gen = {
        **CONFIG["generation"],
        "fsr_slice_pt": 30.0,
        "fsr_bias": {
            "mass_peak": 125.0,
            "mass_width": 10.0,
            "mass_boost": 9.0,
            "pt_over_m_power": 1.0,
            "pt_over_m_ref": 0.3,
        },
    }
    spec = generate.chunk_spec("drellyan_jet_fsr", 10, 3, gen, 13.0)
    lines = generate.pythia_settings(spec)
    assert "WeakBosonAndParton:qqbar2gmZg = on" in lines and "WeakBosonAndParton:qg2gmZq = on" in lines
    assert "PhaseSpace:pTHatMin = 30.0" in lines and "SpaceShower:QEDshowerByQ = off" in lines
    assert f"23:mMin = {gen['mhat_min']}" in lines and f"23:mMax = {gen['mhat_max']}" in lines
    assert not any(
        line.startswith("SpaceShower:pTmaxMatch") for line in lines
    )  # its own shower: from p-hat_T
    assert spec.fsr == generate.FsrFilter(**gen["fsr"]) and spec.veto.require_photon is False
    assert spec.isr_veto_ht == gen["isr_veto_ht"] and spec.fsr_slice_pt == 30.0
    assert spec.bias == generate.Bias(
        pt_over_m_power=1.0,
        pt_over_m_ref=0.3,
        mass_peak=125.0,
        mass_width=10.0,
        mass_boost=9.0,
        mass_variable="m3",
    )
    # the bias is in the gamma*/Z mass m3, not in m-hat (the mass of gamma*/Z + jet)
    phase_space = _PhaseSpace(60.0, 300.0)
    phase_space.m3 = 125.0
    assert generate._bias_function(spec.bias)(phase_space) == pytest.approx((0.48 / 0.3) * 10.0)
    # the 2 -> 1 sample: the same mass bias without p-hat_T, and the slice's p-hat_T
    below = generate.chunk_spec("drellyan_fsr", 10, 3, gen, 13.0)
    assert below.bias == generate.Bias(mass_peak=125.0, mass_width=10.0, mass_boost=9.0)
    assert below.fsr_slice_pt == 30.0 and "PhaseSpace:pTHatMin = 30.0" not in generate.pythia_settings(below)
    assert generate.chunk_spec("qqbar_Zgamma", 10, 3, gen, 13.0).fsr_slice_pt is None
    with pytest.raises(ValueError, match="fsr_slice_pt"):
        generate.chunk_spec("drellyan_jet_fsr", 10, 3, {**gen, "fsr_slice_pt": None}, 13.0)


def test_slice_weights_use_the_gamma_star_mass_of_each_event():
    # nextBatch's info has no m3: the weight's bias takes it from s + t + u; it must equal the gamma*/Z mass
    # of the event record, so that each event carries 1 / (the bias it was selected with)
    gen = {**CONFIG["generation"], "fsr_slice_pt": 30.0, "fsr": None, "acceptance_veto": None}
    spec = generate.chunk_spec("drellyan_jet_fsr", 300, 11, gen, 13.0)
    chunk = generate.ChunkGenerator(spec, progress=False)
    events = chunk.pythia.nextBatch(300)
    prt = events.prt
    is_z = (prt.id == 23) & (prt.status == -22)
    p = prt.p[is_z]
    mass = np.sqrt(ak.to_numpy(ak.firsts(p.e**2 - p.px**2 - p.py**2 - p.pz**2)))
    assert len(mass) == 300 and np.all(mass > gen["mhat_min"] - 1e-6)
    np.testing.assert_allclose(chunk._m3(events.info), mass, rtol=1e-6)
    _, weights = chunk._columns(events)
    expected = 1.0 / generate.selection_bias(np.sqrt(ak.to_numpy(events.info.pT2Hat)), mass, spec.bias)
    np.testing.assert_allclose(weights, expected * ak.to_numpy(ak.firsts(events.info.weights)), rtol=1e-5)


@pytest.mark.slow
def test_sliced_drell_yan_fsr_closes_on_the_unsliced_sample():
    """Closure of the FSR slicing (generation.fsr_slice_pt) at generator level, with the default's shower,
    veto, filter and bias: drellyan_fsr below the slice + drellyan_jet_fsr above it give the unsliced
    drellyan_fsr's cross-section of events with an isolated photon, in total and with the recoil of the
    leptons and photons above 40 GeV (where the slice holds nearly all events). bench/bench_fsr_slice.py makes
    the same comparison after the detector and the selection, with more events."""

    def xsec(process, n, seed, slice_pt):
        gen = {**CONFIG["generation"], "fsr_slice_pt": slice_pt}
        spec = generate.chunk_spec(process, n, seed, gen, 13.0)
        parts, weights, meta = generate.generate_chunk(spec, progress=False)
        visible = parts[(abs(parts.pid) == 11) | (abs(parts.pid) == 13) | (parts.pid == 22)]
        recoil = np.hypot(ak.to_numpy(ak.sum(visible.px, axis=1)), ak.to_numpy(ak.sum(visible.py, axis=1)))
        w = np.asarray(weights) * meta.sigma_gen_pb / np.sum(weights)
        out = []
        for keep in (np.ones(len(w), bool), recoil > 40.0):
            out.append((np.sum(w[keep]), np.sqrt(np.sum(w[keep] ** 2))))
        return np.array(out)

    unsliced = xsec("drellyan_fsr", 6000, 51, None)
    below = xsec("drellyan_fsr", 3000, 52, 30.0)
    above = xsec("drellyan_jet_fsr", 3000, 53, 30.0)
    total = below[:, 0] + above[:, 0]
    err = np.hypot(below[:, 1], above[:, 1])
    for i in range(2):
        assert abs(total[i] - unsliced[i, 0]) < 3.0 * np.hypot(err[i], unsliced[i, 1])
    assert err[1] < unsliced[1, 1]  # and the slice is the cheaper estimate of the high recoil
    assert above[1, 0] > 0.8 * total[1]


def test_native_bias_factors_multiply_to_the_selection_bias():
    """Pythia's p-hat_T factor b times the hook's m-hat thinning t is `selection_bias` / thin_max, t <= 1 over
    the generated m-hat range, and the accepted events' weight is 1 / (b t)."""
    gen = CONFIG["generation"]
    spec = generate.chunk_spec("qqbar_Zgamma", 10, 3, gen, 13.0)
    native = spec.native_bias
    assert native is not None and native.bias == spec.bias and native.mass_ref == gen["mhat_min"]
    rng = np.random.default_rng(5)
    pt = rng.uniform(gen["pthat_min"], 300.0, 1000)
    m = rng.uniform(gen["mhat_min"], gen["mhat_max"], 1000)
    b = 1.0 / np.array([native.pythia_weight(x) for x in pt])
    t = native.keep_probability(m)
    np.testing.assert_allclose(b * t * native.thin_max, generate.selection_bias(pt, m, spec.bias), rtol=1e-12)
    np.testing.assert_allclose(native.weights(pt, m), 1.0 / (b * t), rtol=1e-12)
    shape_of = generate._mass_shape_function(native)  # the hook's, in plain floats
    assert [shape_of(x) / native.thin_max for x in m[:50]] == pytest.approx(
        native.keep_probability(m[:50]), rel=1e-14
    )
    grid = np.linspace(gen["mhat_min"], gen["mhat_max"], 100_003)
    keep = native.keep_probability(grid)
    assert keep.max() <= 1.0 and keep.max() > 0.999  # an upper bound, and a tight one
    lines = generate.pythia_settings(spec)
    assert "PhaseSpace:bias2Selection = on" in lines
    assert f"PhaseSpace:bias2SelectionRef = {gen['bias']['pt_over_m_ref'] * gen['mhat_min']!r}" in lines


@pytest.mark.parametrize(
    ("process", "change"),
    [
        ("drellyan_jet_fsr", {"fsr_slice_pt": 30.0}),  # its bias mass is m(gamma*/Z), not m-hat
        ("drellyan_fsr", {}),  # 2 -> 1
        # no upper m-hat: p-hat_T / m-hat reaches the floor
        ("qqbar_Zgamma", {"mhat_max": -1.0, "mhat_strata": None}),
        ("qqbar_Zgamma", {"pthat_min": 1.0, "mhat_strata": None}),  # p-hat_T / m-hat below BIAS_FLOOR
    ],
)
def test_bias_stays_in_the_hook_where_pythia_cannot_reproduce_it(process, change):
    spec = generate.chunk_spec(process, 10, 3, {**CONFIG["generation"], **change}, 13.0)
    assert spec.bias is not None and spec.native_bias is None
    assert not any("bias2Selection" in line for line in generate.pythia_settings(spec))


def test_pythia_weights_its_events_by_the_native_factor():
    """Pythia's event weight is 1 / b of the event's p-hat_T (PhaseSpace:bias2Selection as `NativeBias` reads
    it), and a thinned chunk's weights are those of `NativeBias.weights`."""
    spec = generate.chunk_spec("qqbar_Zgamma", 300, 11, CONFIG["generation"], 13.0)
    chunk = generate.ChunkGenerator(spec, progress=False)
    events = chunk.pythia.nextBatch(300)
    pthat = np.sqrt(ak.to_numpy(events.info.pT2Hat))
    pythia = ak.to_numpy(ak.firsts(events.info.weights))
    np.testing.assert_allclose(pythia, [chunk.native.pythia_weight(x) for x in pthat], rtol=1e-9)
    _, weights = chunk._columns(events)
    np.testing.assert_allclose(
        weights, pythia / chunk.native.keep_probability(ak.to_numpy(events.info.mHat)), rtol=1e-9
    )
    assert chunk.hook.selected_weight_sum > 0.0


def _weighted_fraction(weights, passed):
    f = np.sum(weights * passed) / np.sum(weights)
    return f, np.sqrt(np.sum((weights / weights.sum()) ** 2 * (passed - f) ** 2))


def _closure_observables(parts, w):
    """Weighted fractions (with errors) of events with m(ll gamma) in 120-130 GeV and with a photon above
    40 GeV, from the generated particles, and the raw fraction of events in the window."""
    photon = parts[parts.pid == 22]
    lep = parts[(abs(parts.pid) == 11) | (abs(parts.pid) == 13)]
    g = ak.firsts(photon[ak.argmax(np.hypot(photon.px, photon.py), axis=1, keepdims=True)])
    pair = ak.combinations(lep, 2)
    tot = {
        k: ak.fill_none(ak.firsts(pair["0"][k] + pair["1"][k]), 0.0) + ak.fill_none(g[k], 0.0)
        for k in ("px", "py", "pz", "E")
    }
    m = np.sqrt(np.maximum(tot["E"] ** 2 - tot["px"] ** 2 - tot["py"] ** 2 - tot["pz"] ** 2, 0.0))
    in_window = ak.to_numpy((m > 120.0) & (m < 130.0)).astype(float)
    hard = ak.to_numpy(ak.fill_none(np.hypot(g.px, g.py) > 40.0, False)).astype(float)
    return _weighted_fraction(w, in_window), _weighted_fraction(w, hard), np.mean(in_window)


def test_native_bias_and_strata_close_on_the_bias_in_the_hook_and_on_no_bias(monkeypatch):
    """Closure with the default's generator settings (acceptance veto, ISR veto, bias, m-hat strata): Pythia's
    p-hat_T bias with the m-hat thinning, in one run or in the default's strata, and the strata with fractions
    far from the bias' shares, give the cross-section and weighted spectra of the bias in a Python hook and
    of an unbiased sample, within their statistics; the default's strata put as many MC events into the
    Higgs-mass region as the bias does, twice the unbiased sample's."""
    gen = CONFIG["generation"]
    skewed = {**gen["mhat_strata"], "fractions": [0.4, 0.15, 0.15, 0.15, 0.15]}
    specs = {
        "strata": generate.chunk_spec("qqbar_Zgamma", 4000, 31, gen, 13.0),
        "one run": generate.chunk_spec("qqbar_Zgamma", 4000, 34, {**gen, "mhat_strata": None}, 13.0),
        "skewed strata": generate.chunk_spec("qqbar_Zgamma", 4000, 35, {**gen, "mhat_strata": skewed}, 13.0),
        "plain": generate.chunk_spec(
            "qqbar_Zgamma", 4000, 32, {**gen, "bias": None, "mhat_strata": None}, 13.0
        ),
    }
    assert specs["strata"].mhat_strata and specs["strata"].native_bias is not None
    results = {name: generate.generate_chunk(spec, progress=False) for name, spec in specs.items()}
    monkeypatch.setattr(generate, "native_bias", lambda *a, **k: None)
    hook = generate.chunk_spec("qqbar_Zgamma", 4000, 33, {**gen, "mhat_strata": None}, 13.0)
    assert hook.native_bias is None
    results["hook"] = generate.generate_chunk(hook, progress=False)
    observed = {name: _closure_observables(parts, w) for name, (parts, w, _) in results.items()}
    ref_meta = results["plain"][2]
    for name in ("strata", "one run", "skewed strata", "hook"):
        _, w, meta = results[name]
        assert meta.sum_weights == pytest.approx(w.sum())
        err = np.hypot(meta.sigma_err_pb, ref_meta.sigma_err_pb)
        assert abs(meta.sigma_gen_pb - ref_meta.sigma_gen_pb) < 4 * err, name
        for got, ref in zip(observed[name][:2], observed["plain"][:2]):
            assert abs(got[0] - ref[0]) < 4 * np.hypot(got[1], ref[1]), name
    assert results["strata"][1].sum() == pytest.approx(4000.0)  # each stratum scaled to its cross-section
    # the same law as the hook's bias: as many MC events in the window, twice the unbiased sample's
    for name in ("strata", "one run"):
        assert observed[name][2] == pytest.approx(observed["hook"][2], rel=0.15), name
    assert observed["strata"][2] > 2.0 * observed["plain"][2]


def test_stratum_counts_apportion_the_events():
    assert generate.stratum_counts(1000, [0.048, 0.183, 0.451, 0.157, 0.161]) == [48, 183, 451, 157, 161]
    counts = generate.stratum_counts(7, [0.5, 0.3, 0.2])
    assert sum(counts) == 7 and counts == [4, 2, 1]
    assert generate.stratum_counts(3, [0.98, 0.01, 0.01]) == [1, 1, 1]  # every stratum gets an event
    with pytest.raises(ValueError, match="cannot fill 3 m-hat strata"):
        generate.stratum_counts(2, [0.5, 0.3, 0.2])


@pytest.mark.parametrize(
    ("strata", "match"),
    [
        ({"edges": [95.0, 130.0, 190.0], "fractions": [0.5, 0.5]}, "must increase from"),
        ({"edges": [95.0, 130.0, 120.0, 200.0], "fractions": [0.3, 0.3, 0.4]}, "must increase from"),
        ({"edges": [95.0, 130.0, 200.0], "fractions": [0.5, 0.4]}, "summing to 1"),
        ({"edges": [95.0, 130.0, 200.0], "fractions": [1.0]}, "one positive fraction per stratum"),
    ],
)
def test_bad_mhat_strata_are_refused_by_name(strata, match):
    gen = {**CONFIG["generation"], "mhat_strata": strata}
    with pytest.raises(ValueError, match=match):
        generate.chunk_spec("qqbar_Zgamma", 100, 3, gen, 13.0)
    from hzg import config_checks

    assert any("generation.mhat_strata" in p for p in config_checks._mhat_strata_problems(gen))


def test_strata_apply_to_the_background_only_and_set_each_run_s_m_hat_range():
    gen = CONFIG["generation"]
    assert generate.chunk_spec("ggH_Zgamma", 100, 3, gen, 13.0).mhat_strata is None
    spec = generate.chunk_spec("qqbar_Zgamma", 1000, 3, gen, 13.0)
    edges = gen["mhat_strata"]["edges"]
    assert [s[:2] for s in spec.mhat_strata] == list(zip(edges[:-1], edges[1:]))
    chunk = generate.make_generator(spec, progress=False)
    assert isinstance(chunk, generate.StratifiedGenerator) and sum(chunk.counts) == 1000
    assert [(s.mhat_min, s.mhat_max) for s in chunk.specs] == list(zip(edges[:-1], edges[1:]))
    assert len({s.seed for s in chunk.specs}) == len(edges) - 1
    for sub in chunk.specs:  # each stratum: Pythia's m-hat range, its own thinning maximum
        lines = generate.pythia_settings(sub)
        assert (
            f"PhaseSpace:mHatMin = {sub.mhat_min}" in lines
            and f"PhaseSpace:mHatMax = {sub.mhat_max}" in lines
        )
        assert sub.native_bias.mass_ref == sub.mhat_min
    with pytest.raises(RuntimeError, match="not complete"):
        chunk.final_weights(np.ones(1000))


def test_stratified_chunk_is_reproducible():
    spec = generate.chunk_spec("qqbar_Zgamma", 60, 8, CONFIG["generation"], 13.0)
    a = generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)
    b = generate.simulate_chunk(spec, CONFIG["detector"], chunk=0, progress=False)
    assert np.array_equal(a["Events"]["genWeight"], b["Events"]["genWeight"])
    assert ak.to_list(a["Events"]["Photon"]) == ak.to_list(b["Events"]["Photon"])
    assert a["Runs"]["sigmaGen_pb"][0] == b["Runs"]["sigmaGen_pb"][0] > 0


def test_a_stratum_without_phase_space_is_named():
    """A stratum where Pythia finds no cross-section (here p-hat_T > 60 GeV with m-hat below 100 GeV) fails
    with the stratum and the config key named, not Pythia's bare initialisation error."""
    strata = {"edges": [95.0, 100.0, 200.0], "fractions": [0.5, 0.5]}
    gen = {**CONFIG["generation"], "pthat_min": 60.0, "mhat_strata": strata}
    spec = generate.chunk_spec("qqbar_Zgamma", 20, 3, gen, 13.0)
    with pytest.raises(RuntimeError, match=r"m-hat stratum 95-100 GeV \(generation.mhat_strata\)"):
        generate.generate_chunk(spec, progress=False)
