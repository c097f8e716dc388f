"""Missing values as learned embeddings (issue 14, seed paper 002): the jet features (NaN where an event has
too few jets), the NaN-aware normaliser, the learned tokens of the ETN and FT-Transformer, the sentinel
alternative, and training and scoring of both."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from feature_files import write_feature_file
from hzg import checkpoints, registry
from hzg.config_checks import load_config
from hzg.data import features as feat
from hzg.learn import training
from hzg.learn.classifier import SENTINEL, Classifier, Normaliser
from hzg.learn.models import build_model, missing_inputs
from hzg.registry import model_training

REPO = Path(__file__).resolve().parents[1]
CONFIG = load_config(REPO / "config/ci.yaml")
COLUMNS = training.input_columns("etn_jets", 0.0)
EMBEDDING = [m for m, (_, mode) in registry.JET_MODELS.items() if mode == "embedding"]


# ---------------------------------------------------------------- jet features
def _skim(jets: list[list[tuple[float, float, float, float]]]) -> dict[str, np.ndarray]:
    """Skim columns of events with the same mu mu gamma candidate and the given jets (pt, eta, phi, mass),
    two jet slots (padding 0), n_jets the number of jets."""
    n = len(jets)
    skim = {
        "lm_pt": np.full(n, 45.0),
        "lm_eta": np.zeros(n),
        "lm_phi": np.full(n, np.pi),
        "lp_pt": np.full(n, 45.0),
        "lp_eta": np.zeros(n),
        "lp_phi": np.zeros(n),
        "g_pt": np.full(n, 41.8),
        "g_eta": np.zeros(n),
        "g_phi": np.full(n, np.pi / 2),
        "n_jets": np.array([len(j) for j in jets], np.int32),
    }
    for k in range(2):
        for f, prop in enumerate(("pt", "eta", "phi", "mass")):
            skim[f"jet{k}_{prop}"] = np.array([j[k][f] if len(j) > k else 0.0 for j in jets])
    return skim


def _p4(pt, eta, phi, m):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.array([np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz])


def test_jet_features_by_hand_for_0_1_2_and_3_jets():
    j1, j2 = (80.0, 2.0, 0.5, 10.0), (40.0, -1.5, 2.0, 6.0)
    out = feat.jet_features(_skim([[], [(50.0, 1.0, -1.0, 5.0)], [j1, j2], [j1, j2, (30.0, 0.0, 0.0, 1.0)]]))
    assert list(out.columns) == list(feat.JET_FEATURES)
    assert out["n_jets"].tolist() == [0, 1, 2, 3]
    # no jet: every optional feature missing
    assert out.loc[0, list(feat.OPTIONAL_FEATURES)].isna().all()
    # one jet: the leading jet's, the dijet ones missing; the Z gamma system points along phi = pi/2, eta = 0
    assert out.loc[1, ["jet1_pt", "jet1_eta"]].tolist() == [50.0, 1.0]
    assert out.loc[1, "jet1_dphi_llg"] == pytest.approx(1.0 + np.pi / 2)
    assert out.loc[1, [f for f, need in feat.OPTIONAL_FEATURES.items() if need == 2]].isna().all()
    # two (and three) jets: every feature, by hand
    jj = _p4(*j1) + _p4(*j2)
    phi_jj = np.arctan2(jj[2], jj[1])
    expected = {
        "jet1_pt": 80.0,
        "jet1_eta": 2.0,
        "jet1_dphi_llg": np.pi / 2 - 0.5,
        "jet2_pt": 40.0,
        "jet2_eta": -1.5,
        "mjj": np.sqrt(jj[0] ** 2 - jj[1] ** 2 - jj[2] ** 2 - jj[3] ** 2),
        "detajj": 3.5,
        "dphi_llg_jj": abs(np.pi / 2 - phi_jj),
        "zeppenfeld": -0.25,
    }
    for row in (2, 3):
        for name, value in expected.items():
            assert out.loc[row, name] == pytest.approx(value, rel=1e-9, abs=1e-9), (row, name)
    with pytest.raises(KeyError, match="objects.n_jets >= 2"):
        feat.jet_features({k: v for k, v in _skim([[]]).items() if not k.startswith("jet1")})


def test_check_finite_allows_nan_only_in_the_optional_features():
    frame = pd.DataFrame({"mjj": [np.nan, 300.0], "photon_eta": [0.1, np.nan], "jet1_pt": [np.inf, 40.0]})
    feat.check_finite(frame, ["mjj"], source="here")
    with pytest.raises(ValueError, match=r"here: feature 'photon_eta' is NaN or infinite in 1 of 2"):
        feat.check_finite(frame, ["mjj", "photon_eta"], source="here")
    with pytest.raises(ValueError, match=r"'jet1_pt' is infinite"):
        feat.check_finite(frame, ["jet1_pt"], source="here")
    assert "n_jets" not in feat.OPTIONAL_FEATURES  # the count is never missing


def test_sample_frame_writes_the_jet_features_with_the_object_block(monkeypatch):
    from test_objects import CFG, _events

    from hzg.data.selection import Cuts, preselect

    cols, _ = preselect(_events(), Cuts(), objects_cfg=CFG)
    cols.update(chunk=np.zeros(2, np.int32))
    names = [*feat.FEATURES, *feat.DISCO_FEATURES, *feat.ALT_FEATURES, "mllg"]
    # the paper's features are not what this checks
    monkeypatch.setattr(
        feat, "compute_features", lambda skim, res_map: pd.DataFrame(np.ones((2, len(names))), columns=names)
    )
    split = {"n_trials": 1, "seeds": [1], "fractions": [1, 1, 1]}
    frame = feat.sample_frame(cols, {}, "signal", "signal", 1.0, 1.0, 2.0, split, objects_cfg=CFG)
    # the first event has 2 cleaned jets (80 and 35 GeV), the second none
    assert frame["n_jets"].tolist() == [2.0, 0.0]
    assert frame.loc[0, ["jet1_pt", "jet2_pt"]].tolist() == [80.0, 35.0]
    assert frame.loc[1, list(feat.OPTIONAL_FEATURES)].isna().all()
    np.testing.assert_array_equal(frame[list(feat.JET_FEATURES)], feat.jet_features(cols))
    # without the object block (the default's skim), no jet features either
    plain = feat.sample_frame(cols, {}, "signal", "signal", 1.0, 1.0, 2.0, split)
    assert not set(feat.JET_FEATURES) & set(plain.columns)


# ---------------------------------------------------------------- normaliser
def test_normaliser_uses_the_present_values_and_keeps_nan():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(500, 3)).astype(np.float32)
    x[rng.random(500) < 0.4, 1] = np.nan
    x[:, 2] = np.nan
    norm = Normaliser.fit(x)
    present = x[~np.isnan(x[:, 1]), 1].astype(np.float64)
    assert norm.mean[1] == pytest.approx(present.mean(), rel=1e-6)
    assert norm.std[1] == pytest.approx(present.std(), rel=1e-6)
    assert norm.mean[0] == pytest.approx(x[:, 0].mean(), rel=1e-6)
    assert (norm.mean[2], norm.std[2]) == (0.0, 1.0)  # never present
    z = norm(x)
    np.testing.assert_array_equal(np.isnan(z), np.isnan(x))
    assert np.nanmean(z[:, 1]) == pytest.approx(0.0, abs=1e-5) and np.nanstd(z[:, 1]) == pytest.approx(
        1.0, rel=1e-4
    )
    assert "sentinel" not in norm.to_dict()


def test_normaliser_without_missing_values_is_bit_for_bit_the_old_one():
    x = np.random.default_rng(2).normal(5, 3, size=(1000, 15)).astype(np.float32)
    norm = Normaliser.fit(x, [f"c{i}" for i in range(15)])
    np.testing.assert_array_equal(norm.mean, x.mean(axis=0))
    np.testing.assert_array_equal(norm.std, x.std(axis=0))
    assert set(norm.to_dict()) == {"mean", "std"}  # the checkpoints of the other runs are as before


def test_sentinel_normaliser_replaces_nan_before_its_statistics_and_when_scoring():
    x = np.array([[1.0, np.nan], [3.0, 10.0], [5.0, np.nan]], np.float32)
    norm = Normaliser.fit(x, sentinel=SENTINEL)
    filled = np.array([SENTINEL, 10.0, SENTINEL])
    assert norm.mean[1] == pytest.approx(filled.mean()) and norm.std[1] == pytest.approx(filled.std())
    z = norm(x)
    assert np.isfinite(z).all()
    assert z[0, 1] == z[2, 1] == pytest.approx((SENTINEL - filled.mean()) / filled.std(), rel=1e-6)
    again = Normaliser(**norm.to_dict())  # as a checkpoint restores it
    np.testing.assert_array_equal(again(x), z)
    assert again.sentinel == SENTINEL
    sentinel, embedding = (
        training.fit_normaliser(x, ["a", "mjj"], m) for m in ("etn_jets_sentinel", "etn_jets")
    )
    assert sentinel.sentinel == SENTINEL and embedding.sentinel is None and np.isnan(embedding(x)).any()


# ---------------------------------------------------------------- learned tokens
def _jet_model(name: str) -> torch.nn.Module:
    torch.manual_seed(4)
    hp = {"ft_transformer_jets": {"attention_dropout": 0.0, "ffn_dropout": 0.0}}.get(name, {"dropout": 0.0})
    return build_model(name, len(COLUMNS), missing=missing_inputs(name, COLUMNS), **hp)


def _inputs(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with every optional feature missing in the first half and the dijet ones in the third quarter,
    and the mask of the missing values."""
    x = torch.randn(n, len(COLUMNS), generator=torch.Generator().manual_seed(5))
    optional = torch.tensor([c in feat.OPTIONAL_FEATURES for c in COLUMNS])
    two = torch.tensor([feat.OPTIONAL_FEATURES.get(c) == 2 for c in COLUMNS])
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[: n // 2] = optional
    mask[n // 2 : 3 * n // 4] = two
    return x.masked_fill(mask, float("nan")), mask


@pytest.mark.parametrize("name", EMBEDDING)
def test_a_missing_value_gets_its_learned_token_and_present_values_are_unaffected(name):
    model = _jet_model(name).eval()
    assert missing_inputs(name, COLUMNS) == [COLUMNS.index(c) for c in feat.OPTIONAL_FEATURES]
    x, mask = _inputs()
    plain = model.embed if hasattr(model, "embed") else model.tokenizer
    with torch.no_grad():
        tokens = model.tokens(x)
        reference = plain(torch.nan_to_num(x, nan=123.0))  # whatever number stands in the missing place
        table = torch.zeros(len(COLUMNS), tokens.shape[-1])
        table[model.missing.index] = model.missing.token
        rows, cols = mask.nonzero(as_tuple=True)
        torch.testing.assert_close(tokens[rows, cols], table[cols], rtol=0, atol=0)
        torch.testing.assert_close(tokens[~mask], reference[~mask], rtol=0, atol=0)
        p = model(x)
        assert torch.isfinite(p).all()
        # the missing places: any number there gives the same score (it is never read)
        # whatever number is embedded at a missing place, its token is the learned one
        for fill in (0.0, -999.0, 1e6):
            torch.testing.assert_close(
                model.missing(plain(torch.nan_to_num(x, nan=fill)), mask), tokens, rtol=0, atol=0
            )
        # a NaN where the input may not be missing is not hidden
        bad = x.clone()
        bad[-1, 0] = float("nan")
        assert torch.isnan(model(bad)[-1]) and torch.isfinite(model(bad)[:-1]).all()


@pytest.mark.parametrize("name", EMBEDDING)
def test_gradients_reach_the_missing_tokens_and_stay_finite(name):
    model = _jet_model(name).train()
    x, mask = _inputs()
    x[:, COLUMNS.index("jet1_pt")] = 1.0  # jet1_pt present everywhere: its token gets no gradient
    y = torch.arange(len(x)) % 2
    torch.nn.functional.binary_cross_entropy(model(x), y.float()).backward()
    for pname, par in model.named_parameters():
        assert par.grad is not None and torch.isfinite(par.grad).all(), pname
    grad = model.missing.token.grad
    never = model.missing.index.tolist().index(COLUMNS.index("jet1_pt"))
    assert grad[never].abs().sum() == 0
    assert (grad[[i for i in range(len(grad)) if i != never]].abs().sum(dim=1) > 0).all()


def test_sentinel_models_and_the_others_have_no_missing_tokens():
    for name in ("etn_jets_sentinel", "ft_transformer_jets_sentinel", "etn", "ft_transformer"):
        assert missing_inputs(name, COLUMNS) == []
        model = build_model(name, len(COLUMNS))
        assert model.missing is None and not any("missing" in k for k in model.state_dict())
        with pytest.raises(ValueError, match="no learned embeddings"):
            build_model(name, len(COLUMNS), missing=[13])
    with pytest.raises(ValueError, match="among the 22 inputs"):
        build_model("etn_jets", len(COLUMNS), missing=[22])


# ---------------------------------------------------------------- training, scoring, default runs unchanged
def _jet_feature_files(tmp_path: Path, n: int = 1500, n_trials: int = 1) -> list[Path]:
    """Feature files with the jet features: signal has more jets (a VBF-like tail), missing values NaN."""
    rng = np.random.default_rng(0)
    paths = []
    for name, is_sig in (("signal", 1), ("background", 0)):
        cols = list(feat.FEATURES) + list(feat.DISCO_FEATURES)
        frame = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
        n_jets = rng.poisson(1.2 if is_sig else 0.5, n)
        jets = feat.jet_features(
            {
                **{
                    f"{p}_{q}": rng.normal(40, 5, n) if q == "pt" else rng.normal(0, 1, n)
                    for p in ("lm", "lp", "g")
                    for q in ("pt", "eta", "phi")
                },
                "n_jets": n_jets,
                **{
                    f"jet{k}_{q}": rng.uniform(30, 100, n) if q in ("pt", "mass") else rng.normal(0, 2, n)
                    for k in range(2)
                    for q in ("pt", "eta", "phi", "mass")
                },
            }
        )
        frame = pd.concat([frame, jets], axis=1)
        frame["mllg"] = rng.normal(125, 2, n) if is_sig else 100 + rng.exponential(30, n) % 80
        frame["weight"] = 0.01 if is_sig else 1.0
        frame["is_signal"] = np.int8(is_sig)
        paths.append(write_feature_file(frame, name, tmp_path, n_trials=n_trials))
    return paths


@pytest.mark.parametrize("name", ["etn_jets", "ft_transformer_jets_sentinel"])
def test_training_smoke_with_missing_values_and_scores_agree_with_the_classifier(tmp_path, name):
    paths = _jet_feature_files(tmp_path)
    hparams, tcfg = model_training(name, CONFIG["models"][name], CONFIG["training"])
    spec = training.RunSpec(
        model=name,
        loss="bce",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams=hparams,
        training={**tcfg, "epochs": 2, "eval_every_early": 1, "batch_size": 256},
        trial=0,
    )
    out = training.run(paths, spec, tmp_path / name, progress=False)
    ckpt = checkpoints.load(out["checkpoint"])
    assert ckpt["features"] == COLUMNS == spec.input_columns()
    assert ("missing.token" in ckpt["state_dict"]) == (name == "etn_jets")
    assert ckpt["normaliser"].get("sentinel") == (SENTINEL if name.endswith("_sentinel") else None)
    assert "missing" not in ckpt["spec"] and ckpt["spec"]["model"] == name
    scores = pd.read_parquet(out["scores"])
    assert np.isfinite(scores["score"]).all()
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    assert frame["mjj"].isna().mean() > 0.5  # most events lack a second jet
    again = Classifier.load(out["checkpoint"]).predict(frame)
    np.testing.assert_allclose(again, scores["score"].to_numpy(), rtol=1e-5, atol=1e-7)
    # feature files without the jet features: an error that says where they come from
    (tmp_path / "plain").mkdir()
    plain = []
    for p in paths:
        plain.append(tmp_path / "plain" / p.name)
        pd.read_parquet(p).drop(columns=list(feat.JET_FEATURES)).to_parquet(plain[-1])
    with pytest.raises(KeyError, match="objects.n_jets >= 2"):
        training.load_dataset(plain, COLUMNS, 0)


def test_default_runs_read_what_they_always_read():
    paper = list(feat.FEATURES)
    for model in ("etn", "dfnn", "fnn", "ft_transformer", "resnet", "xgboost", "bdt"):
        assert training.input_columns(model, 0.0) == paper
        assert training.input_columns(model, 10.0) == paper + list(feat.DISCO_FEATURES)
    default = load_config(REPO / "config/config.yaml")
    assert not any(r["model"] in registry.JET_MODELS for r in default["runs"])
    methods = load_config(REPO / "config/methods.yaml")
    assert {r["model"] for r in methods["runs"]} >= {"etn_jets", "etn_jets_sentinel"}
    paper_runs = load_config(REPO / "config/paper.yaml")["runs"]
    assert {r["model"] for r in paper_runs} >= set(registry.JET_MODELS)
    spec = training.RunSpec("etn", "bce", "bce", 0.0, {}, {"seed": 1}, 0)
    assert set(spec.describe()) == {
        "model",
        "loss",
        "loss_kind",
        "disco_lambda",
        "hparams",
        "training",
        "trial",
        "sigma_m",
    }


def test_friend_trees_score_jet_models_from_the_ntuple_events(tmp_path, monkeypatch):
    """The friend stage rebuilds the jet features from the n-tuple's events as skim and features do."""
    from test_objects import CFG, _events

    from hzg.data.selection import Cuts, preselect
    from hzg.results import friends

    hparams, tcfg = model_training("etn_jets", CONFIG["models"]["etn_jets"], CONFIG["training"])
    spec = training.RunSpec(
        model="etn_jets",
        loss="bce",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams=hparams,
        training={**tcfg, "epochs": 1, "eval_every_early": 1, "batch_size": 256},
        trial=0,
    )
    paths = _jet_feature_files(tmp_path, n=400)
    clf = Classifier.load(training.run(paths, spec, tmp_path / "run", progress=False)["checkpoint"])
    names = list(feat.FEATURES) + list(feat.DISCO_FEATURES)

    def fixed_features(skim, res_map):  # the paper's features are not what this checks
        return pd.DataFrame(np.ones((len(skim["flavour"]), len(names))), columns=names)

    monkeypatch.setattr(friends.features, "compute_features", fixed_features)
    events = _events()  # two jets in the first event, none in the second
    out = friends.friend_columns(events, Cuts(), {}, [clf], "signal", 0, objects_cfg=CFG)
    cols, _ = preselect(events, Cuts(), objects_cfg=CFG)
    frame = pd.concat([fixed_features(cols, {}), feat.jet_features(cols)], axis=1)
    assert frame["mjj"].isna().tolist() == [False, True]
    score = out[friends.score_branch(clf)]
    assert np.isfinite(score).all()
    np.testing.assert_allclose(score, clf.predict(frame).astype(np.float32))
    with pytest.raises(KeyError, match="mjj"):  # without the objects: the classifier names what it lacks
        friends.friend_columns(events, Cuts(), {}, [clf], "signal", 0)


def test_ensemble_of_an_embedding_run_equals_separate_runs(tmp_path):
    """hzg.learn.ensemble (the trials of one run batched with torch.func) builds the learned tokens and the
    NaN-aware normaliser as training.run does: the same losses and scores."""
    import dataclasses

    from hzg.learn import ensemble

    paths = _jet_feature_files(tmp_path, n=600, n_trials=2)
    hparams, tcfg = model_training("etn_jets", CONFIG["models"]["etn_jets"], CONFIG["training"])
    base = training.RunSpec(
        model="etn_jets",
        loss="bce",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams={**hparams, "dropout": 0.0},
        training={**tcfg, "epochs": 2, "eval_every_early": 1, "batch_size": 256, "events_per_epoch": None},
        trial=0,
    )
    specs = [dataclasses.replace(base, trial=t) for t in range(2)]
    datasets = [training.load_dataset(paths, COLUMNS, t) for t in range(2)]
    together = ensemble.train_neural_ensemble(datasets, specs)
    for s, data, got in zip(specs, datasets, together):
        assert "missing.token" in got["state"]
        alone = training.train_neural(data, s, tmp_path / f"alone{s.trial}", progress=False)
        for a, b in zip(alone["history"], got["history"]):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-4, abs=1e-6)
        np.testing.assert_allclose(got["scores"], alone["scores"], rtol=1e-3, atol=1e-5)
