"""Tests of hzg.results.fit (background shapes, F-test, spurious signal, workspace, inference with
pyhf/cabinetry),
hzg.results.fit.templates, the fit tables and plots. Toys live in tests/fit_toys.py."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pyhf
import pytest
from fit_toys import exp_hist, poisson_nll, signal_hist, toy_templates, turnon_hist
from scipy.integrate import quad
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.stats import chi2, norm

from hzg import io
from hzg.results import fit, tables
from hzg.results.fit import plots, templates
from hzg.results.fit import inference, shapes
from hzg.results.fit.results import Block, FitFlags

FINE = np.arange(105.0, 171.0, 1.0)
NO_SYST = {
    "luminosity": None,
    "signal_xsec": None,
    "signal_mc_stat": False,
    "spurious_signal": False,
    "shape": [],
}


# ------------------------------------------------------------------------------------------- shapes


def test_function_integrals_are_exact_and_normalised() -> None:
    # each Bernstein basis integrates to 1 on the window: the coefficients are yields
    for n in range(5):
        for k in range(n + 1):
            c = np.zeros(n + 1)
            c[k] = 1.0
            assert shapes.bernstein_cdf(np.array([105.0, 170.0]), 105, 170, c)[-1] == pytest.approx(1.0)
    # order 0 is flat; exponential and power law against their closed forms
    assert shapes.bernstein_cdf(np.array([118.0]), 105, 170, [3.0])[0] == pytest.approx(3.0 * 13 / 65)
    a, m = 0.04, 130.0
    assert shapes.exponential_cdf(np.array([m]), 105, 170, 10.0, a)[0] == pytest.approx(
        10.0 * (1 - np.exp(-a * 25)) / (1 - np.exp(-a * 65))
    )
    assert shapes.exponential_cdf(np.array([m]), 105, 170, 10.0, 0.0)[0] == pytest.approx(10.0 * 25 / 65)
    p = 4.0
    assert shapes.power_law_cdf(np.array([m]), 105, 170, 10.0, p)[0] == pytest.approx(
        10.0 * (m ** (1 - p) - 105 ** (1 - p)) / (170 ** (1 - p) - 105 ** (1 - p))
    )
    assert shapes.power_law_cdf(np.array([m]), 105, 170, 10.0, 1.0)[0] == pytest.approx(
        10.0 * np.log(m / 105) / np.log(170 / 105)
    )
    with pytest.raises(ValueError, match="unknown background function"):
        shapes.cdf_of("landau", 105, 170)


@pytest.mark.parametrize("core", ["exponential", "power_law"])
def test_turnon_functions_integrate_to_the_numerical_integral(core: str) -> None:
    shape = 0.03 if core == "exponential" else 4.0
    cdf = shapes.cdf_of(f"{core}_turnon", 105, 170)(FINE, 10.0, shape, 109.0, 2.5)
    density = lambda x: shapes.turnon_density(np.array([x]), 105, core, shape, 109.0, 2.5)[0]  # noqa: E731
    total = quad(density, 105, 170, points=[109.0])[0]
    assert cdf[0] == 0.0 and cdf[-1] == pytest.approx(10.0, rel=1e-12)
    assert cdf[12] == pytest.approx(10.0 * quad(density, 105, 117, points=[109.0])[0] / total, rel=1e-9)
    # a turn-on spectrum: the turn-on function describes it, the plain ones do not, and the choice says so
    counts = np.diff(shapes.cdf_of(f"{core}_turnon", 105, 170)(FINE, 40000.0, shape, 109.0, 2.5))
    choice = shapes.choose_background(counts, counts, FINE, signal_hist(FINE, 1.0))
    by_name = {c.function: c for c in choice.candidates}
    assert by_name[f"{core}_turnon"].background_fit.deviance < 1e-3
    assert by_name[core].background_fit.deviance > 100.0
    assert choice.chosen.passes and choice.chosen.n_parameters <= 4
    # a criterion that forgives everything: the fit quality still keeps the plain function out
    lax = shapes.choose_background(counts, counts, FINE, signal_hist(FINE, 1.0), mc_tolerance=1e9)
    assert all(c.passes for c in lax.candidates) and lax.chosen.function != core and lax.chosen.gof_p >= 0.01


@pytest.mark.parametrize(
    ("coefficients", "order"), [((4000.0, 9000.0, 2000.0), 2), ((6000.0, 1000.0, 6000.0, 500.0), 3)]
)
def test_f_test_picks_the_generating_order(coefficients: tuple[float, ...], order: int) -> None:
    mu = np.diff(shapes.bernstein_cdf(FINE, 105, 170, coefficients))
    counts = np.random.default_rng(7).poisson(mu).astype(float)
    test, chosen = shapes.f_test(counts, counts, FINE, max_order=5)
    assert test.order == order and chosen.n_parameters == order + 1 and chosen.valid
    assert test.orders == (1, 2, 3, 4, 5) and len(test.p_values) == 4
    assert test.p_values[order - 2] < 1e-6 if order > 1 else True  # the step to the true order is significant
    assert not test.capped
    # a spectrum of a higher order than the test may try: it reaches its cap, and says so
    capped, _ = shapes.f_test(counts, counts, FINE, max_order=order - 1)
    assert capped.order == order - 1 and capped.capped


def test_weighted_fit_scales_each_bin() -> None:
    # the same spectrum as 1000 events of weight 2 and as 2000 of weight 1: same yield, errors sqrt(2) apart
    mu = exp_hist(FINE, 2000.0, 0.03)
    unit = shapes.fit_function(mu, mu, FINE, "exponential")
    weighted = shapes.fit_function(mu, 2.0 * mu, FINE, "exponential")
    assert np.allclose(shapes.bin_scales(mu, 2.0 * mu), 0.5)
    assert weighted.parameters == pytest.approx(unit.parameters, rel=1e-4)
    assert weighted.parameters[0] == pytest.approx(2000.0, rel=1e-4)
    assert weighted.errors[1] == pytest.approx(np.sqrt(2.0) * unit.errors[1], rel=0.02)
    with pytest.raises(ValueError, match="must have 65 bins"):
        shapes.fit_function(mu[:-1], mu[:-1], FINE, "exponential")


def test_bin_scales_are_iminuits_with_the_median_for_empty_bins() -> None:
    counts, sumw2 = np.array([4.0, 0.0, 10.0, 3.0, -1.0]), np.array([8.0, 0.0, 10.0, 9.0, 1.0])
    # the median of the filled bins (0.5, 1, 1/3 and 0 for the negative sum, clipped) for the empty one
    assert shapes.bin_scales(counts, sumw2) == pytest.approx([0.5, 5 / 12, 1.0, 1 / 3, 0.0])
    assert np.array_equal(shapes.bin_scales(np.zeros(3), np.zeros(3)), np.ones(3))
    # the deviance of a fit is the Bohm-Zech one, bin by bin: 2 sum_i s_i (mu_i - n_i + n_i ln(n_i / mu_i))
    rng = np.random.default_rng(3)
    weight = np.where(np.abs(0.5 * (FINE[1:] + FINE[:-1]) - 125.0) < 10.0, 1.0, 5.0)  # 1 at the peak, 5 out
    n = rng.poisson(exp_hist(FINE, 3000.0, 0.03) / weight)
    counts, sumw2 = n * weight, n * weight**2
    fit = shapes.fit_function(counts, sumw2, FINE, "exponential")
    mu, s = fit.yields(FINE), shapes.bin_scales(counts, sumw2)
    terms = mu - counts + np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1.0) / mu), 0.0)
    assert fit.deviance == pytest.approx(2.0 * np.sum(s * terms), rel=1e-9)


def test_goodness_of_fit_is_calibrated_for_weights_that_vary_across_the_window() -> None:
    """Toys of an exponential spectrum generated with a bias towards 125 GeV (weights 1 / bias, spread
    log-normally): the exponential's chi2 p-value falls below 0.05 in about 5 % of them (one scale for the
    whole window, as before: 31 % in 200 such toys)."""
    rng = np.random.default_rng(1)
    p_values = []
    for _ in range(60):
        m = 105.0 + rng.exponential(1 / 0.03, size=12000)
        m = m[m < 170.0]
        bias = 1 + 4 * np.exp(-0.5 * ((m - 125.0) / 8.0) ** 2)
        keep = rng.random(m.size) < bias / 5.0
        m, bias = m[keep], bias[keep]
        w = 10.0 / bias * rng.lognormal(0.0, 0.7, size=m.size)
        counts, sumw2 = np.histogram(m, FINE, weights=w)[0], np.histogram(m, FINE, weights=w * w)[0]
        fit = shapes.fit_function(counts, sumw2, FINE, "exponential")
        p_values.append(chi2.sf(fit.deviance, FINE.size - 1 - 2))
    assert np.mean(np.array(p_values) < 0.05) < 0.15


def test_spurious_signal_of_a_flat_toy_is_consistent_with_zero_and_of_a_sculpted_one_is_not() -> None:
    rng = np.random.default_rng(11)
    shape = signal_hist(FINE, 1.0)
    smooth = exp_hist(FINE, 50000.0, 0.03)
    flat = rng.poisson(smooth).astype(float)
    result = shapes.spurious_signal(
        flat, flat, FINE, shape, shapes.fit_function(flat, flat, FINE, "exponential")
    )
    assert abs(result.signal) < 2.5 * result.signal_mc_error
    assert result.sigma_signal == pytest.approx(result.signal_mc_error, rel=0.1)  # MC = data statistics here
    # a classifier that sculpts a broad bump under the peak: the exponential cannot follow it
    bump = 1500.0 * np.diff(norm(127.0, 6.0).cdf(FINE))
    sculpted = rng.poisson(smooth + bump).astype(float)
    biased = shapes.spurious_signal(
        sculpted, sculpted, FINE, shape, shapes.fit_function(sculpted, sculpted, FINE, "exponential")
    )
    assert biased.signal > 4.0 * biased.signal_mc_error and biased.signal > 200.0
    assert not biased.passes and biased.ratio == pytest.approx(biased.signal / biased.sigma_signal)
    assert biased.zeta == pytest.approx(biased.signal - 2.0 * biased.signal_mc_error) and biased.zeta > 0
    # the relaxed criterion forgives the MC error, no more
    relaxed = shapes.spurious_signal(flat, flat, FINE, shape, result.background_fit, mc_tolerance=2.0)
    assert relaxed.passes or abs(result.signal) - 2 * result.signal_mc_error >= 0.2 * result.sigma_signal
    strict = shapes.spurious_signal(flat, flat, FINE, shape, result.background_fit, mc_tolerance=0.0)
    assert strict.zeta == pytest.approx(abs(strict.signal))  # strict: the systematic is |S_spur|


def test_asimov_signal_error_is_the_hesse_error_of_the_asimov_fit() -> None:
    # sigma_S from the Fisher information at the Asimov point: MINUIT's HESSE of S + B fitted to the Asimov
    shape = signal_hist(FINE, 1.0, width=1.9)
    falling = exp_hist(FINE, 50000.0, 0.03)
    turnon = turnon_hist(FINE)
    for function, mu in (("exponential", falling), ("power_law", falling), ("exponential_turnon", turnon)):
        fitted = shapes.fit_function(mu, mu, FINE, function)
        hesse = shapes._signal_plus_background(
            fitted.yields(FINE), fitted.yields(FINE), FINE, shape / shape.sum(), fitted
        )
        assert hesse.fmin.has_posdef_covar, function
        assert shapes.asimov_signal_error(FINE, shape / shape.sum(), fitted) == pytest.approx(
            hesse.errors["S"], rel=0.02
        ), function


def test_background_choice_does_not_move_with_the_last_digits_of_its_input() -> None:
    # a turn-on background whose fifth-order Bernstein fit puts a coefficient on its limit of 0: MINUIT's
    # HESSE of the Asimov S + B fit was then not positive definite, and sigma_S moved by 10-50 % when the
    # histogram changed in its 13th digit, which changed the function chosen (two runs of the same workflow
    # chose differently). The Fisher-information sigma_S and the choice must not move.
    counts = np.random.default_rng(7).poisson(turnon_hist(FINE)).astype(float)
    shape = signal_hist(FINE, 1.0, width=1.9)
    runs = []
    for k in range(4):
        jitter = 1.0 + 1e-13 * np.random.default_rng(k).standard_normal(counts.size) * (k > 0)
        runs.append(shapes.choose_background(counts * jitter, counts, FINE, shape))
    bern = next(c for c in runs[0].candidates if c.function == "bernstein").background_fit
    assert any(shapes._on_limit(v, e, (0.0, None)) for v, e in zip(bern.parameters, bern.errors))
    assert len({r.chosen.function for r in runs}) == 1
    for r in runs[1:]:
        for a, b in zip(r.candidates, runs[0].candidates):
            assert a.sigma_signal == pytest.approx(b.sigma_signal, rel=1e-4), a.function
            assert a.ratio == pytest.approx(b.ratio, rel=1e-3, abs=1e-3), a.function


def test_relaxed_criterion_with_limited_weighted_mc() -> None:
    # background MC of weight 50 per event (as the default's ~57): dS_MC ~ sqrt(50) sigma_S. The flat toys'
    # S_spur scatter by dS_MC (so the sandwich error is right), the strict criterion fails them at random, the
    # relaxed one passes them with zeta = 0, and every one is flagged MC-limited
    shape, smooth, w = signal_hist(FINE, 1.0), exp_hist(FINE, 200000.0, 0.03), 50.0
    rng = np.random.default_rng(5)
    fitted, errors = [], []
    for _ in range(40):
        mc = rng.poisson(smooth / w) * w
        bkg = shapes.fit_function(mc, mc * w, FINE, "exponential")
        r = shapes.spurious_signal(mc, mc * w, FINE, shape, bkg, mc_tolerance=2.0)
        assert r.mc_limited and r.signal_mc_error == pytest.approx(np.sqrt(w) * r.sigma_signal, rel=0.15)
        assert (r.zeta == 0.0) == (abs(r.signal) <= 2.0 * r.signal_mc_error) and r.passes == (
            r.zeta < 0.2 * r.sigma_signal
        )
        fitted.append(r.signal)
        errors.append(r.signal_mc_error)
    pulls = np.asarray(fitted) / np.asarray(errors)
    assert 0.7 < np.std(pulls) < 1.35 and abs(np.mean(pulls)) < 0.5
    assert np.mean(np.abs(pulls) < 2.0) > 0.85  # the relaxed criterion: zeta = 0 for ~95 %
    # a sculpted bump far above the MC noise is still caught: zeta > 0, the systematic is non-zero
    bump = 20000.0 * np.diff(norm(127.0, 6.0).cdf(FINE))
    mc = rng.poisson((smooth + bump) / w) * w
    r = shapes.spurious_signal(mc, mc * w, FINE, shape, shapes.fit_function(mc, mc * w, FINE, "exponential"))
    assert r.zeta > 0 and not r.passes and r.zeta == pytest.approx(r.signal - 2 * r.signal_mc_error)


def test_mc_error_follows_the_per_bin_weights() -> None:
    # weights 1 below 125 GeV, 100 above: one scale k = sum w^2 / sum w for all bins is wrong for the peak;
    # the sandwich error with each bin's sum of w^2 matches the toys' scatter
    shape, smooth = signal_hist(FINE, 1.0), exp_hist(FINE, 100000.0, 0.03)
    weight = np.where(FINE[:-1] < 125.0, 1.0, 100.0)
    rng = np.random.default_rng(3)
    fitted, errors = [], []
    for _ in range(60):
        mc = rng.poisson(smooth / weight) * weight
        bkg = shapes.fit_function(mc, mc * weight, FINE, "exponential")
        r = shapes.spurious_signal(mc, mc * weight, FINE, shape, bkg)
        fitted.append(r.signal)
        errors.append(r.signal_mc_error)
    assert np.std(fitted) == pytest.approx(np.mean(errors), rel=0.25)


def test_sandwich_covariance_is_nan_where_the_model_overflows() -> None:
    """A model that is not finite at a derivative step (a steep exponential at its limit) gives an all-NaN
    covariance, not numpy's 'SVD did not converge', and the spurious-signal MC error falls back to HESSE."""
    x = np.linspace(0.0, 1.0, 10)

    def model(par: np.ndarray) -> np.ndarray:
        return par[0] * np.exp(par[1] * x) if par[1] < 700.0 else np.full(x.size, np.inf)

    cov = shapes.sandwich_covariance(model, np.array([1.0, 700.0 - 1e-4]), np.array([0.1, 1.0]), np.ones(10))
    assert cov.shape == (2, 2) and np.all(np.isnan(cov))
    finite = shapes.sandwich_covariance(model, np.array([2.0, 0.5]), np.array([0.1, 0.1]), model([2.0, 0.5]))
    assert np.all(np.isfinite(finite)) and finite[0, 0] > 0


