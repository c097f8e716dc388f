"""The ETN with the object stream (hzg.learn.models.etn_objects): masks, shapes, gradients of both streams,
both merges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hzg import checkpoints, registry
from hzg.config_checks import load_config
from hzg.data import features as feat
from hzg.data import objects
from hzg.learn import training
from hzg.learn.classifier import Classifier
from hzg.learn.models import build_model, small_attention
from hzg.learn.models.etn_objects import MaskedAttention, ObjectETN
from feature_files import write_feature_file

N_EVENT, N_OBJECTS = 12, 8
N_PROPS = len(objects.PROPERTIES)
MODELS = ("etn_objects", "etn_objects_concat")


def _inputs(n: int = 64, seed: int = 2) -> torch.Tensor:
    """Normalised features and objects: l1, l2, gamma always, then a random number of photons and jets."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_EVENT + N_OBJECTS * N_PROPS, generator=gen)
    obj = x[:, N_EVENT:].view(n, N_OBJECTS, N_PROPS)
    kinds = torch.tensor([objects.MUON, objects.MUON, objects.PHOTON, 3, 3, 4, 4, 4], dtype=torch.float32)
    present = torch.arange(N_OBJECTS) < torch.randint(3, N_OBJECTS + 1, (n, 1), generator=gen)
    obj[..., -1] = torch.where(present, kinds, torch.zeros(()))
    obj[..., :-1] *= present[..., None]  # padding: zeros, as the feature table writes it
    return x


def _model(name: str, **hparams) -> nn.Module:
    torch.manual_seed(1)
    return build_model(name, N_EVENT + N_OBJECTS * N_PROPS, n_objects=N_OBJECTS, **hparams)


@pytest.mark.parametrize("kernel", [True, False], ids=["cpu_kernel", "sdpa"])
@pytest.mark.parametrize("name", MODELS)
def test_padded_objects_change_nothing(name, kernel, monkeypatch):
    if not kernel:  # the path of GPUs: scaled_dot_product_attention with a boolean mask
        monkeypatch.setattr(small_attention, "usable", lambda *t: False)
    model = _model(name).eval()
    x = _inputs()
    noisy = x.clone()
    obj = noisy[:, N_EVENT:].view(len(x), N_OBJECTS, N_PROPS)
    padded = obj[..., -1] == objects.PADDING
    assert padded.any() and (~padded).any()
    garbage = torch.randn(obj[..., :-1].shape, generator=torch.Generator().manual_seed(9)) * 1e3
    obj[..., :-1] = torch.where(padded[..., None], garbage, obj[..., :-1])
    with torch.no_grad():
        p = model(x)
        torch.testing.assert_close(model(noisy), p, rtol=0, atol=0)
        # while a real object's values do matter
        moved = x.clone()
        moved[:, N_EVENT + 5 * 2] += 1.0  # the photon's pT (slot 2, always present)
        assert (model(moved) - p).abs().max() > 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_gradients_reach_both_streams(name):
    model = _model(name).train()
    x, y = _inputs(32), torch.randint(0, 2, (32,)).float()
    p = model(x)
    assert p.shape == (32,) and ((p > 0) & (p < 1)).all()
    nn.functional.binary_cross_entropy(p, y).backward()
    for pname, par in model.named_parameters():
        assert par.grad is not None and torch.isfinite(par.grad).all(), pname
        assert par.grad.abs().sum() > 0, pname
    streams = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert {"embed", "attn", "obj_embed", "obj_attn", "merge_attn", "head"} <= streams
    model.eval()
    with torch.no_grad():
        assert model(x[:0]).shape == (0,)


@pytest.mark.parametrize("kernel", [True, False], ids=["cpu_kernel", "sdpa"])
def test_cross_attention_is_masked_and_shaped(kernel, monkeypatch):
    if not kernel:
        monkeypatch.setattr(small_attention, "usable", lambda *t: False)
    torch.manual_seed(3)
    attn = MaskedAttention(16, 4).eval()
    q, kv = torch.randn(5, 12, 16), torch.randn(5, 8, 16)
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[:, 6:] = False
    with torch.no_grad():
        out = attn(q, kv, mask)
        assert out.shape == (5, 12, 16)
        torch.testing.assert_close(attn(q, kv[:, :6], mask[:, :6]), out)  # masked keys = absent keys
        ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
        ref.load_state_dict(attn.state_dict())
        torch.testing.assert_close(out, ref(q, kv, kv, key_padding_mask=~mask, need_weights=False)[0])


def test_merge_choice_and_layout_errors():
    cross = _model("etn_objects")
    concat = _model("etn_objects_concat")
    assert cross.merge == "cross" and concat.merge == "concat"
    assert _model("etn_objects", merge="concat").merge == "concat"
    assert cross.n_event == N_EVENT and cross.n_objects == N_OBJECTS
    with pytest.raises(ValueError, match="merge"):
        _model("etn_objects", merge="sum")
    with pytest.raises(ValueError, match="object block"):
        build_model("etn_objects", 20)
    with pytest.raises(ValueError, match="no objects"):
        build_model("etn", 20, n_objects=2)
    with pytest.raises(ValueError, match="cannot hold"):
        ObjectETN(10, 2)


@pytest.mark.parametrize("name", MODELS)
def test_cpu_kernel_and_sdpa_agree(name, monkeypatch):
    model = _model(name).eval()
    x = _inputs(50)
    with torch.no_grad():
        p = model(x)
        monkeypatch.setattr(small_attention, "usable", lambda *t: False)
        torch.testing.assert_close(model(x), p, rtol=1e-5, atol=1e-6)


