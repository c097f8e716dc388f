"""Generation: seeds, settings, bit-for-bit reproducibility of a chunk."""
from pathlib import Path
import awkward as ak
import numpy as np
import pytest
import yaml

from hzg import generate

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
    particles, weights, meta = generate.generate_chunk(generate.ChunkSpec("ggH_Zgamma", 100, seed=3), progress=False)
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