def test_choice_takes_the_fewest_parameters_that_pass() -> None:
    counts = exp_hist(FINE, 50000.0, 0.03)  # exactly exponential: exponential passes with 2 parameters
    choice = shapes.choose_background(counts, counts, FINE, signal_hist(FINE, 1.0))
    assert (
        choice.chosen.function == "exponential" and choice.chosen.passes
    )  # 2 parameters beat the turn-ons' 4
    assert abs(choice.chosen.signal) < 1e-2 * choice.chosen.sigma_signal
    assert {c.function for c in choice.candidates} == set(shapes.FUNCTIONS)
    payload = json.loads(io.dumps_json(choice.to_dict()))
    assert payload["function"] == "exponential" and len(payload["candidates"]) == len(shapes.FUNCTIONS)
    with pytest.raises(ValueError, match="functions must be"):
        shapes.choose_background(counts, counts, FINE, signal_hist(FINE, 1.0), functions=["landau"])


def test_dscb_signal_fit_recovers_the_generating_shape() -> None:
    truth = {"mean": 124.6, "sigma": 1.7, "alpha_lo": 1.2, "n_lo": 4.0, "alpha_hi": 1.8, "n_hi": 8.0}
    expected = np.diff(shapes.dscb_cdf(FINE, 105.0, 170.0, 20000.0, *truth.values()))

    def density(x):
        return shapes.dscb_density(np.array([x]), *truth.values())[0]

    assert expected[30] / 20000.0 == pytest.approx(
        quad(density, 135, 136)[0] / quad(density, 105, 170, points=[124.6])[0], rel=1e-6
    )  # the binned integral is exact
    w = 0.05  # weighted signal MC: 400000 events of weight 0.05
    counts = np.random.default_rng(2).poisson(expected / w) * w
    template, result = shapes.dscb_template(counts, counts * w, FINE)
    values = dict(zip(shapes.DSCB_PARAMETERS, result.parameters))
    errors = dict(zip(shapes.DSCB_PARAMETERS, result.errors))
    assert result.valid and result.function == "dscb"
    for name in ("mean", "sigma", "alpha_lo", "alpha_hi"):
        assert abs(values[name] - truth[name]) < 4.0 * errors[name], name
    assert template.sum() == pytest.approx(counts.sum()) and np.all(template >= 0)
    assert np.max(np.abs(template - expected)) < 0.02 * expected.max()


