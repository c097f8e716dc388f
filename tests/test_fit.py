"""Tests of hzg.fit (pyhf workspace, profile-likelihood fit, significance, limit, ranking) and hzg.fit_plots."""
from __future__ import annotations

import json

import numpy as np
import pyhf
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from hzg import fit, fit_plots

NO_SYST = {"luminosity": None, "signal_xsec": None, "background_xsec": None, "background_norm": "constrained",
           "mc_stat": False, "shape": []}


def one_bin(s: float, b: float, sumw2: tuple[float, float] = (0.0, 0.0)) -> fit.Templates:
    """A counting experiment: one category with one mass bin."""
    return fit.Templates(edges=[120.0, 130.0], categories=["bin0"], signal={"bin0": [s]}, background={"bin0": [b]},
                         signal_sumw2={"bin0": [sumw2[0]]}, background_sumw2={"bin0": [sumw2[1]]})


def small_toy() -> fit.Templates:
    """Two categories of six 5 GeV bins around the peak, with a photon energy-scale variation."""
    return fit.toy_templates(n_categories=2, edges=np.linspace(110.0, 140.0, 7), signal_total=60.0,
                             background_total=3000.0, signal_weight=0.01, background_weight=0.5, energy_scale=0.01)


def asimov_z(s: float, b: float) -> float:
    """Z = sqrt(2 [(s + b) ln(1 + s/b) - s]), written out here independently of hzg.metrics."""
    return float(np.sqrt(2.0 * ((s + b) * np.log1p(s / b) - s)))


@pytest.mark.parametrize(("s", "b"), [(10.0, 100.0), (50.0, 30.0), (3.0, 2000.0)])
def test_discovery_significance_matches_asimov_formula(s: float, b: float) -> None:
    z = fit.discovery_significance(fit.build_workspace(one_bin(s, b), NO_SYST))
    assert z == pytest.approx(asimov_z(s, b), rel=0.01)


def test_mu_interval_without_systematics_is_the_poisson_likelihood_crossing() -> None:
    s, b = 20.0, 50.0
    n = s + b  # Asimov observation at mu = 1

    def q(mu: float) -> float:  # -2 Delta ln L of Poisson(n | mu s + b), minimum at mu = 1
        lam = mu * s + b
        return 2.0 * (lam - n - n * np.log(lam / n)) - 1.0

    up, down = brentq(q, 1.0, 5.0) - 1.0, 1.0 - brentq(q, -2.0, 1.0)
    result = fit.fit_mu(fit.build_workspace(one_bin(s, b), NO_SYST))
    assert result["mu_hat"] == pytest.approx(1.0, abs=1e-4)
    assert result["err_up"] == pytest.approx(up, rel=1e-3)
    assert result["err_down"] == pytest.approx(down, rel=1e-3)
    assert up > down  # the Poisson interval is asymmetric; the Hessian one is the symmetric sqrt(n) / s
    assert result["err_hesse"] == pytest.approx(np.sqrt(n) / s, rel=1e-3)
    assert not any(result["limited_by_bounds"].values())
    scan = np.asarray(result["scan"]["delta_2nll"])
    assert scan.min() == pytest.approx(0.0, abs=1e-6) and scan.max() > 3.0
    assert np.allclose(scan, [q(m) + 1.0 for m in result["scan"]["mu"]], atol=1e-5)


def test_interval_stopped_by_poi_bounds_is_flagged() -> None:
    result = fit.fit_mu(fit.build_workspace(one_bin(20.0, 50.0), NO_SYST), poi_bounds=(0.0, 1.2))
    assert result["limited_by_bounds"] == {"up": True, "down": False}
    assert result["err_up"] == pytest.approx(0.2)


