"""Features, weights, keys, splits and the mass-resolution map."""

import numpy as np
import pandas as pd
import pytest

from hzg.data import features, kinematics, resolution


def test_event_weights_normalise_to_sigma_times_lumi():
    gen_w = np.array([1.0, 1.0, 2.0])
    w = features.event_weights(gen_w, xsec_pb=7.52e-3, luminosity_fb=138.0, sum_weights=4.0)
    assert w.sum() == pytest.approx(7.52e-3 * 138.0 * 1000.0)  # all generated events: sigma * L
    assert w[2] == pytest.approx(2 * w[0])
    with pytest.raises(ValueError, match="positive"):
        features.event_weights(gen_w, 1.0, 1.0, 0.0)


@pytest.mark.parametrize("sum_weights", [np.nan, np.inf, -1.0])
def test_event_weights_refuse_a_non_finite_or_negative_sum_of_weights(sum_weights):
    with pytest.raises(ValueError, match="sum of generator weights must be positive and finite"):
        features.event_weights(np.ones(3), 1.0, 1.0, sum_weights)


def test_event_weights_refuse_non_finite_generator_weights():
    with pytest.raises(
        ValueError, match=r"generator weight is NaN or infinite at 2 events, first positions \[1, 3\]"
    ):
        features.event_weights(np.array([1.0, np.nan, 1.0, np.inf]), 1.0, 1.0, 4.0)


