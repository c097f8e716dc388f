"""Attention maps and Grad-CAM attribution of the attention models (hzg.results.interpret) and their plots."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hzg.data import objects as obj
from hzg.learn.classifier import Classifier, Normaliser
from hzg.learn.models import build_model
from hzg.learn.models.etn import MultiHeadAttention
from hzg.registry import ATTENTION_MODELS, OBJECT_MODELS, TEST, TRAIN
from hzg.results import interpret, plotting

FEATURES = ["photon_eta", "lep1_eta", "llg_ptt", "cos_Theta", "phi"]
NO_DROPOUT = {"etn": {"dropout": 0.0}, "ft_transformer": {"attention_dropout": 0.0, "ffn_dropout": 0.0}}
#: the paper-style models whose tokens are the features (the jet variants are the same classes)
FEATURE_MODELS = ("etn", "ft_transformer")
#: object slots of the object-model tests: l1, l2, gamma, one more photon, one jet
SLOTS = obj.slot_names({"n_extra_photons": 1, "n_jets": 1})
OBJECT_COLUMNS = obj.object_columns(len(SLOTS))


def _model(name: str, seed: int = 1, **hparams) -> nn.Module:
    torch.manual_seed(seed)
    if name in OBJECT_MODELS:
        model = build_model(name, len(FEATURES) + len(OBJECT_COLUMNS), n_objects=len(SLOTS), **hparams)
    else:
        model = build_model(name, len(FEATURES), **hparams)
    with torch.no_grad():  # a non-zero class token: the ETN's starts at 0 (every query then attends evenly)
        model.cls_token.normal_()
    return model.eval()


def _x(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, len(FEATURES), generator=torch.Generator().manual_seed(seed))


def _object_x(n: int, seed: int = 2) -> torch.Tensor:
    """Features, then the object block: the candidate's three objects always, the extra photon in about half
    of the events and the jet in about a third, the other slots padding (all zero, type 0)."""
    g = torch.Generator().manual_seed(seed)
    props = torch.randn(n, len(SLOTS), len(obj.CONTINUOUS), generator=g)
    u = torch.rand(n, 2, generator=g)
    types = torch.tensor([obj.ELECTRON, obj.ELECTRON, obj.PHOTON, obj.PHOTON, obj.JET]).repeat(n, 1).float()
    types[:, 3] *= (u[:, 0] < 0.5).float()
    types[:, 4] *= (u[:, 1] < 0.35).float()
    props = props * (types != obj.PADDING)[..., None]
    block = torch.cat((props, types[..., None]), dim=-1).reshape(n, -1)
    return torch.cat((_x(n, seed), block), dim=1)


def _inputs(name: str, n: int, seed: int = 2) -> torch.Tensor:
    return _object_x(n, seed) if name in OBJECT_MODELS else _x(n, seed)


def _columns(name: str) -> list[str]:
    return FEATURES + OBJECT_COLUMNS if name in OBJECT_MODELS else FEATURES


def test_every_neural_model_with_attention_is_supported():
    for name in ATTENTION_MODELS:
        assert interpret.has_attention(_model(name))
    assert not interpret.has_attention(build_model("fnn", 3))
    with pytest.raises(TypeError, match="no tokens"):
        interpret.token_modules(build_model("resnet", 3))


def test_object_slot_names_follow_the_config():
    assert SLOTS == ["l1", "l2", "gamma", "photon1", "jet1"]
    assert obj.slot_names(None) == ["l1", "l2", "gamma", "photon1", "photon2", "jet1", "jet2", "jet3"]
    assert len(obj.slot_names(None)) == obj.n_objects(None)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_explicit_attention_rows_sum_to_one_and_leave_the_outputs_unchanged(name):
    model = _model(name)
    x = _x(203)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model.logits(x)  # the fused kernels
        with interpret.recording_attention(model) as modules:
            explicit = model.logits(x)
            weights = {k: m.weights for k, m in modules.items()}
        after = model.logits(x)
    torch.testing.assert_close(explicit, reference, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, reference)  # the normal path again, bit for bit
    labels = interpret.block_tokens(model, FEATURES)
    assert list(weights) == list(labels) and len(weights) == 2
    for key, w in weights.items():
        _, queries, keys = labels[key]
        assert w.shape == (203, 4, len(queries), len(keys))
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    for m in interpret.attention_modules(model).values():  # switched off again, nothing kept
        assert not m.keep_weights and m.weights is None
    assert model.state_dict().keys() == state.keys()  # no new parameters or buffers (checkpoints unchanged)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_kept_weights_are_those_of_torchs_multihead_attention():
    """Same parameter layout as nn.MultiheadAttention: its attention weights (per head) must be ours."""
    torch.manual_seed(3)
    ours = MultiHeadAttention(16, 4).eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ref.load_state_dict(ours.state_dict())
    q, kv = torch.randn(31, 1, 16), torch.randn(31, 13, 16)
    ours.keep_weights = True
    with torch.no_grad():
        out = ours(q, kv)
        ref_out, ref_weights = ref(q, kv, kv, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(ours.weights, ref_weights)
    torch.testing.assert_close(out, ref_out)


def _one_block_ft(cls: float) -> nn.Module:
    """FT-Transformer of one [CLS]-only block, d = 2, one head, whose attention scores are hand-computable:
    token j = (x_j, 0), [CLS] = (cls, 0), q = k = identity projections -> score_j = cls x_j / sqrt(2)."""
    model = build_model("ft_transformer", 3, d_token=2, n_blocks=1, n_heads=1, **NO_DROPOUT["ft_transformer"])
    with torch.no_grad():
        model.tokenizer.weight.copy_(torch.tensor([[1.0, 0.0]] * 3))
        model.tokenizer.bias.zero_()
        model.cls_token.copy_(torch.tensor([[[cls, 0.0]]]))
        attn = model.blocks[0].attn
        attn.in_proj_weight.copy_(torch.cat([torch.eye(2)] * 3))
        attn.in_proj_bias.zero_()
    return model.eval()


def test_mean_map_equals_a_hand_computation():
    cls = 1.5
    model = _one_block_ft(cls)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    is_signal = rng.random(50) < 0.4
    weight = rng.uniform(0.1, 2.0, 50)
    result = interpret.interpret(
        model, torch.from_numpy(x), is_signal, weight, ["a", "b", "c"], batch_size=16
    )
    scores = np.concatenate([cls * x, np.full((50, 1), cls * cls)], axis=1) / math.sqrt(
        2
    )  # keys a, b, c, CLS
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    (block,) = result.blocks
    assert block.queries == ["[CLS]"] and block.keys == ["a", "b", "c", "[CLS]"]
    for mask, mean in ((is_signal, block.signal), (~is_signal, block.background)):
        expected = (weight[mask, None] * p[mask]).sum(axis=0) / weight[mask].sum()
        assert mean.shape == (1, 1, 4)
        np.testing.assert_allclose(mean[0, 0], expected, rtol=1e-5)


def test_means_are_weighted_and_batching_does_not_matter():
    model = _model("etn")
    x = _x(300)
    is_signal = np.arange(300) % 3 == 0
    weight = np.where(np.arange(300) < 150, 1.0, 0.0)  # the second half weighs nothing
    full = interpret.interpret(model, x, is_signal, weight, FEATURES, batch_size=64)
    half = interpret.interpret(model, x[:150], is_signal[:150], weight[:150], FEATURES, batch_size=1000)
    for a, b in zip(full.blocks, half.blocks):
        np.testing.assert_allclose(a.signal, b.signal, rtol=1e-5)
        np.testing.assert_allclose(a.background, b.background, rtol=1e-5)
    np.testing.assert_allclose(full.gradcam_signal, half.gradcam_signal, rtol=1e-5)
    np.testing.assert_allclose(full.gradcam_background, half.gradcam_background, rtol=1e-5)
    with pytest.raises(ValueError, match="positive total weight"):
        interpret.interpret(model, x, np.zeros(300, bool), np.ones(300), FEATURES)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_gradcam_sums_to_one_and_is_grad_times_activation_per_event(name):
    model = _model(name)
    x = _x(40)
    _, _, attribution = interpret.batch_interpretation(model, x)
    (module,) = interpret.token_modules(model)
    for i in (0, 17, 39):  # one event at a time, by hand: |sum_d dz/dt_jd t_jd|
        tokens = module(x[i : i + 1]).detach().requires_grad_()
        hook = module.register_forward_hook(lambda _m, _i, _o: tokens)
        try:
            (grad,) = torch.autograd.grad(model.logits(x[i : i + 1]).sum(), tokens)
        finally:
            hook.remove()
        torch.testing.assert_close(attribution[i], (grad * tokens).sum(-1).abs()[0].detach())
    result = interpret.interpret(model, x, np.arange(40) % 2 == 0, np.ones(40), FEATURES)
    for g in (result.gradcam_signal, result.gradcam_background):
        assert g.shape == (len(FEATURES),) and (g >= 0).all()
        assert g.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_a_feature_the_model_ignores_gets_no_attribution(name):
    """Feature 2's embedding is zeroed (weights and biases): its token is 0, whatever the value."""
    model = _model(name)
    with torch.no_grad():
        if name == "etn":
            for p in (model.embed.weight1, model.embed.bias1, model.embed.weight2, model.embed.bias2):
                p[2] = 0.0
        else:
            model.tokenizer.weight[2] = 0.0
            model.tokenizer.bias[2] = 0.0
    x = _x(120)
    result = interpret.interpret(model, x, np.arange(120) % 2 == 0, np.ones(120), FEATURES)
    for g in (result.gradcam_signal, result.gradcam_background):
        assert g[2] < 1e-6 and g.sum() == pytest.approx(1.0)
        assert (np.delete(g, 2) > 1e-3).all()