def test_systematics_widen_the_interval_and_stat_only_removes_them() -> None:
    toy = small_toy()
    syst = {"luminosity": 0.02, "signal_xsec": 0.05, "background_xsec": 0.10, "background_norm": "constrained",
            "mc_stat": True, "shape": ["photon_energy_scale"]}
    full = fit.build_workspace(toy, syst)
    stat = fit.stat_only(full)
    mods = {m["type"] for ch in stat["channels"] for smp in ch["samples"] for m in smp["modifiers"]}
    assert mods == {"normfactor"}
    assert [p["name"] for p in stat["measurements"][0]["config"]["parameters"]] == ["mu"]
    assert stat["observations"] == full["observations"]
    with_syst, stat_only = fit.fit_mu(full), fit.fit_mu(stat)
    reference = fit.fit_mu(fit.build_workspace(toy, NO_SYST))
    width = {k: r["err_up"] + r["err_down"] for k, r in (("syst", with_syst), ("stat", stat_only), ("ref", reference))}
    assert width["syst"] > 1.1 * width["stat"]
    assert width["stat"] == pytest.approx(width["ref"], rel=1e-4)
    pulls = {p["name"]: p for p in with_syst["parameters"]}
    assert pulls["background_xsec"]["pull"] == pytest.approx(0.0, abs=1e-3)  # Asimov: no pulls ...
    assert 0 < pulls["photon_energy_scale"]["pull_error"] <= 1.0 + 1e-3  # ... and no constraint beyond the prior
    assert pulls["mu"]["pull"] is None  # unconstrained


def test_modifiers_follow_the_systematics_config() -> None:
    syst = {"luminosity": 0.016, "signal_xsec": 0.05, "background_xsec": 0.05, "background_norm": "free",
            "mc_stat": True, "shape": ["photon_energy_scale"]}
    spec = fit.build_workspace(small_toy(), syst)
    by_sample = {smp["name"]: {(m["name"], m["type"]) for m in smp["modifiers"]} for smp in spec["channels"][0]["samples"]}
    assert by_sample["signal"] == {("mu", "normfactor"), ("luminosity", "normsys"), ("signal_xsec", "normsys"),
                                   ("photon_energy_scale", "histosys"), ("staterror_bin0", "staterror")}
    assert by_sample["background"] == {("bkg_norm", "normfactor"), ("photon_energy_scale", "histosys"),
                                       ("staterror_bin0", "staterror")}  # free norm: no lumi, no xsec
    constrained = fit.build_workspace(small_toy(), syst | {"background_norm": "constrained"})
    bkg = {m["name"] for m in constrained["channels"][0]["samples"][1]["modifiers"]}
    assert {"luminosity", "background_xsec"} <= bkg and "bkg_norm" not in bkg
    with pytest.raises(ValueError, match="unknown key"):
        fit.build_workspace(small_toy(), {"lumi": 0.02})
    with pytest.raises(ValueError, match="no variation"):
        fit.build_workspace(small_toy(), {"shape": ["muon_momentum_scale"]})


def test_workspace_validates_and_round_trips() -> None:
    toy = small_toy()
    spec = fit.build_workspace(toy, {"shape": ["photon_energy_scale"], "signal_xsec": 0.05}, asimov_mu=2.0)
    ws = pyhf.Workspace(spec)
    again = pyhf.Workspace(json.loads(json.dumps(spec)))
    assert again == ws
    model = again.model()
    assert model.config.poi_name == "mu"
    assert np.allclose(again.data(model, include_auxdata=False),
                       np.concatenate([2.0 * toy.signal[c] + toy.background[c] for c in sorted(toy.categories)]))
    # the observations are the Asimov data of the model at mu = 2 with nominal nuisance parameters
    assert np.allclose(fit.asimov_data(fit._model(ws), 2.0), ws.data(fit._model(ws)))
    assert fit.Templates.from_dict(json.loads(json.dumps(toy.to_dict()))).to_dict() == toy.to_dict()
    bad = toy.to_dict()
    bad["background"]["bin1"][3] = -1.0
    with pytest.raises(ValueError, match=r"background\[bin1\] bin 3"):
        fit.Templates.from_dict(bad)