def test_split_is_a_function_of_key_and_seed_only():
    n = 30000
    sid = np.full(n, features.sample_id("signal"))
    chunk = np.repeat(np.arange(3), n // 3)
    entry = np.tile(np.arange(n // 3), 3)
    split = features.split_index(sid, chunk, entry, seed=11, fractions=[1, 1, 1])
    perm = np.random.default_rng(0).permutation(n)
    np.testing.assert_array_equal(
        features.split_index(sid[perm], chunk[perm], entry[perm], 11, [1, 1, 1]), split[perm]
    )
    np.testing.assert_allclose(np.bincount(split) / n, [1 / 3] * 3, atol=0.015)
    other = features.split_index(sid, chunk, entry, seed=22, fractions=[1, 1, 1])
    assert 0.3 < np.mean(other == split) < 0.37  # independent trials agree only by chance
    uneven = features.split_index(sid, chunk, entry, seed=11, fractions=[0.5, 0.25, 0.25])
    np.testing.assert_allclose(np.bincount(uneven) / n, [0.5, 0.25, 0.25], atol=0.015)


def test_sample_id_is_stable():
    assert (
        features.sample_id("signal") == features.sample_id("signal") == 1946981877
    )  # pinned: keys must not change between versions
    assert features.sample_id("signal") != features.sample_id("background")


def _res_map(width=0.02):
    return {
        "eta_edges": [0.0, 2.5],
        "pt_edges": [0.0, 1000.0],
        **{o: {"width": [[width]], "entries": [[100]]} for o in resolution.OBJECTS},
    }


def _skim(**over):
    # a Z at rest-ish decaying back to back plus a photon: hand-checkable angles and dR
    cols = {
        "lm_pt": np.array([45.0]),
        "lm_eta": np.array([0.0]),
        "lm_phi": np.array([0.0]),
        "lp_pt": np.array([40.0]),
        "lp_eta": np.array([0.5]),
        "lp_phi": np.array([np.pi]),
        "g_pt": np.array([30.0]),
        "g_eta": np.array([-0.3]),
        "g_phi": np.array([np.pi / 2]),
        "flavour": np.array([13]),
        "weight": np.array([1.0]),
        "chunk": np.array([0]),
        "entry": np.array([0]),
    }
    cols.update({k: np.asarray(v) for k, v in over.items()})
    lm = kinematics.four_momenta(cols["lm_pt"], cols["lm_eta"], cols["lm_phi"])
    lp = kinematics.four_momenta(cols["lp_pt"], cols["lp_eta"], cols["lp_phi"])
    g = kinematics.four_momenta(cols["g_pt"], cols["g_eta"], cols["g_phi"])
    cols["mllg"] = np.asarray((lm + lp + g).mass)
    return cols


def test_compute_features_on_a_hand_event():
    skim = _skim()
    f = features.compute_features(skim, _res_map())
    row = f.iloc[0]
    assert row.photon_eta == -0.3 and row.lep1_eta == 0.0 and row.lep2_eta == 0.5
    dr_lm = np.hypot(0.3, np.pi / 2)
    dr_lp = np.hypot(0.8, np.pi / 2)
    assert row.min_dr_lg == pytest.approx(dr_lm) and row.max_dr_lg == pytest.approx(dr_lp)
    assert row.lep_flavour == 1.0
    assert row.lep1_pt == 45.0 and row.lep2_pt == 40.0
    assert row.photon_pt_over_mllg == pytest.approx(30.0 / skim["mllg"][0])
    # transverse momentum of the system: (45 - 40, 30) -> |pT| = sqrt(25 + 900)
    assert row.llg_pt_over_mllg == pytest.approx(np.sqrt(925.0) / skim["mllg"][0])
    # all objects share a 2 % resolution.  sigma_m [GeV] as the authors' process_delphes.cxx: raise each
    # object's pT by 2 % (its four-momentum scales by 1.02), dm_i = m' - m, summed in quadrature.
    p4 = {
        o: np.array(
            [
                skim[f"{o}_pt"][0] * np.cosh(skim[f"{o}_eta"][0]),
                skim[f"{o}_pt"][0] * np.cos(skim[f"{o}_phi"][0]),
                skim[f"{o}_pt"][0] * np.sin(skim[f"{o}_phi"][0]),
                skim[f"{o}_pt"][0] * np.sinh(skim[f"{o}_eta"][0]),
            ]
        )
        for o in ("lm", "lp", "g")
    }

    def mass(v):
        return np.sqrt(v[0] ** 2 - v[1:] @ v[1:])

    m = mass(p4["lm"] + p4["lp"] + p4["g"])
    assert m == pytest.approx(skim["mllg"][0])
    dm = [mass(1.02 * p4[o] + sum(p4[k] for k in p4 if k != o)) - m for o in p4]
    assert row.sigma_m == pytest.approx(np.sqrt(sum(x * x for x in dm)), rel=1e-12)
    assert row.sigma_m_over_m == pytest.approx(row.sigma_m / m, rel=1e-12)
    assert 0.5 < row.sigma_m < 5.0  # GeV, a 2 % object resolution on an ~100 GeV system
    # cos theta of the POSITIVE lepton: llg.(lp - lm) / (M lambda_Z), lambda_Z = sqrt((llg.ll/M)^2 - m_ll^2)
    llg, ll = p4["lm"] + p4["lp"] + p4["g"], p4["lm"] + p4["lp"]

    def dot(a, b):
        return a[0] * b[0] - a[1:] @ b[1:]

    lam = np.sqrt((dot(llg, ll) / m) ** 2 - dot(ll, ll))
    assert row.cos_theta == pytest.approx(dot(llg, p4["lp"] - p4["lm"]) / (m * lam), rel=1e-10)
    assert 0.0 <= row.phi < 2 * np.pi
    assert list(f.columns) == list(features.FEATURES) + list(features.DISCO_FEATURES) + list(
        features.ALT_FEATURES
    ) + ["mllg"]


def test_feature_set_picks_the_form_of_sigma_m():
    assert features.FEATURES == features.feature_set("absolute")
    assert len(features.FEATURES) == 12 and "sigma_m" in features.FEATURES
    relative = features.feature_set("relative")
    assert "sigma_m_over_m" in relative and "sigma_m" not in relative
    assert relative.index("sigma_m_over_m") == features.FEATURES.index("sigma_m")
    assert set(features.SIGMA_M_FEATURE.values()) <= set(features.LABELS)
    assert features.UNITS["sigma_m"] == "GeV" and "sigma_m_over_m" not in features.UNITS
    with pytest.raises(ValueError, match="features.sigma_m"):
        features.feature_set("percent")


def test_electron_and_muon_resolutions_are_taken_from_their_own_maps():
    res_map = _res_map()
    res_map["electron"]["width"] = [[0.05]]
    mu = features.compute_features(_skim(), res_map)["sigma_m"][0]
    ee = features.compute_features(_skim(flavour=np.array([11])), res_map)["sigma_m"][0]
    assert ee > mu


def test_check_finite_names_the_feature():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, 1.0]})
    features.check_finite(frame, ["a"], "x")
    with pytest.raises(ValueError, match="sample 'bkg': feature 'b' is NaN or infinite in 1 of 2"):
        features.check_finite(frame, ["a", "b"], "sample 'bkg'")


def test_sample_frame_has_keys_weights_and_one_split_per_trial():
    frame = features.sample_frame(
        _skim(),
        _res_map(),
        "signal",
        "signal",
        2.0,
        3.0,
        10.0,
        {"n_trials": 2, "seeds": [1, 2, 3], "fractions": [1, 1, 1]},
    )
    assert frame["weight"][0] == pytest.approx(2.0 * 3.0 * 1000.0 / 10.0)
    assert {"sample", "sample_id", "chunk", "entry", "is_signal", "split_0", "split_1"} <= set(frame.columns)
    assert "split_2" not in frame.columns
    assert frame["is_signal"][0] == 1