def test_held_out_events_are_the_normalised_test_events_in_the_window(tmp_path):
    model = build_model("etn", 2)
    norm = Normaliser(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    checkpoint = {
        "model": "etn",
        "loss": "bce",
        "features": ["a", "b"],
        "trial": 1,
        "hparams": {},
        "kind": "neural",
        "state_dict": model.state_dict(),
        "normaliser": norm.to_dict(),
    }
    paths = []
    for name, sig in (("s", 1), ("b", 0)):
        frame = pd.DataFrame(
            {
                "a": [1.0, 3.0, 5.0],
                "b": [2.0, 6.0, 10.0],
                "split_0": [TEST, TEST, TEST],
                "split_1": [TEST, TRAIN, TEST],
                "weight": [0.5, 1.0, 2.0],
                "mllg": [125.0, 125.0, 150.0],
                "is_signal": sig,
                "sample_id": sig,  # the event key every feature file has
                "chunk": 0,
                "entry": [0, 1, 2],
            }
        )
        paths.append(tmp_path / f"{name}.parquet")
        frame.to_parquet(paths[-1])
    x, is_signal, weight = interpret.held_out_events(Classifier(checkpoint), paths, (120.0, 130.0))
    np.testing.assert_allclose(x.numpy(), [[0.0, 0.0], [0.0, 0.0]])  # event 0 of each (normalised to 0)
    assert is_signal.tolist() == [True, False] and weight.tolist() == [0.5, 0.5]


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def _check_label(fig) -> None:
    text = _texts(fig)
    assert plotting.SIMULATION_LABEL in text and "138" in text
    assert "CMS" not in text and "ATLAS" not in text


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_attention_plot_shows_every_map(name, tmp_path, figures):
    model = _model(name)
    result = interpret.interpret(model, _x(200), np.arange(200) % 2 == 0, np.ones(200), FEATURES)
    paths = plotting.attention_maps(result, tmp_path / "attention", 138, 13, "ETN, BCE, trial 0")
    assert [p.name for p in paths] == ["attention.pdf", "attention.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    (fig,) = figures
    _check_label(fig)
    images = {ax.get_title(): ax.images[0].get_array() for ax in fig.axes if ax.images}
    n_heads = 4
    full = [b for b in result.blocks if len(b.queries) > 1]
    single = [b for b in result.blocks if len(b.queries) == 1]
    assert len(full) == len(single) == 1 and len(images) == 3 * n_heads + 3
    for block in full:
        for h in range(n_heads):
            np.testing.assert_allclose(images[f"Signal, head {h + 1}"], block.signal[h], rtol=1e-6)
            np.testing.assert_allclose(images[f"Background, head {h + 1}"], block.background[h], rtol=1e-6)
            np.testing.assert_allclose(
                images[f"Signal $-$ background, head {h + 1}"],
                block.signal[h] - block.background[h],
                atol=1e-9,
            )
    (block,) = single
    token = plotting.token_label(block.queries[0])
    np.testing.assert_allclose(images[f"Signal: {token} token attends to"], block.signal[:, 0], rtol=1e-6)
    np.testing.assert_allclose(
        images[f"Background: {token} token attends to"], block.background[:, 0], rtol=1e-6
    )
    text = _texts(fig)
    assert all(plotting.token_label(f) in text for f in FEATURES) and block.title in text


def test_gradcam_plot_shows_the_attribution_of_each_feature(tmp_path, figures):
    result = interpret.Interpretation(
        FEATURES, [], np.array([0.1, 0.2, 0.3, 0.15, 0.25]), np.array([0.3, 0.1, 0.2, 0.2, 0.2])
    )
    paths = plotting.gradcam_bars(result, tmp_path / "gradcam", 138, 13, "ETN, BCE, trial 0")
    assert [p.name for p in paths] == ["gradcam.pdf", "gradcam.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    (fig,) = figures
    _check_label(fig)
    (ax,) = fig.axes
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    np.testing.assert_allclose(bars["Signal"], result.gradcam_signal)
    np.testing.assert_allclose(bars["Background"], result.gradcam_background)
    assert [t.get_text() for t in ax.get_xticklabels()] == [plotting.token_label(f) for f in FEATURES]


# ---------------------------------------------------------------- the ETN with the object stream
@pytest.mark.parametrize("name", OBJECT_MODELS)
def test_object_model_maps_cover_both_streams_and_leave_the_outputs_unchanged(name):
    model = _model(name)
    x = _object_x(257)
    with torch.no_grad():
        reference = model.logits(x)  # the masked kernels
        with interpret.recording_attention(model) as modules:
            explicit = model.logits(x)
            weights = {k: m.weights for k, m in modules.items()}
            valid = {k: interpret._query_valid(m, m.weights) for k, m in modules.items()}
        after = model.logits(x)
    torch.testing.assert_close(explicit, reference, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, reference)
    labels = interpret.block_tokens(model, _columns(name), SLOTS)
    cls = "cls_attn" if name == "etn_objects" else "cls_masked_attn"
    assert list(weights) == ["attn", "obj_attn", "merge_attn", cls] == list(labels)
    feats = FEATURES
    assert labels["attn"][1:] == (feats, feats) and labels["obj_attn"][1:] == (SLOTS, SLOTS)
    merge = (feats, SLOTS) if name == "etn_objects" else (feats + SLOTS, feats + SLOTS)
    assert labels["merge_attn"][1:] == merge
    types = x[:, len(FEATURES) :].reshape(len(x), len(SLOTS), -1)[..., -1]
    padded = types == obj.PADDING
    for key, w in weights.items():
        _, queries, keys = labels[key]
        assert w.shape == (257, 4, len(queries), len(keys))
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        if keys[-len(SLOTS) :] == SLOTS:  # the object keys come last: a padded object takes no attention
            assert (
                w[..., -len(SLOTS) :][padded[:, None, None, :].expand(-1, 4, len(queries), -1)] == 0
            ).all()
            assert (
                w[..., -len(SLOTS) :][~padded[:, None, None, :].expand(-1, 4, len(queries), -1)] > 0
            ).all()
    # the object self-attention's queries: a padded slot is not a real query
    assert torch.equal(valid["obj_attn"], (~padded).float())
    assert torch.equal(valid["attn"], torch.ones(257, len(FEATURES)))
    for m in interpret.attention_modules(model).values():
        assert not m.keep_weights and m.weights is None


def test_object_rows_are_averaged_over_the_events_that_have_the_object():
    model = _model("etn_objects")
    x = _object_x(300)
    rng = np.random.default_rng(5)
    is_signal, weight = rng.random(300) < 0.5, rng.uniform(0.2, 3.0, 300)
    result = interpret.interpret(
        model, x, is_signal, weight, _columns("etn_objects"), batch_size=64, object_labels=SLOTS
    )
    weights, valid, _ = interpret.batch_interpretation(model, x)
    w_obj, v_obj = weights["obj_attn"].double().numpy(), valid["obj_attn"].double().numpy()
    block = next(b for b in result.blocks if b.name == "obj_attn")
    for cls, mean in ((is_signal, block.signal), (~is_signal, block.background)):
        ww = weight * cls
        for q in range(len(SLOTS)):
            have = ww * v_obj[:, q]
            expected = np.einsum("b,bhk->hk", have, w_obj[:, :, q, :]) / have.sum()
            np.testing.assert_allclose(mean[:, q, :], expected, rtol=1e-6)
    # every row of a real query sums to 1, also for the slots that are often empty
    np.testing.assert_allclose(block.signal.sum(-1), 1.0, rtol=1e-6)


def test_object_tokens_get_attribution_and_an_always_empty_slot_none():
    model = _model("etn_objects_concat")
    x = _object_x(200)
    x[:, len(FEATURES) + 4 * len(obj.PROPERTIES) :] = 0.0  # the jet slot: padding in every event
    result = interpret.interpret(
        model, x, np.arange(200) % 2 == 0, np.ones(200), _columns("etn_objects_concat"), object_labels=SLOTS
    )
    assert result.features == FEATURES + SLOTS
    for g in (result.gradcam_signal, result.gradcam_background):
        assert g.shape == (len(FEATURES) + len(SLOTS),) and g.sum() == pytest.approx(1.0)
        assert g[-1] == 0.0  # the padded jet's token is masked out of every attention
        assert (g[:-1] > 1e-4).all()
    with pytest.raises(ValueError, match="object slots"):
        interpret.token_labels(model, _columns("etn_objects_concat"), SLOTS[:-1])


def test_object_model_attention_plot_has_the_cross_attention(tmp_path, figures):
    model = _model("etn_objects")
    result = interpret.interpret(
        model,
        _object_x(200),
        np.arange(200) % 2 == 0,
        np.ones(200),
        _columns("etn_objects"),
        object_labels=SLOTS,
    )
    plotting.attention_maps(result, tmp_path / "attention", 138, 13, "ETN+objects, BCE, trial 0")
    (fig,) = figures
    _check_label(fig)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 3 * 3 * 4 + 3  # three blocks of 3 x 4 heads, the class token's 3 panels
    cross = next(b for b in result.blocks if b.name == "merge_attn")
    assert any(i.shape == cross.signal[0].shape == (len(FEATURES), len(SLOTS)) for i in images)
    text = _texts(fig)
    assert cross.title in text and all(plotting.token_label(s) in text for s in SLOTS)