# ------------------------------------------------------------------------------------------- workspace


def test_workspace_per_category_background_and_signal_systematics() -> None:
    toy = toy_templates(spurious=3.0)
    spec = fit.build_workspace(toy, {"shape": ["photon_energy_scale", "photon_resolution"]})
    mods = {
        (ch["name"], s["name"]): {(m["name"], m["type"]) for m in s["modifiers"]}
        for ch in spec["channels"]
        for s in ch["samples"]
    }
    assert mods[("bin0", "signal")] == {
        ("mu", "normfactor"),
        ("luminosity", "normsys"),
        ("signal_xsec", "normsys"),
        ("signal_mc_stat_bin0", "normsys"),
        ("photon_energy_scale", "histosys"),
        ("photon_resolution", "histosys"),
    }
    assert mods[("bin1", "background")] == {
        ("bkg_norm_bin1", "normfactor"),
        ("spurious_signal_bin1", "histosys"),
    }
    sig_mods = {m["name"]: m["data"] for m in spec["channels"][0]["samples"][0]["modifiers"]}
    assert sig_mods["signal_xsec"] == {"hi": 1.09, "lo": 0.91} and sig_mods["luminosity"]["hi"] == 1.016
    # the spurious term is |S_spur| x the unit signal shape on the background
    bkg = spec["channels"][0]["samples"][1]
    spur = next(m for m in bkg["modifiers"] if m["type"] == "histosys")["data"]
    assert np.sum(np.subtract(spur["hi_data"], bkg["data"])) == pytest.approx(3.0)
    # observations: the MC, not the model
    assert spec["observations"][0]["data"] == pytest.approx(
        (toy.signal["bin0"] + toy.background_mc["bin0"]).tolist()
    )
    stat = fit.stat_only(spec)
    assert {m["type"] for ch in stat["channels"] for s in ch["samples"] for m in s["modifiers"]} == {
        "normfactor"
    }
    # a variation is pruned where the nominal holds no signal (an MC event migrating into an empty bin)
    empty = toy.to_dict()
    empty["signal"]["bin0"][0] = 0.0
    empty["signal_variations"]["bin0"]["photon_energy_scale"][0][0] = 0.3
    pruned = fit.build_workspace(fit.Templates.from_dict(empty), {"shape": ["photon_energy_scale"]})
    pes = next(
        m for m in pruned["channels"][0]["samples"][0]["modifiers"] if m["name"] == "photon_energy_scale"
    )
    assert pes["data"]["hi_data"][0] == 0.0 and pes["data"]["hi_data"][13] > 0
    with pytest.raises(ValueError, match="unknown key"):
        fit.build_workspace(toy, {"lumi": 0.02})
    with pytest.raises(ValueError, match="no signal variation"):
        fit.build_workspace(toy, {"shape": ["muon_momentum_scale"]})