def test_upper_limit_on_background_only_asimov() -> None:
    s, b = 50.0, 10000.0
    spec = fit.build_workspace(one_bin(s, b), NO_SYST)
    limit = fit.upper_limit(spec)
    # median expected CLs limit (qtilde, asymptotics) on background-only Asimov data: CLs = 2 (1 - Phi(sqrt(q)))
    # = 0.05 with q(mu) = -2 ln [L(mu) / L(0)] = 2 [mu s - b ln(1 + mu s / b)] for n = b, exactly
    z = norm.isf(0.025)
    exact = brentq(lambda mu: 2.0 * (mu * s - b * np.log1p(mu * s / b)) - z**2, 1e-3, 100.0)
    assert limit > 0
    assert limit == pytest.approx(exact, rel=2e-3)
    # 1.96 sqrt(b) / s is the Gaussian approximation with sigma_mu taken at mu = 0; at the limit mu s ~ 1 % of b,
    # so the Poisson likelihood differs from it at the per-cent level: a loose tolerance
    assert limit == pytest.approx(z * np.sqrt(b) / s, rel=0.02)
    band = fit.expected_limit_band(spec)
    assert np.all(np.diff(band) > 0) and band[2] == pytest.approx(limit, rel=1e-3)


def test_ranking_lists_every_parameter_and_puts_the_largest_first() -> None:
    syst = {"luminosity": 0.01, "signal_xsec": 0.30, "background_xsec": 0.02, "background_norm": "constrained",
            "mc_stat": True, "shape": ["photon_energy_scale"]}
    spec = fit.build_workspace(small_toy(), syst)
    result = fit.fit_mu(spec)
    ranked = fit.ranking(spec, result, prefit=True)
    expected = {p["name"] for p in result["parameters"] if p["name"] != "mu" and not p["fixed"]}
    assert {r["name"] for r in ranked} == expected and len(ranked) == len(expected)
    assert ranked[0]["name"] == "signal_xsec"
    assert ranked[0]["postfit_up"] < 0 < ranked[0]["postfit_down"]  # more signal per mu: smaller mu
    impacts = [r["impact"] for r in ranked]
    assert impacts == sorted(impacts, reverse=True)
    # signal_xsec is not constrained by the data: its impact is that of a 30 % signal normalisation shift
    assert ranked[0]["postfit_up"] == pytest.approx(1.0 / 1.3 - 1.0, rel=0.05)
    # the fit's own covariance, handed over, gives the same ranking as computing it again
    fitted, cov = fit.fit_with_covariance(spec)
    assert fitted == result
    assert fit.ranking(spec, fitted, prefit=True, covariance=cov) == ranked


def test_scaled_optimizer_finds_pyhf_scipy_minimum() -> None:
    spec = fit.build_workspace(small_toy(), {"background_xsec": 0.1, "background_norm": "constrained",
                                             "shape": ["photon_energy_scale"]})
    ws = pyhf.Workspace(spec)
    pyhf.set_backend("numpy", "scipy")
    model = fit._model(ws)
    data = ws.data(model)
    ref_pars, ref_nll = pyhf.infer.mle.fixed_poi_fit(2.5, data, model, return_fitted_val=True)
    fitter = fit._setup(spec, None)  # switches to the ScaledOptimizer
    pars, nll = fitter.fixed_fit(model.config.poi_index, 2.5, model.config.suggested_init())
    assert nll == pytest.approx(float(ref_nll), abs=1e-5)
    assert np.allclose(pars, ref_pars, atol=2e-3)
    batch = fit.twice_nll_batch(model, data, np.stack([pars, ref_pars]))
    assert batch == pytest.approx([float(-2 * model.logpdf(p, data)[0]) for p in (pars, ref_pars)], abs=1e-9)


def test_plots_are_written(tmp_path) -> None:
    toy = small_toy()
    spec = fit.build_workspace(toy, {"shape": ["photon_energy_scale"], "signal_xsec": 0.05, "mc_stat": False})
    result = fit.fit_mu(spec)
    post = fit.category_yields(spec, fit.bestfit(result))["bin1"]
    assert np.allclose(post["signal"] + post["background"], post["data"], rtol=1e-4)  # Asimov: post-fit = data
    paths = fit_plots.mass_fit(post, toy.edges, tmp_path / "postfit_bin1", 138, 13, "bin1", "Post-fit")
    paths += fit_plots.likelihood_scan(result, tmp_path / "scan", 138, 13, stat_only=fit.fit_mu(fit.stat_only(spec)))
    paths += fit_plots.pulls(result, tmp_path / "pulls", 138, 13)
    paths += fit_plots.ranking(fit.ranking(spec, result), tmp_path / "ranking", 138, 13)
    assert len(paths) == 8 and all(p.stat().st_size > 1000 for p in paths)
