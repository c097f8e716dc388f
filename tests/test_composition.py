"""The two-template fraction fit (hzg.results.composition) and the default's background composition."""

from pathlib import Path

import numpy as np
import pytest

from hzg.config_checks import load_config
from hzg.data import generate
from hzg.results.composition import template_fraction

REPO = Path(__file__).resolve().parents[1]


def _templates():
    x = np.linspace(0, 1, 12)
    first = np.exp(-0.5 * ((x - 0.5) / 0.1) ** 2) + 1e-3  # a peak (the Z's mll)
    second = np.ones_like(x)  # a flat continuum (the FSR's mll)
    return first / first.sum(), second / second.sum()


@pytest.mark.parametrize("true", [0.0, 0.05, 0.3, 0.8])
def test_fraction_recovered_from_poisson_toys(true):
    first, second = _templates()
    rng = np.random.default_rng(7)
    pulls, covered = [], 0
    for _ in range(100):
        n = rng.poisson(5000 * ((1 - true) * first + true * second))
        fit = template_fraction(n, first * 123.0, second * 0.5)  # any template normalisation
        assert 0.0 <= fit.low <= fit.fraction <= fit.high <= 1.0
        covered += fit.low <= true <= fit.high
        if 0.0 < true < 1.0:
            pulls.append((fit.fraction - true) / (0.5 * (fit.high - fit.low)))
    assert 0.5 <= covered / 100 <= 0.95  # 68 % intervals (more at the boundary, where half the toys sit at 0)
    if pulls:  # unbiased, intervals of the right size
        assert abs(np.mean(pulls)) < 0.25 and 0.8 < np.std(pulls) < 1.2


def test_fraction_at_the_boundary_and_chi2_at_other_fractions():
    first, second = _templates()
    n = np.round(10000 * first).astype(int)  # no second template at all
    fit = template_fraction(n, first, second, at=(0.2,))
    assert fit.fraction < 1e-3 and fit.low == 0.0 and fit.high < 0.01
    assert fit.ndf == first.size - 1 and fit.chi2 < 1.0
    assert fit.chi2_at[0.2] > 100 * max(fit.chi2, 1.0)


def test_fraction_fit_refuses_bad_input():
    first, second = _templates()
    with pytest.raises(ValueError, match="same bins"):
        template_fraction(np.ones(3), first, second)
    with pytest.raises(ValueError, match="template second is empty"):
        template_fraction(np.ones(first.size), first, np.zeros(first.size))
    with pytest.raises(ValueError, match="non-negative"):
        template_fraction(-np.ones(first.size), first, second)


def test_default_background_is_the_papers_and_fsr_overlay_keeps_one_k_factor():
    """The default generates the paper's background, the photon from the quarks only (its published example
    holds no photon off a lepton, docs/physics.md, "Which background"); config/fsr.yaml adds the Drell-Yan
    FSR slices, and wherever FSR samples are generated every background sample takes the same k_factor (one
    common factor on Pythia's LO cross-sections keeps its FSR/ISR ratio)."""
    default = load_config(REPO / "config/config.yaml")
    processes = {s["generate"]["process"] for s in default["samples"].values()}
    assert processes == {"ggH_Zgamma", "qqbar_Zgamma"}
    assert not processes & set(generate.FSR_PROCESSES)
    for name in ("fsr", "methods", "ci"):
        cfg = load_config(REPO / f"config/{name}.yaml")
        background = [s for s in cfg["samples"].values() if s["kind"] == "background"]
        assert {s["generate"]["process"] for s in background} >= set(generate.FSR_PROCESSES), name
        assert len({s["k_factor"] for s in background}) == 1, name
    for name in ("paper", "mass_scan"):
        cfg = load_config(REPO / f"config/{name}.yaml")
        k = cfg["samples"]["background"]["k_factor"]
        if cfg["generation"]["level"] == default["generation"]["level"]:
            assert k == default["samples"]["background"]["k_factor"], name
        else:  # hadron level: the underlying event in the cones keeps 490.6 of the 616.4 fb (docs/physics.md)
            assert k == pytest.approx(default["samples"]["background"]["k_factor"] * 616.4 / 490.6, rel=0.01)
        assert not {s["generate"]["process"] for s in cfg["samples"].values()} & set(generate.FSR_PROCESSES)


def test_signal_takes_the_papers_selected_yield_wherever_the_paper_is_reproduced():
    """The paper's 45 M signal events were Z -> ee/mumu normalised to 7.52 fb (which includes Z -> tautau):
    config/paper.yaml (hadron level, where the paper's isolation keeps its 20 %) takes 7.52 fb; the
    parton-level configurations take the default's 6.00 fb, which gives the paper's 208 selected events
    there; the VBF signal follows the ggH one; ci.yaml keeps the physical 5.01 fb (docs/physics.md,
    "Weights and splits")."""
    physical, paper_xsec = 5.01e-3, 7.52e-3
    default = load_config(REPO / "config/config.yaml")
    parton = default["samples"]["signal"]["xsec_pb"]
    assert default["generation"]["level"] == "parton"
    selected = 0.2508  # the default's signal selection at parton level (results/tables/normalisation)
    assert default["luminosity_fb"] * 1e3 * parton * selected == pytest.approx(208.0, rel=0.01)
    for name in ("fsr", "methods", "mass_scan", "measured_recoil"):
        cfg = load_config(REPO / f"config/{name}.yaml")
        assert cfg["samples"]["signal"]["xsec_pb"] == parton, name
    paper = load_config(REPO / "config/paper.yaml")
    assert paper["generation"]["level"] == "hadron" and paper["samples"]["signal"]["xsec_pb"] == paper_xsec
    methods = load_config(REPO / "config/methods.yaml")
    vbf_physical = 3.90e-4
    assert methods["multiclass_samples"]["signal_vbf"]["xsec_pb"] == pytest.approx(
        vbf_physical * parton / physical, rel=2e-3
    )
    assert paper["multiclass_samples"]["signal_vbf"]["xsec_pb"] == pytest.approx(
        vbf_physical * paper_xsec / physical, rel=2e-3
    )
    assert load_config(REPO / "config/ci.yaml")["samples"]["signal"]["xsec_pb"] == physical


def test_measured_recoil_overlay_changes_the_background_shower_alone():
    """config/measured_recoil.yaml: the qqbar -> Z gamma background showered as ATLAS' measured recoil asks
    (power shower, no damping, no veto; docs/atlas_zgamma_recoil.py), the k_factor scaled by Pythia's selected
    LO cross-sections with the two showers (616.4 and 627.6 fb) so that the paper's 851 k are kept; every
    other key as the default's."""
    default = load_config(REPO / "config/config.yaml")
    overlay = load_config(REPO / "config/measured_recoil.yaml")
    assert overlay["generation"]["isr_max"] == "power" and overlay["generation"]["isr_veto_ht"] is None
    assert default["generation"]["isr_max"] == "power_damped" and default["generation"]["isr_veto_ht"] == 2.0
    k, k_default = (c["samples"]["background"].pop("k_factor") for c in (overlay, default))
    assert k == pytest.approx(k_default * 616.4 / 627.6, abs=0.005)
    for c in (overlay, default):
        for key in ("isr_max", "isr_veto_ht"):
            c["generation"].pop(key)
    assert overlay == default