def test_events_do_not_mix_and_are_deterministic():
    model = _model("etn_objects").eval()
    x = _inputs(40)
    with torch.no_grad():
        p = model(x)
        torch.testing.assert_close(model(x[:7]), p[:7], rtol=1e-5, atol=1e-6)
        assert torch.equal(model(x), p)


# ---------------------------------------------------------------- training through the workflow's entry point
def _feature_files(tmp_path, n_objects: int, n: int = 1200):
    """Feature files as the features stage writes them, with the object block; signal has more jets."""
    rng = np.random.default_rng(0)
    paths = []
    for name, is_sig in (("signal", 1), ("background", 0)):
        cols = list(feat.FEATURES) + list(feat.DISCO_FEATURES)
        frame = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
        n_real = 3 + rng.integers(0, n_objects - 3 + 1, n) * (1 if is_sig else 0)
        for i in range(n_objects):
            real = i < n_real
            kind = (2, 2, 3)[i] if i < 3 else objects.JET
            for prop in objects.CONTINUOUS:
                frame[objects.column(i, prop)] = np.where(real, rng.normal(50, 10, n), 0.0)
            frame[objects.column(i, "type")] = np.where(real, kind, objects.PADDING).astype(float)
        frame["mllg"] = rng.normal(125, 2, n) if is_sig else 100 + rng.exponential(30, n) % 80
        frame["weight"] = 0.01 if is_sig else 1.0
        frame["is_signal"] = np.int8(is_sig)
        paths.append(write_feature_file(frame, name, tmp_path, n_trials=1))
    return paths


@pytest.mark.parametrize("name", MODELS)
def test_training_smoke_and_scores_agree_with_the_classifier(tmp_path, name):
    cfg = load_config(Path(__file__).resolve().parents[1] / "config/ci.yaml")
    n = objects.n_objects(cfg["objects"])
    paths = _feature_files(tmp_path, n)
    hparams, tcfg = registry.model_training(name, cfg["models"][name], cfg["training"])  # as the rule does
    spec = training.RunSpec(
        model=name,
        loss="bce",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams=hparams,
        training={**tcfg, "epochs": 2, "eval_every_early": 1, "batch_size": 256},
        trial=0,
        n_objects=n,
    )
    out = training.run(paths, spec, tmp_path / name, progress=False)
    ckpt = checkpoints.load(out["checkpoint"])
    assert ckpt["features"] == spec.input_columns()
    assert ckpt["features"][-n * N_PROPS :] == objects.object_columns(n) and ckpt["features"][:12] == list(
        training.feature_names(0.0)
    )
    # type columns are not normalised, and the scores of training are those of the scoring stages
    types = [i for i, c in enumerate(ckpt["features"]) if objects.is_type_column(c)]
    assert all(ckpt["normaliser"]["mean"][i] == 0.0 and ckpt["normaliser"]["std"][i] == 1.0 for i in types)
    scores = pd.read_parquet(out["scores"])
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    again = Classifier.load(out["checkpoint"]).predict(frame)
    np.testing.assert_allclose(again, scores["score"].to_numpy(), rtol=1e-5, atol=1e-7)
    # feature files without the object block (n-tuples without jets): a clear error
    spec.n_objects = n + 1
    with pytest.raises(KeyError, match="Jet collection"):
        training.run(paths, spec, tmp_path / "more", progress=False)


def test_friend_trees_score_object_models_from_the_ntuple_events(tmp_path, monkeypatch):
    """The friend stage rebuilds the object block from the n-tuple's events as skim and features do: the
    friend score of an object model is the classifier's score of the skim + feature-block rows."""
    from test_objects import CFG, _events

    from hzg.data.selection import Cuts, preselect
    from hzg.results import friends

    n = objects.n_objects(CFG)
    paths = _feature_files(tmp_path, n, n=300)
    cfg = load_config(Path(__file__).resolve().parents[1] / "config/ci.yaml")
    hparams, tcfg = registry.model_training("etn_objects", cfg["models"]["etn_objects"], cfg["training"])
    spec = training.RunSpec(
        model="etn_objects",
        loss="bce",
        loss_kind="bce",
        disco_lambda=0.0,
        hparams=hparams,
        training={**tcfg, "epochs": 1, "eval_every_early": 1, "batch_size": 256},
        trial=0,
        n_objects=n,
    )
    clf = Classifier.load(training.run(paths, spec, tmp_path / "run", progress=False)["checkpoint"])
    names = list(feat.FEATURES) + list(feat.DISCO_FEATURES)

    def fixed_features(skim, res_map):  # the paper's features are not what this checks
        return pd.DataFrame(np.ones((len(skim["flavour"]), len(names))), columns=names)

    monkeypatch.setattr(friends.features, "compute_features", fixed_features)
    events = _events()
    out = friends.friend_columns(events, Cuts(), {}, [clf], "signal", 0, objects_cfg=CFG)
    cols, _ = preselect(events, Cuts(), objects_cfg=CFG)
    frame = pd.concat([fixed_features(cols, {}), pd.DataFrame(objects.feature_block(cols, CFG))], axis=1)
    assert out["passed_preselection"].tolist() == [True, True]
    np.testing.assert_allclose(out[friends.score_branch(clf)], clf.predict(frame).astype(np.float32))
    with pytest.raises(KeyError, match="obj0_pt"):  # without the objects: the classifier names what it lacks
        friends.friend_columns(events, Cuts(), {}, [clf], "signal", 0)