def test_resolution_map_recovers_known_widths_per_bin():
    rng = np.random.default_rng(1)
    n = 40000
    pt = rng.uniform(10, 90, n)
    eta = rng.uniform(-2.4, 2.4, n)
    true_width = np.where(np.abs(eta) < 1.5, 0.01, 0.03) * np.where(pt < 50, 2.0, 1.0)
    gen = pt / (1 + true_width * rng.standard_normal(n))
    objs = {o: {"pt": pt, "eta": eta, "gen_pt": gen} for o in resolution.OBJECTS}
    res = resolution.build_map(objs, [0.0, 1.5, 2.5], [10.0, 50.0, 90.0])
    np.testing.assert_allclose(res["photon"]["width"], [[0.02, 0.01], [0.06, 0.03]], rtol=0.08)
    looked = resolution.lookup(res, "muon", np.array([20.0, 70.0, 500.0]), np.array([0.2, -2.0, 0.1]))
    np.testing.assert_allclose(looked, [0.02, 0.03, 0.01], rtol=0.08)  # 500 GeV: clamped to the last bin


def test_resolution_map_needs_truth():
    cols = {f"{o}_{f}": np.array([30.0, 40.0]) for o in ("lm", "lp", "g") for f in ("pt", "eta")}
    cols.update({f"{o}_gen_pt": np.array([np.nan, np.nan]) for o in ("lm", "lp", "g")})
    cols["flavour"] = np.array([11, 13])
    with pytest.raises(ValueError, match="generator truth"):
        resolution.objects_from_skim(cols)


def test_sample_cross_section_from_config_or_k_factor_times_generator():
    from hzg.data import samples

    recs = [
        {"n_generated": 100, "sigma_gen_pb": 2.0, "source": "a.root"},
        {"n_generated": 300, "sigma_gen_pb": 3.0, "source": "b.root"},
    ]
    assert samples.sample_xsec_pb("signal", {"xsec_pb": 5.01e-3}, recs) == 5.01e-3
    assert samples.sample_xsec_pb("background", {"k_factor": 10.0}, recs) == pytest.approx(10.0 * 2.75)
    with pytest.raises(ValueError, match=r"samples.background.k_factor.*a.root"):
        samples.sample_xsec_pb("background", {"k_factor": 10.0}, [{"n_generated": 1, "source": "a.root"}])


def test_normalisation_expected_yield_is_sigma_lumi_selected_over_generated():
    """sigma x L x (selected / generated) per sample, with weights (a biased sample has unequal weights)."""
    from hzg.results import tables

    recs = {
        "background": [
            {
                "n_generated": 1000,
                "sum_weights": 400.0,
                "sigma_gen_pb": 2.0,
                "cutflow": [
                    {"cut": "all", "n_raw": 1000, "sum_weights": 400.0},
                    {"cut": "mllg_window", "n_raw": 300, "sum_weights": 40.0},
                ],
            }
        ]
    }
    frame = tables.normalisation_frame(recs, {"background": 20.0}, {"background": {"k_factor": 10.0}}, 138.0)
    row = frame.iloc[0]
    assert row["selected fraction [%]"] == pytest.approx(10.0)
    assert row["selected expected (138/fb)"] == pytest.approx(20.0 * 1000 * 138.0 * 0.1)
    assert row["generator sigma [pb]"] == "2" and row["how"] == "10 x generator"


def test_sample_frame_adds_the_object_block_and_changes_nothing_else():
    from hzg.data import objects

    cfg = {"n_extra_photons": 1, "n_jets": 1, "clean_dr": 0.4}
    extra = {"pho0_pt": [20.0], "pho0_eta": [1.0], "pho0_phi": [0.5], "n_extra_photons": [1]}
    extra |= {"jet0_pt": [0.0], "jet0_eta": [0.0], "jet0_phi": [0.0], "jet0_mass": [0.0], "n_jets": [0]}
    args = ("signal", "signal", 2.0, 3.0, 10.0, {"n_trials": 1, "seeds": [1], "fractions": [1, 1, 1]})
    plain = features.sample_frame(_skim(), _res_map(), *args)
    with_objects = features.sample_frame(_skim(**extra), _res_map(), *args, objects_cfg=cfg)
    pd.testing.assert_frame_equal(with_objects[list(plain.columns)], plain)
    assert set(with_objects.columns) - set(plain.columns) == set(objects.object_columns(5))
    assert with_objects[["obj0_type", "obj1_type", "obj2_type", "obj3_type", "obj4_type"]].iloc[
        0
    ].tolist() == [
        2,
        2,
        3,
        3,
        0,
    ]