def test_spurious_parameter_bounds_keep_every_expectation_positive() -> None:
    toy = toy_templates(background=(20000.0, 30.0), spurious=40.0)  # S_spur larger than bin1's background
    spec = fit.build_workspace(toy)
    pars = {p["name"]: p for p in spec["measurements"][0]["config"]["parameters"]}
    reach = pars["spurious_signal_bin1"]["bounds"][0][1]
    assert 0 < reach < 5.0 and pars["spurious_signal_bin0"]["bounds"] == [[-5.0, 5.0]]
    model, _ = fit.model_and_data(spec)
    x = np.asarray(model.config.suggested_init(), float)
    x[model.config.par_slice("spurious_signal_bin1")] = -reach
    assert np.all(np.asarray(model.expected_actualdata(x)) > 0)


def test_signal_histosys_bounds_keep_the_expectation_non_negative() -> None:
    nominal = np.array([0.0, 1.0, 4.0, 1.0])
    up, down = np.array([0.0, 2.0, 2.0, 2.0]), np.array([0.5, 0.5, 3.0, 0.5])
    reach = fit.workspace.histosys_reach(nominal, up, down)
    assert reach == pytest.approx(0.9 * 2.0)  # up: 4 - 2 * (4 - 2) = 0 at alpha = 2
    assert np.all(nominal + reach * (up - nominal) >= 0) and np.all(nominal - reach * (nominal - down) >= 0)
    assert fit.workspace.histosys_reach(nominal, nominal + 1, nominal + 1) == 5.0
    # with background in the bin and mu up to 2, the bound follows the total expectation
    with_bkg = fit.workspace.histosys_reach(nominal, up, down, floor=1.0, scale=2.0)
    assert with_bkg == pytest.approx(0.9 * (2 * 4.0 + 1.0) / (2 * 2.0))
    spec = fit.build_workspace(toy_templates(resolution=0.5), {"shape": ["photon_resolution"]})
    bounds = {p["name"]: p["bounds"][0] for p in spec["measurements"][0]["config"]["parameters"]}
    assert 1.0 <= bounds["photon_resolution"][1] < 5.0


def test_templates_validate_and_round_trip() -> None:
    toy = toy_templates(seed=3)
    again = fit.Templates.from_dict(json.loads(io.dumps_json(toy.to_dict())))
    assert again.to_dict() == toy.to_dict()
    bad = toy.to_dict()
    bad["signal"]["bin1"][3] = -1.0
    with pytest.raises(ValueError, match=r"signal\[bin1\] bin 3"):
        fit.Templates.from_dict(bad)
    bad = toy.to_dict()
    bad["background_mc"]["bin0"][2] = -0.5  # negative generator weights may leave a negative MC bin: allowed
    fit.Templates.from_dict(bad)
    del bad["background"]
    with pytest.raises(ValueError, match="missing keys"):
        fit.Templates.from_dict(bad)


# ------------------------------------------------------------------------------------------- inference


def test_known_signal_is_recovered_exactly_on_asimov_and_within_errors_on_a_poisson_toy() -> None:
    spec = fit.build_workspace(toy_templates(mu_data=1.5), NO_SYST)
    result = fit.fit(spec)
    assert result.mu_hat == pytest.approx(1.5, abs=1e-3)
    assert result.flags.problems() == [] and result.flags.optimizer == "minuit"
    assert result.err_up > 0 and result.err_down > 0
    hits = 0
    for seed in range(4):
        toy = toy_templates(signal=(60.0, 60.0), seed=seed, mc_weight=1.0, mu_data=1.5)
        r = fit.fit(fit.build_workspace(toy, NO_SYST))
        pull = (r.mu_hat - 1.5) / (r.err_down if r.mu_hat > 1.5 else r.err_up)
        assert abs(pull) < 3.5
        hits += abs(pull) < 1.5
    assert hits >= 2


def test_mu_from_mc_with_large_weights_is_consistent_with_one_within_its_total_error() -> None:
    # background MC of weight 30 per event as data: its fluctuations are ~5x the data's, so mu-hat scatters
    # far beyond its statistical error; with the MC-statistical error (per-bin sum of w^2) the pulls are
    # normal
    pulls, raw = [], []
    for seed in range(40):
        toy = toy_templates(signal=(300.0, 100.0), seed=seed, mc_weight=30.0)
        spec = fit.build_workspace(toy, NO_SYST)
        result = inference.fit(spec)
        mc = fit.mc_stat_error(spec, result, toy.background_mc_sumw2)
        assert mc == pytest.approx(np.sqrt(30.0) * result.err_hesse, rel=0.25)
        pulls.append((result.mu_hat - 1.0) / np.hypot(result.err_hesse, mc))
        raw.append((result.mu_hat - 1.0) / result.err_hesse)
    assert 0.7 < np.std(pulls) < 1.3 and abs(np.mean(pulls)) < 0.5 and np.max(np.abs(pulls)) < 4.0
    assert np.std(raw) > 3.0  # the stat.-only error alone would not cover it
    # unit-weight MC: the MC error equals the statistical one (the same counts)
    toy = toy_templates(signal=(300.0, 100.0), seed=1, mc_weight=1.0)
    spec = fit.build_workspace(toy, NO_SYST)
    result = inference.fit(spec)
    assert fit.mc_stat_error(spec, result, toy.background_mc_sumw2) == pytest.approx(
        result.err_hesse, rel=0.1
    )
    blk = fit.block(spec, toy.background_mc, mc_sumw2=toy.background_mc_sumw2).to_dict()
    assert blk["err_mc_stat"] > 0 and abs(blk["pull_from_1"]) < 4.0


