"""Mass scan (seed paper 004): signal at other Higgs masses, the muNN and pNN training strategies and the
evaluation per mass point."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hzg import registry
from hzg.config_checks import load_config
from hzg.data import features as feat
from hzg.data import generate, mass_scan
from hzg.learn import strategies, training
from hzg.learn.classifier import Classifier
from hzg.results import mass_scan as scan_eval
from feature_files import write_feature_file

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
MASSES = [110.0, 115.0, 120.0, 125.0, 130.0, 135.0, 140.0]


# ---------------------------------------------------------------- generation at another Higgs mass
def test_higgs_mass_reaches_pythia_and_the_default_is_unchanged():
    gen = load_config(REPO / "config/config.yaml")["generation"]
    default = generate.pythia_settings(generate.chunk_spec("ggH_Zgamma", 10, 5, gen, 13.0))
    assert "25:m0 = 125.0" in default
    assert default == generate.pythia_settings(generate.chunk_spec("ggH_Zgamma", 10, 5, gen, 13.0, 125.0))
    shifted = generate.pythia_settings(generate.chunk_spec("ggH_Zgamma", 10, 5, gen, 13.0, higgs_mass=150.0))
    assert "25:m0 = 150.0" in shifted and not any(line == "25:m0 = 125.0" for line in shifted)
    assert [ln for ln in shifted if not ln.startswith("25:m0")] == [
        ln for ln in default if not ln.startswith("25:m0")
    ]
    with pytest.raises(ValueError, match="no Higgs boson"):
        generate.chunk_spec("qqbar_Zgamma", 10, 5, gen, 13.0, higgs_mass=150.0)


def test_signal_generated_at_150_gev_peaks_at_150_gev():
    particles, _, _ = generate.generate_chunk(
        generate.ChunkSpec("ggH_Zgamma", 60, seed=3, higgs_mass=150.0), progress=False
    )
    masses = []
    for event in particles:
        e, px, py, pz = (np.asarray(event[c]) for c in ("E", "px", "py", "pz"))
        pid = np.asarray(event["pid"])
        lep = np.flatnonzero(np.isin(np.abs(pid), (11, 13)))
        pho = np.flatnonzero(pid == 22)
        if len(lep) < 2 or not len(pho):
            continue
        pt = np.hypot(px, py)
        pick = np.concatenate([lep[np.argsort(-pt[lep])[:2]], pho[np.argsort(-pt[pho])[:1]]])
        s = [v[pick].sum() for v in (e, px, py, pz)]
        masses.append(np.sqrt(max(s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2, 0.0)))
    # FSR takes a little: the median of the hardest two leptons and photon sits just below 150
    assert 140.0 < np.median(masses) < 151.0


def test_scan_samples_copy_the_nominal_signal_at_each_other_mass():
    config = load_config(REPO / "config/mass_scan.yaml")
    samples = mass_scan.scan_samples(config)
    masses = config["mass_scan"]["masses"]
    assert sorted(samples) == sorted(mass_scan.point_sample(m) for m in masses if m != 125)
    m110 = samples["signal_m110"]
    nominal = config["samples"]["signal"]
    assert m110["kind"] == "signal" and m110["xsec_pb"] == nominal["xsec_pb"]
    assert m110["generate"]["process"] == nominal["generate"]["process"]
    assert m110["generate"]["higgs_mass"] == 110.0
    assert (
        len({v["generate"]["seed"] for v in samples.values()} | {nominal["generate"]["seed"]})
        == len(samples) + 1
    )
    assert mass_scan.point_sample(122.5) == "signal_m122p5"
    assert mass_scan.sample_masses(config)["signal"] == 125.0
    spec = mass_scan.strategy_spec(config)
    assert spec["nominal_mass"] == 125.0 and spec["edges"][0] == min(masses) - 2.5
    assert mass_scan.run_scan_spec(config, "bce") == {}
    assert mass_scan.run_scan_spec(config, "bce_munn")["strategy"] == "munn"
    assert mass_scan.scan_samples(load_config(REPO / "config/config.yaml")) == {}


def test_schema_strategy_enum_is_the_registry():
    losses = SCHEMA["properties"]["losses"]["additionalProperties"]["properties"]
    assert losses["strategy"]["enum"] == list(registry.STRATEGIES)
    assert (
        registry.run_title("dfnn", {"kind": "bce", "disco_lambda": 0, "strategy": "munn"})
        == "DFNN, BCE (muNN)"
    )
    assert registry.run_title("dfnn", {"kind": "bce", "disco_lambda": 0}) == "DFNN, BCE"


# ---------------------------------------------------------------- muNN: balanced per bin of mllg
def _scan_events(n=20000, seed=1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    true = np.where(y == 1, rng.choice(MASSES, n), np.nan)
    mass = np.where(y == 1, true + rng.normal(0, 2.0, n), 100 + rng.exponential(25, n))
    weight = np.where(y == 1, 0.01, rng.exponential(1.0, n)) * np.where(rng.random(n) < 0.02, -1, 1)
    return mass, y, weight, true


def test_munn_weights_balance_signal_and_background_in_every_mllg_bin():
    mass, y, weight, _ = _scan_events()
    edges = strategies.bin_edges(MASSES, 5.0)
    assert np.allclose(edges, np.arange(107.5, 143.0, 5.0))
    w = strategies.balanced_per_mass_bin_weights(mass, y, weight, edges)
    idx = np.digitize(mass, edges) - 1
    per_bin = []
    for b in range(len(edges) - 1):
        sig, bkg = w[(idx == b) & (y == 1)].sum(), w[(idx == b) & (y == 0)].sum()
        assert sig == pytest.approx(bkg, rel=1e-9)
        per_bin.append(sig)
    assert np.allclose(per_bin, per_bin[0])  # every bin the same total (004: N + N events per interval)
    outside = (mass < edges[0]) | (mass >= edges[-1])
    assert outside.any() and np.all(w[outside] == 0)
    inside = ~outside
    assert w[inside].sum() == pytest.approx(inside.sum())  # mean weight 1 over the bins
    # within a bin and class the physical weights' shape (and sign) is kept
    sel = (idx == 2) & (y == 0)
    assert np.allclose(w[sel] / weight[sel], (w[sel] / weight[sel])[0])


def test_munn_weights_zero_a_bin_without_both_classes():
    mass = np.array([110.0, 110.5, 116.0, 121.0])
    y = np.array([1, 0, 1, 1])
    w = strategies.balanced_per_mass_bin_weights(mass, y, np.ones(4), [107.5, 112.5, 117.5, 122.5])
    assert w[0] == w[1] > 0 and w[2] == 0 and w[3] == 0
    with pytest.raises(ValueError, match="both signal and background"):
        strategies.balanced_per_mass_bin_weights(mass[2:], y[2:], np.ones(2), [112.5, 117.5, 122.5])


# ---------------------------------------------------------------- pNN: mass input
def test_pnn_background_masses_are_seeded_mass_points():
    a = strategies.pnn_background_masses(6000, MASSES, seed=7)
    assert np.array_equal(a, strategies.pnn_background_masses(6000, MASSES, seed=7))
    assert not np.array_equal(a, strategies.pnn_background_masses(6000, MASSES, seed=8))
    assert set(np.unique(a)) == set(MASSES)
    counts = np.array([(a == m).sum() for m in MASSES])
    assert np.all(np.abs(counts - 6000 / len(MASSES)) < 5 * np.sqrt(6000 / len(MASSES)))


def test_pnn_weights_give_every_mass_point_the_same_signal_total():
    mass, y, weight, true = _scan_events()
    weight = np.abs(weight)
    w = strategies.balanced_per_mass_point_weights(y, weight, true, MASSES)
    totals = [w[(y == 1) & (true == m)].sum() for m in MASSES]
    assert np.allclose(totals, totals[0])
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    assert np.allclose(w[y == 0] / weight[y == 0], (w[y == 0] / weight[y == 0])[0])


def test_true_masses_from_the_sample_ids():
    sid = np.array([1, 2, 2, 3, 9])
    y = np.array([1, 1, 0, 1, 1])
    out = strategies.true_masses(sid, y, {2: 110.0, 3: 140.0}, default=125.0)
    assert out[0] == 125.0 and out[1] == 110.0 and np.isnan(out[2]) and out[3] == 140.0 and out[4] == 125.0


# ---------------------------------------------------------------- training with a strategy, end to end
def _scan_feature_files(tmp_path, n=1500, seed=0):
    """Feature files of a nominal signal, two other mass points and a background: the signal peaks at its mass
    and is shifted in a few features."""
    rng = np.random.default_rng(seed)
    cols = list(feat.FEATURES) + list(feat.DISCO_FEATURES)
    paths = []
    for name, is_sig, m in (
        ("signal", 1, 125.0),
        ("signal_m115", 1, 115.0),
        ("signal_m135", 1, 135.0),
        ("background", 0, None),
    ):
        size = n if is_sig else 4 * n
        frame = pd.DataFrame(rng.normal(size=(size, len(cols))), columns=cols)
        if is_sig:
            frame.iloc[:, :4] += 1.0
        frame["mllg"] = rng.normal(m, 2, size) if is_sig else 105 + rng.exponential(30, size) % 70
        frame["weight"] = 0.01 if is_sig else 1.0
        frame["is_signal"] = np.int8(is_sig)
        paths.append(write_feature_file(frame, name, tmp_path))
    return paths


SCAN = {
    "masses": [115.0, 125.0, 135.0],
    "sample_masses": {"signal": 125.0, "signal_m115": 115.0, "signal_m135": 135.0},
    "nominal_mass": 125.0,
    "edges": [110.0, 120.0, 130.0, 140.0],
}


def _scan_spec(strategy):
    config = load_config(REPO / "config/ci.yaml")
    return training.RunSpec(
        model="dfnn",
        loss=f"bce_{strategy}",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams=config["models"]["dfnn"],
        training={**config["training"], "epochs": 3, "batch_size": 256},
        trial=0,
        strategy=strategy,
        mass_scan=SCAN,
    )


@pytest.mark.parametrize("strategy", ["munn", "pnn"])
def test_scan_strategy_trains_on_every_mass_point_and_scores_the_nominal_one(tmp_path, strategy):
    paths = _scan_feature_files(tmp_path)
    spec = training.scan_spec(_scan_spec(strategy))
    assert spec.training["narrow_window"] == [110.0, 140.0]
    data = training.scan_dataset(paths, training.feature_names(0.0), spec)
    extra = "mllg" if strategy == "munn" else strategies.HYPOTHESIS_FEATURE
    assert data.features[-1] == extra and len(data.features) == 13
    assert set(np.unique(data.true_mass[data.y == 1])) == {115.0, 125.0, 135.0}
    train = data.split == registry.TRAIN
    if strategy == "pnn":  # signal: its generated mass; background: a mass point
        col = data.x[:, -1]
        assert np.array_equal(col[data.y == 1], data.true_mass[data.y == 1].astype(np.float32))
        assert set(np.unique(col[data.y == 0])) == {115.0, 125.0, 135.0}
    else:  # the training split is balanced per mllg bin
        idx = np.digitize(data.mass, SCAN["edges"]) - 1
        for b in range(3):
            sig = data.train_weight[train & (idx == b) & (data.y == 1)].sum()
            assert sig == pytest.approx(data.train_weight[train & (idx == b) & (data.y == 0)].sum())
    out = training.run(paths, _scan_spec(strategy), tmp_path / "run", progress=False)
    scores = pd.read_parquet(out["scores"])
    # scores.parquet: the nominal signal and the background only, as every run's (Table I at 125 GeV)
    assert set(scores.loc[scores.is_signal == 1, "sample_id"]) == {feat.sample_id("signal")}
    assert len(scores) == 1500 + 6000
    clf = Classifier.load(out["checkpoint"])
    frame = pd.concat([pd.read_parquet(p) for p in paths[::3]], ignore_index=True)
    nominal = clf.predict(frame)  # a pNN without a hypothesis column: the nominal mass
    assert np.allclose(np.sort(nominal), np.sort(scores["score"].to_numpy()), atol=1e-6)
    other = clf.predict(frame, hypothesis=115.0)
    assert (strategy == "pnn") != np.allclose(other, nominal)


# ---------------------------------------------------------------- evaluation per mass point
def _toy_frame(seed=2, n_bkg=30000, n_sig=3000):
    """Background falling in mllg with a score unrelated to mass; signal at each mass point with a score
    shifted up by an amount that grows with the mass (the classifier is better at high mass)."""
    rng = np.random.default_rng(seed)
    rows = [
        pd.DataFrame(
            {
                "mllg": 100 + rng.exponential(30, n_bkg) % 80,
                "weight": 1.0,
                "is_signal": 0,
                "x": rng.normal(0, 1, n_bkg),
            }
        )
    ]
    true = [np.full(n_bkg, np.nan)]
    for m in (115.0, 125.0, 135.0):
        rows.append(
            pd.DataFrame(
                {
                    "mllg": rng.normal(m, 1.5, n_sig),
                    "weight": 0.01,
                    "is_signal": 1,
                    "x": rng.normal((m - 105) / 20, 1, n_sig),
                }
            )
        )
        true.append(np.full(n_sig, m))
    frame = pd.concat(rows, ignore_index=True)
    split = rng.integers(0, 3, len(frame))
    return frame, np.concatenate(true), split


CFG = {"n_score_bins": 4, "mass_bins": {"n": 80, "range": [100.0, 180.0]}, "window_relative": 0.04}


def test_per_mass_point_metrics_on_a_toy():
    frame, true, split = _toy_frame()
    seen = []

    def predict(events, m):
        seen.append((m, int(events["is_signal"].sum())))
        return 1 / (1 + np.exp(-events["x"].to_numpy()))

    points = scan_eval.trial_points(predict, frame, true, split, [115.0, 125.0, 135.0], CFG)
    assert [m for m, _ in seen] == [115.0, 125.0, 135.0] and all(n == 3000 for _, n in seen)
    auc = [p["auc"] for p in points]
    z = [p["significance"] for p in points]
    assert auc[0] < auc[1] < auc[2] and z[0] < z[1] < z[2]
    # the AUC in the window of the point, the analytic value of two unit Gaussians 0.5, 1 and 1.5 apart
    from scipy.stats import norm

    for p, d in zip(points, (0.5, 1.0, 1.5)):
        assert p["auc"] == pytest.approx(norm.cdf(d / np.sqrt(2)), abs=0.03)
        assert p["auc_window"] == pytest.approx([p["higgs_mass"] * 0.96, p["higgs_mass"] * 1.04])
        assert p["n_test"]["signal"] == pytest.approx(1000, abs=100)
        assert 0 <= p["bkg_correlation"] < 0.01  # a score unrelated to the background mass
    summary = scan_eval.summarise_points([points, points])
    assert summary[1]["auc"]["mean"] == pytest.approx(auc[1]) and summary[1]["auc"]["std"] == 0
    runs = {"toy": {"title": "Toy", "points": summary, "nominal_mass": 125.0}}
    table = scan_eval.table_frame(runs)
    assert list(table["higgs_mass"]) == [115.0, 125.0, 135.0]
    assert table["auc"].iloc[1] == pytest.approx(100 * auc[1])


def test_mass_scan_plot_and_table_are_written(tmp_path):
    frame, true, split = _toy_frame(n_bkg=6000, n_sig=800)
    points = scan_eval.trial_points(lambda e, m: e["x"].to_numpy(), frame, true, split, [115.0, 135.0], CFG)
    runs = {"a": {"title": "A", "points": scan_eval.summarise_points([points]), "nominal_mass": 125.0}}
    paths = scan_eval.plot(runs, tmp_path / "performance", 138.0, 13.0)
    assert all(p.stat().st_size > 0 for p in paths)
    sculpting = scan_eval.sculpting_frame(
        {"a": "A"}, {"a": {"summary": {"bkg_correlation": {"mean": 1e-3, "std": 0.0}}}}, {"a": {}}
    )
    scan_eval.write_table(
        runs, tmp_path / "t.md", tmp_path / "t.csv", "caption", sculpting, tmp_path / "s.csv"
    )
    text = (tmp_path / "t.md").read_text()
    assert "| A | 115 |" in text and "Background sculpting at 125 GeV" in text
    assert pd.read_csv(tmp_path / "s.csv")["bkg_correlation"].iloc[0] == pytest.approx(1.0)


def test_sculpting_table_takes_table_one_and_the_fits_spurious_signal(tmp_path):
    metrics = {
        "a": {
            "summary": {
                "bkg_correlation": {"mean": 5e-3, "std": 1e-4},
                "bkg_dcor2": {"mean": 0.04, "std": None},
            }
        }
    }
    cats = {
        "bin0": {"spurious_signal": -3.0, "spurious_systematic": 1.0, "ratio": -0.5, "passes": True},
        "bin1": {"spurious_signal": 2.0, "spurious_systematic": 0.0, "ratio": 0.1, "passes": True},
        "bin2": {"dropped": True, "spurious_signal": 99.0, "ratio": 9.0, "passes": False},
    }
    frame = scan_eval.sculpting_frame({"a": "A"}, metrics, {"a": {"categories": cats}})
    row = frame.iloc[0]
    assert row["bkg_correlation"] == pytest.approx(5.0) and row["bkg_dcor2"] == pytest.approx(40.0)
    assert row["bkg_correlation_excess"] is None
    assert (
        row["spurious_sum_abs"] == 5.0
        and row["spurious_sum_zeta"] == 1.0
        and row["spurious_max_ratio"] == 0.5
    )
    text = scan_eval.sculpting_markdown(frame, 125.0)
    assert "| A | 5.00 ± 0.10 |" in text and "at 125 GeV" in text


def test_config_checks_name_mass_scan_problems():
    from hzg.config_checks import problems

    config = load_config(REPO / "config/mass_scan.yaml")
    assert mass_scan.problems(config) == []
    assert problems(config) == []
    no_scan = {k: v for k, v in config.items() if k != "mass_scan"}
    assert any("no mass_scan" in p for p in mass_scan.problems(no_scan))
    bad = {**config, "mass_scan": {**config["mass_scan"], "runs": ["etn_bce"], "masses": [110, 120]}}
    found = " ".join(mass_scan.problems(bad))
    assert "etn_bce" in found and "lack the nominal mass" in found
    clash = {**config, "samples": {**config["samples"], "signal_m110": config["samples"]["signal"]}}
    assert any("signal_m110" in p for p in mass_scan.problems(clash))


def test_standard_runs_keep_their_spec_hash_and_train_inputs():
    """A standard run's description (config hash, resume key) has no strategy key: the default's runs are
    unchanged; the default config makes no mass-scan sample and reads none."""
    standard = training.RunSpec("dfnn", "bce", "bce", 0.0, {}, {}, 0)
    assert "strategy" not in standard.describe() and "mass_scan" not in standard.describe()
    assert "strategy" in _scan_spec("munn").describe()
    default = load_config(REPO / "config/config.yaml")
    assert mass_scan.run_scan_spec(default, "bce_disco") == {} and not mass_scan.reads_scan_samples(
        default, "bce"
    )
    assert mass_scan.problems(default) == []