def test_minos_interval_and_cabinetry_scan_equal_an_independent_likelihood_scan() -> None:
    toy = toy_templates(signal=(40.0, 40.0), background=(4000.0, 400.0))
    spec = fit.build_workspace(toy, NO_SYST)
    data = fit.observations(toy)
    n_cat = len(toy.categories)

    def profiled(mu: float) -> float:
        res = minimize(
            lambda v: poisson_nll(mu, v, toy, data),
            np.ones(n_cat),
            method="L-BFGS-B",
            bounds=[(1e-3, 10)] * n_cat,
            options={"ftol": 1e-14, "gtol": 1e-10},
        )
        return float(res.fun)

    best = minimize_scalar(profiled, bounds=(0.0, 3.0), method="bounded", options={"xatol": 1e-6})
    q = lambda mu: profiled(mu) - best.fun - 1.0  # noqa: E731
    up, down = brentq(q, best.x, best.x + 1.0) - best.x, best.x - brentq(q, best.x - 1.0, best.x)
    result = fit.fit(spec)
    assert result.mu_hat == pytest.approx(best.x, abs=2e-3)
    assert result.err_up == pytest.approx(up, rel=0.01) and result.err_down == pytest.approx(down, rel=0.01)
    scan = fit.scan(spec, result, n_steps=5)
    for mu, delta in zip(scan.mu, scan.delta_2nll):
        assert delta == pytest.approx(profiled(mu) - best.fun, abs=0.02)
    # significance on the MC data: sqrt(q0) of the same likelihood
    z = fit.significance(spec).observed
    assert z == pytest.approx(np.sqrt(profiled(0.0) - best.fun), rel=0.01)


def test_expected_limit_matches_the_asymptotic_formula() -> None:
    toy = toy_templates(signal=(40.0, 40.0), background=(4000.0, 400.0))
    spec = fit.build_workspace(toy, NO_SYST)
    result = fit.limit(spec, toy.background_mc)
    # background-only Asimov: the median expected CLs limit is sigma * Phi^-1(1 - 0.05 / 2), sigma from
    # -2 Delta ln L = (mu / sigma)^2 at the limit (Cowan et al., eq. 89 with qtilde ~ q at the limit)
    data = fit.observations(toy, mu=0.0)

    def profiled(mu: float) -> float:
        res = minimize(
            lambda v: poisson_nll(mu, v, toy, data),
            np.ones(2),
            method="L-BFGS-B",
            bounds=[(1e-3, 10)] * 2,
            options={"ftol": 1e-14, "gtol": 1e-10},
        )
        return float(res.fun)

    base = profiled(0.0)
    exact = brentq(lambda mu: profiled(mu) - base - norm.isf(0.025) ** 2, 0.01, 10.0)
    assert result.converged and result.note is None
    assert result.band[2] == pytest.approx(exact, rel=0.03)
    assert result.expected == pytest.approx(result.band[2], rel=0.01)  # b-only data = Asimov here
    assert list(result.band) == sorted(result.band)
    with pytest.raises(ValueError, match="cl must lie"):
        fit.limit(spec, toy.background_mc, cl=1.5)


def test_limits_match_pyhf_s_own_root_search_on_a_sparse_grid() -> None:
    """The six-point grid's limits (with the background-only MC as data, and the expected band) agree with
    pyhf's toms748_scan, which searches each one to 1e-4; interpolating log CLs instead put them up to 6 %
    low on the default's workspaces (0.7 % at most now: xgboost_bce, stat. only)."""
    toy = toy_templates(spurious=2.0)
    spec = fit.stat_only(fit.build_workspace(toy))
    result = inference.limit(spec, toy.background_mc)
    model, data = inference.model_and_data(spec)
    b_only = np.concatenate(
        [np.clip(np.asarray(toy.background_mc[c], float), 0, None) for c in model.config.channels]
    )
    data = np.concatenate([b_only, data[model.config.nmaindata :]])
    bounds = model.config.suggested_bounds()
    bounds[model.config.poi_index] = (0.0, 100.0)
    observed, expected = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.01, 50.0, level=0.05, par_bounds=bounds, test_stat="qtilde", rtol=1e-4
    )
    # within 2 % everywhere (the log-CLs chords were 3.4 % low at the +1 sigma edge of this toy)
    assert result.expected == pytest.approx(float(observed), rel=0.02)
    assert list(result.band) == pytest.approx([float(x) for x in expected], rel=0.02)


def test_cached_optimizer_gives_pyhf_s_own_limit_with_fewer_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    toy = toy_templates(spurious=2.0)
    spec = fit.build_workspace(toy)
    calls = {"n": 0}
    real = pyhf.optimize.minuit_optimizer._minimize

    def counted(self, *args, **kwargs):
        calls["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pyhf.optimize.minuit_optimizer, "_minimize", counted)
    cached = inference.limit(spec, toy.background_mc)
    n_cached = calls["n"]
    plain = pyhf.optimize.minuit_optimizer
    monkeypatch.setattr(inference, "CachedMinuit", lambda **kw: plain(**kw))
    calls["n"] = 0
    reference = inference.limit(spec, toy.background_mc)
    assert cached.expected == pytest.approx(reference.expected, rel=1e-6)
    assert cached.band == pytest.approx(reference.band, rel=1e-6)
    assert n_cached < 0.6 * calls["n"]  # pyhf's hypotest repeats 3 of its 5 fits at every mu


def test_systematics_widen_the_interval_and_the_ranking_lists_them() -> None:
    toy = toy_templates(spurious=2.0)
    spec = fit.build_workspace(
        toy, {"shape": ["photon_energy_scale", "photon_resolution"], "signal_xsec": 0.3}
    )
    full, stat = fit.fit(spec), fit.fit(fit.stat_only(spec))
    assert full.err_up + full.err_down > 1.02 * (stat.err_up + stat.err_down)
    ranked = fit.ranking(spec, full, prefit=True)
    names = [r["name"] for r in ranked]
    assert set(names) == {
        n for n in full.labels if n != "mu" and not n.startswith(("bkg_norm_", "signal_mc_stat_"))
    }
    assert ranked[0]["name"] == "signal_xsec" and ranked[0]["postfit_up"] < 0 < ranked[0]["postfit_down"]
    assert ranked[0]["postfit_up"] == pytest.approx(1.0 / 1.3 - 1.0, rel=0.05)
    assert [r["impact"] for r in ranked] == sorted((r["impact"] for r in ranked), reverse=True)
    pulls = {p["name"]: p for p in full.to_dict()["parameters"]}
    assert pulls["mu"]["pull"] is None and pulls["bkg_norm_bin0"]["pull"] is None
    assert pulls["photon_energy_scale"]["pull"] == pytest.approx(0.0, abs=0.05)  # Asimov: no pull


def test_the_config_bounds_never_widen_the_workspace_s_physical_lower_bound_on_mu() -> None:
    """A workspace's lower bound on mu keeps every bin's expectation positive; the config's wider
    `fit.mu_bounds` (passed as poi_bounds) only narrows it. Data far below the background then stop at the
    bound, flagged, instead of a mu-hat whose model has negative bins (a review's demonstration)."""
    toy = toy_templates(signal=(60.0, 60.0), background=(4000.0, 400.0))
    spec = fit.build_workspace(toy, NO_SYST, poi_bounds=(-30.0, 30.0))
    model, _ = inference.model_and_data(spec)
    lo, hi = model.config.suggested_bounds()[model.config.poi_index]
    assert -30.0 < lo < 0.0 and hi == 30.0
    assert inference.par_bounds(model, (-30.0, 30.0))[model.config.poi_index] == (lo, hi)
    assert inference.par_bounds(model, (-1.0, 5.0))[model.config.poi_index] == (max(-1.0, lo), 5.0)
    low = json.loads(json.dumps(spec))
    for obs in low["observations"]:
        name = obs["name"]
        obs["data"] = np.clip(
            np.asarray(toy.background_mc[name]) - 1.05 * abs(lo) * np.asarray(toy.signal[name]), 0, None
        ).tolist()
    result = fit.fit(low, poi_bounds=(-30.0, 30.0))
    assert result.bestfit[result.poi_index] == pytest.approx(lo, abs=1e-3 * abs(lo))
    assert result.flags.limited_down


def test_flags_report_a_bounded_interval_and_the_scipy_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = fit.build_workspace(toy_templates(signal=(60.0, 60.0), background=(4000.0, 400.0)), NO_SYST)
    bounded = fit.fit(spec, poi_bounds=(0.5, 1.1))
    assert bounded.flags.limited_up and not bounded.flags.limited_down
    assert any("limited by bound" in p for p in bounded.flags.problems())
    reference = fit.fit(spec)

    def failing(*args, **kwargs):
        raise pyhf.exceptions.FailedMinimization(type("R", (), {"message": "forced", "success": False})())

    monkeypatch.setattr(inference, "_minuit_fit", failing)
    fallback = fit.fit(spec)
    assert fallback.flags.optimizer == "scipy (fallback)"
    assert "optimizer: scipy (fallback)" in fallback.flags.problems()
    assert fallback.mu_hat == pytest.approx(reference.mu_hat, abs=5e-3)
    assert fallback.err_up == pytest.approx(reference.err_up, rel=0.03)
    payload = json.loads(io.dumps_json(fallback.to_dict()))  # strict JSON despite the missing HESSE errors
    assert payload["flags"]["optimizer"] == "scipy (fallback)"


def test_summary_is_strict_json_with_both_blocks() -> None:
    toy = toy_templates(spurious=1.0)
    spec = fit.build_workspace(toy, {"shape": ["photon_energy_scale"]})
    out = fit.summarise(spec, toy.background_mc)
    text = io.dumps_json(out)
    assert "NaN" not in text and "Infinity" not in text
    for block in ("stat_only", "with_systematics"):
        b = out[block]
        assert b["mu_hat"] == pytest.approx(1.0, abs=0.01) and b["problems"] == []
        assert b["significance"] > 0 and b["upper_limit"] > 0 and len(b["limit_band"]) == 5
        assert b["fit"]["scan"]["mu"] and b["fit"]["flags"]["optimizer"] == "minuit"
        # the MC equals the model here: pre-fit Asimov, pyhf's post-fit Asimov and the MC as data agree
        assert b["expected_significance_prefit"] == pytest.approx(b["expected_significance"], rel=0.02)
        assert b["expected_significance_prefit"] == pytest.approx(b["significance"], rel=0.05)
    assert out["with_systematics"]["err_up"] > out["stat_only"]["err_up"]
    assert out["ranking"] and out["ranking"][0]["impact"] >= out["ranking"][-1]["impact"]


def test_flags_problems_texts() -> None:
    clean = FitFlags("minuit", True, True, True, False, False)
    assert clean.problems() == []
    bad = FitFlags("minuit strategy 2", False, False, False, True, True, ("bkg_norm_bin7",))
    text = "; ".join(bad.problems())
    for part in (
        "not converged",
        "strategy 2",
        "Hessian not positive definite",
        "MINOS invalid",
        "limited by bound (up) (down)",
        "bkg_norm_bin7",
    ):
        assert part in text


# ------------------------------------------------------------------------------------------- templates


class ScoreColumn:
    """A stand-in classifier: the score is a column of the frame."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["true_score"].to_numpy()


def frames(seed: int = 1, n_sig: int = 4000, n_bkg: int = 40000, scale: float = 1.0) -> pd.DataFrame:
    """Synthetic features: signal at 125 GeV with high scores, exponential background with low ones,
    non-uniform
    weights, three-way split."""
    rng = np.random.default_rng(seed)
    sig_m = rng.normal(125.0, 2.0, n_sig) * scale
    bkg_m = 105.0 + rng.exponential(30.0, n_bkg)
    frame = pd.DataFrame(
        {
            "mllg": np.concatenate([sig_m, bkg_m]),
            "is_signal": np.r_[np.ones(n_sig, int), np.zeros(n_bkg, int)],
            "weight": np.concatenate([np.full(n_sig, 0.01), rng.uniform(0.5, 3.0, n_bkg)]),
            "true_score": np.concatenate([rng.beta(4, 2, n_sig), rng.beta(2, 4, n_bkg) ** 1.5]),
            "split_0": rng.integers(0, 3, n_sig + n_bkg),
        }
    )
    return frame


def test_build_templates_per_category_with_signal_variations() -> None:
    nominal = frames()
    varied = {"photon_energy_scale": {"up": frames(scale=1.005), "down": frames(scale=0.995)}}
    tmpl, score_edges, info = templates.build_templates(
        ScoreColumn(), nominal, varied, 0, 3, FINE, {"max_bernstein_order": 3}, photon_resolution=0.2
    )
    assert tmpl.categories == ("bin0", "bin1", "bin2") and len(score_edges) == 4
    sig = np.array([tmpl.signal[c].sum() for c in tmpl.categories])
    assert sig == pytest.approx(sig.mean(), rel=0.05)  # equal-signal categories
    test = nominal[nominal.split_0 == 2]
    total = nominal.loc[nominal.is_signal == 1, "weight"].sum()  # test split scaled to the full yield
    in_window = (test.mllg > 105) & (test.mllg < 170) & (test.is_signal == 1)
    assert sig.sum() == pytest.approx(
        test.loc[in_window, "weight"].sum() * total / test.loc[test.is_signal == 1, "weight"].sum(), rel=1e-9
    )
    centres = 0.5 * (FINE[1:] + FINE[:-1])
    for c in tmpl.categories:
        up, down = tmpl.signal_variations[c]["photon_energy_scale"]
        assert (
            np.average(centres, weights=up)
            > np.average(centres, weights=tmpl.signal[c])
            > np.average(centres, weights=down)
        )
        wide, narrow = tmpl.signal_variations[c]["photon_resolution"]
        spread = [
            np.sqrt(np.average((centres - 125.0) ** 2, weights=h)) for h in (wide, tmpl.signal[c], narrow)
        ]
        assert spread[0] > spread[1] > spread[2]
        assert tmpl.background[c].sum() == pytest.approx(tmpl.background_mc[c].sum(), rel=1e-6)
        assert info[c]["function"] in shapes.FUNCTIONS and not info[c]["dropped"]
        assert info[c]["spurious_systematic"] == tmpl.spurious_signal[c]
        assert info[c]["spurious_systematic"] == pytest.approx(
            max(
                0.0,
                abs(info[c]["spurious_signal"])
                - 2.0 * info[c]["spurious_signal_mc_error"] * info[c]["scale"],
            )
        )
    again = templates.build_templates(
        ScoreColumn(), nominal, varied, 0, 3, FINE, {"max_bernstein_order": 3}, 0.2
    )
    assert again[0].to_dict() == tmpl.to_dict()  # same inputs, same numbers
    # the option: a double-sided Crystal Ball per category (and per variation), the MC's yields
    smooth, _, info = templates.build_templates(
        ScoreColumn(), nominal, varied, 0, 3, FINE, {"max_bernstein_order": 3}, 0.2, signal_shape="dscb"
    )
    for c in smooth.categories:
        assert (
            smooth.signal[c].sum() == pytest.approx(tmpl.signal[c].sum()) and info[c]["signal_fit"]["valid"]
        )
        assert np.average(centres, weights=smooth.signal[c]) == pytest.approx(
            np.average(centres, weights=tmpl.signal[c]), abs=0.3
        )
        up, down = smooth.signal_variations[c]["photon_energy_scale"]
        assert np.average(centres, weights=up) > np.average(centres, weights=down)
    with pytest.raises(ValueError, match="signal_shape"):
        templates.build_templates(ScoreColumn(), nominal, varied, 0, 3, FINE, signal_shape="gauss")


def test_category_without_background_mc_is_dropped_or_pooled() -> None:
    nominal = frames(n_bkg=3000)
    nominal.loc[(nominal.is_signal == 0) & (nominal.true_score > 0.3), "true_score"] = 0.01  # top bin: no bkg
    kwargs = dict(trial=0, n_score_bins=3, mass_edges=FINE, photon_resolution=None)
    tmpl, _, info = templates.build_templates(
        ScoreColumn(), nominal, {}, background={"max_bernstein_order": 2}, **kwargs
    )
    assert "bin2" not in tmpl.categories and info["bin2"]["dropped"]
    assert info["bin2"]["background_mc_events"] == 0 and "min_mc_events = 20" in info["bin2"]["reason"]
    # one lonely event is no better than none: still dropped, unless the threshold says otherwise
    lonely = nominal.copy()
    first = lonely.index[(lonely.is_signal == 0) & (lonely.split_0 == 2) & (lonely.mllg < 170)][0]
    lonely.loc[first, "true_score"] = 0.99
    _, _, info = templates.build_templates(
        ScoreColumn(), lonely, {}, background={"max_bernstein_order": 2}, **kwargs
    )
    assert info["bin2"]["dropped"] and info["bin2"]["background_mc_events"] == 1
    _, _, info = templates.build_templates(
        ScoreColumn(), lonely, {}, **kwargs, background={"max_bernstein_order": 2, "min_mc_events": 1}
    )
    assert not info["bin2"]["dropped"] and info["bin2"]["pooled_with"]
    with pytest.raises(ValueError, match="every category has fewer than"):
        templates.build_templates(ScoreColumn(), nominal, {}, **kwargs, background={"min_mc_events": 10**9})
    tmpl, _, info = templates.build_templates(
        ScoreColumn(),
        nominal,
        {},
        **kwargs,
        background={"max_bernstein_order": 2, "empty_category": "template"},
    )
    assert info["bin2"]["pooled_with"][-1] == "bin1" and info["bin2"]["data_from_template"]
    mean_weight = nominal.loc[nominal.is_signal == 0, "weight"].mean() * 3  # ~ the test-split scale
    assert tmpl.background["bin2"].sum() == pytest.approx(mean_weight, rel=0.2)
    with pytest.raises(ValueError, match="unknown key"):
        templates.build_templates(ScoreColumn(), nominal, {}, background={"order": 2}, **kwargs)
    with pytest.raises(ValueError, match="split_4"):
        templates.build_templates(ScoreColumn(), nominal, {}, trial=4, n_score_bins=3, mass_edges=FINE)


# ------------------------------------------------------------------------------------------- tables and plots


def fake_run(z: float, spur: float, problems: list[str] | None = None) -> dict:
    block = {
        "mu_hat": 1.0,
        "err_up": 0.5,
        "err_down": 0.4,
        "err_mc_stat": 2.0,
        "pull_from_1": 0.0,
        "significance": z,
        "expected_significance": z - 0.1,
        "upper_limit": 1.2,
        "limit_band": [0.6, 0.8, 1.1, 1.6, 2.2],
        "limit_note": None,
        "problems": [],
    }
    cat = {
        "dropped": False,
        "function": "bernstein",
        "pooled_with": [],
        "n_parameters": 3,
        "f_test": {"order": 2},
        "spurious_signal": spur,
        "spurious_signal_mc_error": 1.0,
        "sigma_signal": 10.0,
        "ratio": spur / 10.0,
        "passes": abs(spur) < 2.0,
        "scale": 1.0,
        "background_mc_events": 100,
        "effective_mc_events": 80.0,
        "spurious_systematic": max(0.0, abs(spur) - 2.0),
        "mc_limited": spur > 1.0,
        "gof_p": 0.5,
    }
    return {
        "stat_only": block,
        "with_systematics": block | {"err_up": 0.6, "err_down": 0.5, "problems": problems or []},
        "categories": {"bin0": cat, "bin1": {"dropped": True, "reason": "no background MC event"}},
    }


def test_fit_table_shows_spurious_signal_problems_and_counting() -> None:
    fits = {"etn_bce": fake_run(1.5, 3.0, ["at bound: bkg_norm_bin0"]), "etn_bce_disco": fake_run(1.4, 0.5)}
    metrics = {run: {"trials": [{"trial": 0, "significance": 1.3}]} for run in fits}
    table = tables.fit_table(fits, metrics, trial=0)
    row = table.set_index("Run").loc["etn_bce"]
    assert (
        row["Z binned counting"] == 1.3
        and row["Z fit, stat. only"] == 1.5
        and row["Z expected, stat. only"] == 1.4
    )
    assert row["Z expected stat. only / Z counting"] == f"{1.4 / 1.3:.2f}"
    assert (
        row["mu (stat. only)"] == "1.00 +0.50 -0.40 +-2.00 (MC stat.)"
        and row["(mu - 1) / total error, stat. only"] == 0.0
    )
    assert row["Sum |S_spur| (events)"] == 3.0 and row["Categories failing spurious criterion"] == "bin0"
    assert (
        row["Sum zeta (events, the syst.)"] == 1.0
        and row["MC-limited categories (dS_MC > sigma_S)"] == "bin0"
    )
    assert "at bound: bkg_norm_bin0" in row["Fit problems"] and "left out" in row["Fit problems"]
    assert row["mu (stat. + syst.)"] == "1.00 +0.50/-0.40 (stat.) +0.33/-0.30 (syst.) +-2.00 (MC stat.)"
    assert table.set_index("Run").loc["etn_bce_disco", "Categories failing spurious criterion"] == "none"
    spur = tables.spurious_table(fits)
    assert list(spur["Category"]) == ["bin0", "bin1", "bin0", "bin1"]
    assert spur.iloc[1]["Function"].startswith("left out")
    assert spur.iloc[0]["MC-limited"].startswith("yes") and spur.iloc[0]["zeta (events, the syst.)"] == 1.0


def test_fit_tables_explain_every_column_under_them(tmp_path) -> None:
    """The notes under the fit and spurious-signal tables name every column they hold, with the config's
    criterion, and reach the Markdown and LaTeX files; the caption says what the data are."""
    fits = {"etn_bce": fake_run(1.5, 3.0)}
    metrics = {"etn_bce": {"trials": [{"trial": 0, "significance": 1.3}]}}
    note = tables.fit_table_note(trial=2, criterion=0.3, tolerance=1.5)
    for column in set(tables.fit_table(fits, metrics, trial=0).columns) - {"Run"}:
        assert column in note, column
    assert "Trial 2's" in note and "|S_spur| - 1.5 dS_MC" in note and "zeta < 0.3 sigma_S" in note
    for column in set(tables.spurious_table(fits).columns) - {"Run", "Category"}:
        assert column in tables.SPURIOUS_NOTE, column
    assert "- 1.5 dS_MC) < 0.3 sigma_S" in tables.spurious_caption(0.3, 1.5)
    assert "MC" in tables.FIT_CAPTION and "as data" in tables.FIT_CAPTION
    paths = tables.write_table(
        tables.fit_table(fits, metrics, trial=0), tmp_path / "fit", caption=tables.FIT_CAPTION, note=note
    )
    md, tex = paths[0].read_text(), paths[2].read_text()
    assert "with syst.: q0 on the model's own Asimov data" in md
    assert "with syst.: q0 on the model's own Asimov data" in tex and "\\footnotesize" in tex


def test_plots_are_written(tmp_path, caplog) -> None:
    toy = toy_templates(spurious=1.0)
    spec = fit.build_workspace(toy, {"shape": ["photon_energy_scale"]})
    block = Block(fit.fit(spec), fit.significance(spec), fit.limit(spec, toy.background_mc), None)
    result = block.fit
    block = Block(result, block.significance, block.limit, fit.scan(spec, result, n_steps=5)).to_dict()
    post = fit.category_yields(spec, result.bestfit)["bin1"]
    paths = plots.mass_fit(post, toy.edges, tmp_path / "postfit_1", 138, 13, "bin1", "Post-fit")
    # the MC's own statistical error (sqrt of its sum of w^2) as hatched boxes about the points
    sumw2 = toy.signal_sumw2["bin1"] + toy.background_mc_sumw2["bin1"]
    boxed = plots.mass_fit(post, toy.edges, tmp_path / "boxed_1", 138, 13, "bin1", "Post-fit", mc_sumw2=sumw2)
    assert boxed[1].read_bytes() != paths[1].read_bytes() and boxed[1].stat().st_size > 1000
    paths += plots.likelihood_scan(block["fit"], tmp_path / "scan", 138, 13, stat_only=block["fit"])
    paths += plots.pulls(block["fit"], tmp_path / "pulls", 138, 13)
    paths += plots.ranking(fit.ranking(spec, result), tmp_path / "ranking", 138, 13)
    paths += plots.left_out(tmp_path / "prefit_7", 138, 13, "bin7", "no background MC event")
    assert len(paths) == 10 and all(p.stat().st_size > 1000 for p in paths)
    # no glyph borrowed from another font (matplotlib logs each as a warning: 136 lines a job's log held)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("matplotlib")]


def test_scan_falls_back_to_point_by_point_refits_when_cabinetry_fails(monkeypatch):
    """A failed minimisation inside cabinetry's scan is not fatal: the scan is redone point by point with the
    fallback optimisers, agrees with cabinetry's own scan, and counts the points that fail."""
    import pyhf

    from hzg.results.fit import inference

    spec = fit.build_workspace(toy_templates(mu_data=1.5), NO_SYST)
    result = inference.fit(spec)
    reference = inference.scan(spec, result)
    assert reference.failed_points == 0

    def failing(*args, **kwargs):
        raise pyhf.exceptions.FailedMinimization(type("R", (), {"message": "forced"})())

    monkeypatch.setattr(inference.cabinetry.fit, "scan", failing)
    fallback = inference.scan(spec, result)
    assert fallback.failed_points == 0
    assert np.allclose(fallback.mu, reference.mu) and np.allclose(
        fallback.delta_2nll, reference.delta_2nll, atol=1e-3
    )


def test_a_failed_background_fit_is_never_chosen_even_when_it_passes():
    counts = np.diff(shapes.cdf_of("exponential", 105, 170)(FINE, 5000.0, 0.03))
    fitted = shapes.fit_function(counts, counts, FINE, "exponential")

    def candidate(fit, passes, sigma, ratio=0.0):
        return shapes.SpuriousSignal(
            fit.function, fit.n_parameters, ratio * sigma, 1.0, sigma, ratio, passes, fit
        )

    good = candidate(fitted, True, 30.0, ratio=0.5)
    assert shapes.usable(good, counts, FINE)
    # a turn-on fit that failed: its threshold above the peak, no background under it, S = 0 "passes"
    broken = shapes.ShapeFit("exponential_turnon", (300.0, 0.1, 156.0, 0.3), (1.0,) * 4, -49.0, True)
    failed = candidate(broken, True, 0.4)
    not_converged = candidate(
        shapes.ShapeFit("exponential", fitted.parameters, fitted.errors, 1.0, False), True, 30.0
    )
    assert not shapes.usable(failed, counts, FINE) and not shapes.usable(not_converged, counts, FINE)
    ok = [shapes.usable(c, counts, FINE) for c in (failed, not_converged, good)]
    assert shapes.pick_background([failed, not_converged, good], ok) is good
    # nothing else passes: the usable one with the smallest |ratio|, never the failed fit
    worse = candidate(fitted, False, 30.0, ratio=9.0)
    assert shapes.pick_background([failed, worse], [False, True]) is worse
    # where every fit failed, the choice still comes from them (their validity is in the fit table)
    assert shapes.pick_background([failed], [False]) is failed
