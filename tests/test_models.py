"""Neural-network models: registry, output contract, ETN structure, attention parity, overfitting."""

import pytest
import torch
from torch import nn

from hzg.learn.models import build_model, default_hparams
from hzg.registry import NEURAL_MODELS, OBJECT_MODELS
from hzg.learn.models.etn import EventClassifierTransformer, MultiHeadAttention
from hzg.learn.models.ft_transformer import FTBlock

NO_DROPOUT = {
    "etn": {"dropout": 0.0},
    "fnn": {},
    "dfnn": {"dropout": 0.0},
    "ft_transformer": {"attention_dropout": 0.0, "ffn_dropout": 0.0, "residual_dropout": 0.0},
    "resnet": {"hidden_dropout": 0.0, "residual_dropout": 0.0},
    "etn_objects": {"dropout": 0.0},
    "etn_objects_concat": {"dropout": 0.0},
    "etn_jets": {"dropout": 0.0},
    "etn_jets_sentinel": {"dropout": 0.0},
    "ft_transformer_jets": {"attention_dropout": 0.0, "ffn_dropout": 0.0, "residual_dropout": 0.0},
    "ft_transformer_jets_sentinel": {"attention_dropout": 0.0, "ffn_dropout": 0.0, "residual_dropout": 0.0},
}


def _build(name: str, n_features: int, **hparams) -> nn.Module:
    """build_model; an object model reads its last 10 inputs as two objects (tests/test_etn_objects.py for
    real object blocks)."""
    return build_model(name, n_features, n_objects=2 if name in OBJECT_MODELS else 0, **hparams)


def _model(name: str, n_features: int, **hparams) -> nn.Module:
    torch.manual_seed(1)
    return _build(name, n_features, **hparams)


@pytest.mark.parametrize("n_features", [12, 15])
@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_output_contract(name, n_features):
    model = _model(name, n_features).eval()
    x = torch.randn(64, n_features, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        p = model(x)
        assert p.shape == (64,) and p.dtype == torch.float32
        assert torch.isfinite(p).all() and ((p > 0) & (p < 1)).all()
        assert torch.equal(model(x), p)  # deterministic in eval mode
        torch.testing.assert_close(model(x[:5]), p[:5], rtol=1e-5, atol=1e-6)  # events do not mix
        other = model(torch.randn(64, n_features, generator=torch.Generator().manual_seed(3)))
        assert (other - p).abs().max() > 1e-4  # depends on the input
        assert (p - p.mean()).abs().max() > 1e-5  # and differs between events
        assert model(torch.zeros(0, n_features)).shape == (0,)


@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_train_mode_and_gradients_reach_every_parameter(name):
    model = _model(name, 12).train()
    x, y = torch.randn(32, 12), torch.randint(0, 2, (32,)).float()
    p = model(x)
    assert p.shape == (32,) and ((p > 0) & (p < 1)).all()
    nn.functional.binary_cross_entropy(p, y).backward()
    for pname, par in model.named_parameters():
        assert par.grad is not None and torch.isfinite(par.grad).all() and par.grad.abs().sum() > 0, pname
    torch.testing.assert_close(torch.sigmoid(model.eval().logits(x)), model(x))


def test_unknown_model_and_hparam_raise():
    with pytest.raises(ValueError, match="'bdt'"):
        build_model("bdt", 12)
    with pytest.raises(ValueError, match="'n_layers'"):
        build_model("etn", 12, n_layers=3)
    with pytest.raises(ValueError, match="n_features"):
        build_model("fnn", 0)
    with pytest.raises(ValueError, match="divisible"):
        build_model("etn", 12, d_model=18)


def test_defaults_are_the_papers_and_override_by_keyword():
    assert default_hparams("etn") == {
        "d_model": 16,
        "embed_hidden": 4,
        "n_heads": 4,
        "ffn_hidden": 64,
        "dropout": 0.1,
    }
    assert default_hparams("fnn") == {"hidden_factor": 4}
    assert default_hparams("dfnn") == {"hidden_factors": (3, 9, 3), "dropout": 0.1}
    widths = [m.out_features for m in build_model("fnn", 12).modules() if isinstance(m, nn.Linear)]
    assert widths == [48, 1]
    dfnn = build_model("dfnn", 12)
    assert [m.out_features for m in dfnn.modules() if isinstance(m, nn.Linear)] == [36, 108, 36, 1]
    assert [m.p for m in dfnn.modules() if isinstance(m, nn.Dropout)] == [0.1]
    assert [
        m.out_features
        for m in build_model("dfnn", 12, hidden_factors=[2, 1]).modules()
        if isinstance(m, nn.Linear)
    ] == [24, 12, 1]  # lists from a config file
    etn = build_model("etn", 12, d_model=32, n_heads=8, dropout=0.2)
    assert etn.embed.weight2.shape == (12, 4, 32) and etn.attn.n_heads == 8 and etn.drop.p == 0.2
    ft = build_model("ft_transformer", 15, n_blocks=3)
    assert len(ft.blocks) == 3 and isinstance(ft.blocks[0].attn_norm, nn.Identity)
    assert isinstance(ft.blocks[1].attn_norm, nn.LayerNorm)
    assert len(build_model("resnet", 12, n_blocks=4).blocks) == 4


@pytest.mark.parametrize("n_features", [12, 15])
def test_etn_embedding_is_per_feature(n_features):
    emb = _model("etn", n_features).embed
    assert sum(p.numel() for p in emb.parameters()) == n_features * (1 * 4 + 4 + 4 * 16 + 16)
    x = torch.randn(8, n_features)
    with torch.no_grad():
        tokens = emb(x)
        assert tokens.shape == (8, n_features, 16)
        for j in (0, n_features - 1):
            for par in emb.parameters():
                par[j] += 0.5
            changed = (emb(x) - tokens).abs().amax(dim=(0, 2)) > 0
            for par in emb.parameters():
                par[j] -= 0.5
            assert changed.tolist() == [i == j for i in range(n_features)]
        # token j is nn.Linear(1, 4) -> GELU -> nn.Linear(4, 16) -> GELU with feature j's weights (the
        # authors' code)
        j = 3
        ref = nn.Sequential(nn.Linear(1, 4), nn.GELU(), nn.Linear(4, 16), nn.GELU())
        ref[0].weight.copy_(emb.weight1[j].T)
        ref[0].bias.copy_(emb.bias1[j])
        ref[2].weight.copy_(emb.weight2[j].T)
        ref[2].bias.copy_(emb.bias2[j])
        torch.testing.assert_close(ref(x[:, j : j + 1]), tokens[:, j])


def test_etn_has_no_positional_encoding():
    model = _model("etn", 12).eval()
    x = torch.randn(16, 12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        p = model(x)
        for par in model.embed.parameters():
            par.copy_(par[perm])
        torch.testing.assert_close(model(x[:, perm]), p)  # permuting features and their embeddings


@pytest.mark.parametrize("cross", [False, True])
def test_attention_matches_torch_multihead_attention(cross):
    torch.manual_seed(5)
    ours = MultiHeadAttention(16, 4).eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ref.load_state_dict(ours.state_dict())
    t = torch.randn(10, 13, 16)
    q = t[:, :1] if cross else t
    with torch.no_grad():
        torch.testing.assert_close(ours(q, t) if cross else ours(t), ref(q, t, t, need_weights=False)[0])


class AuthorsLayout(nn.Module):
    """The ETN written with stock PyTorch modules in the layer order of the authors' public code
    (github.com/jaebak/EventClassifierTransformer, EventClassifierTransformerNetwork), batch first."""

    def __init__(
        self, n_features: int, dropout: float = 0.1, nodes: int = 16, heads: int = 4, factor: int = 4
    ):
        super().__init__()
        self.embed = nn.ModuleList(
            nn.Sequential(nn.Linear(1, factor), nn.GELU(), nn.Linear(factor, nodes), nn.GELU())
            for _ in range(n_features)
        )
        self.pre_attn_norm = nn.LayerNorm(nodes)
        self.attn = nn.MultiheadAttention(nodes, heads, dropout=dropout, batch_first=True)
        self.pre_fc_norm = nn.LayerNorm(nodes)
        self.fc1, self.act, self.fc2 = (
            nn.Linear(nodes, factor * nodes),
            nn.GELU(),
            nn.Linear(factor * nodes, nodes),
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, nodes))
        self.cls_pre_attn_norm = nn.LayerNorm(nodes)
        self.cls_attn = nn.MultiheadAttention(nodes, heads, dropout=dropout, batch_first=True)
        self.cls_pre_fc_norm = nn.LayerNorm(nodes)
        self.cls_fc = nn.Linear(nodes, 1)
        self.dropout = nn.Dropout(dropout)

    def load_from(self, etn: EventClassifierTransformer) -> "AuthorsLayout":
        with torch.no_grad():
            for j, seq in enumerate(self.embed):
                seq[0].weight.copy_(etn.embed.weight1[j].T)
                seq[0].bias.copy_(etn.embed.bias1[j])
                seq[2].weight.copy_(etn.embed.weight2[j].T)
                seq[2].bias.copy_(etn.embed.bias2[j])
        pairs = {
            "pre_attn_norm": "attn_norm",
            "attn": "attn",
            "pre_fc_norm": "ffn_norm",
            "fc1": "ffn.0",
            "fc2": "ffn.2",
            "cls_pre_attn_norm": "cls_kv_norm",
            "cls_attn": "cls_attn",
            "cls_pre_fc_norm": "cls_norm",
            "cls_fc": "head",
        }
        for mine, theirs in pairs.items():
            getattr(self, mine).load_state_dict(etn.get_submodule(theirs).state_dict())
        self.cls_token.data.copy_(etn.cls_token)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.stack([emb(x[:, j : j + 1]) for j, emb in enumerate(self.embed)], dim=1)
        u = self.pre_attn_norm(x)
        x = x + self.dropout(self.attn(u, u, u)[0])
        x = x + self.dropout(self.fc2(self.act(self.fc1(self.pre_fc_norm(x)))))
        cls = self.cls_token.expand(x.shape[0], 1, -1)
        u = self.cls_pre_attn_norm(torch.cat((cls, x), dim=1))
        x = self.cls_pre_fc_norm(cls + self.dropout(self.cls_attn(cls, u, u)[0]))
        return torch.sigmoid(self.cls_fc(x.flatten(start_dim=1))).squeeze(-1)


@pytest.mark.parametrize("n_features", [12, 15])
def test_etn_is_the_authors_network(n_features):
    model = _model("etn", n_features)
    ref = AuthorsLayout(n_features).load_from(model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(300, n_features, generator=torch.Generator().manual_seed(7))
    model.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)


def test_etn_dropout_is_the_authors():
    model = _model("etn", 12)
    # residual dropout before each of the three residual additions, and the attention weights of both
    # attentions
    assert model.drop.p == 0.1
    assert model.attn.dropout == 0.1 and model.cls_attn.dropout == 0.1
    assert "dropout=0.1" in repr(model.attn) and "dropout=0.1" in repr(model.cls_attn)
    ref = AuthorsLayout(12)
    assert ref.attn.dropout == model.attn.dropout and ref.cls_attn.dropout == model.cls_attn.dropout
    assert build_model("etn", 12, dropout=0.0).attn.dropout == 0.0
    assert build_model("etn", 12, dropout=0.25).cls_attn.dropout == 0.25
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MultiHeadAttention(16, 4, dropout=1.0)


def test_etn_train_mode_is_random_and_seeded_eval_mode_deterministic():
    model = _model("etn", 12)
    x = torch.randn(256, 12, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        model.train()
        torch.manual_seed(9)
        a = model(x)
        torch.manual_seed(9)
        assert torch.equal(model(x), a)  # the dropout masks come from torch's generator
        assert not torch.equal(model(x), a)
        model.eval()
        p = model(x)
        assert torch.equal(model(x), p) and not torch.equal(a, p)
    # with autograd too (PyTorch's layer norm there, the kernel's when scoring: the same to float rounding)
    torch.testing.assert_close(model(x).detach(), p, rtol=1e-5, atol=1e-6)
    # the attention-weight dropout alone (residual dropout off) changes the output in training
    model.train()
    model.drop.p = 0.0
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.attn.dropout = model.cls_attn.dropout = 0.0
        torch.testing.assert_close(model(x), p)


def test_etn_class_token_attention_layout():
    model: EventClassifierTransformer = _model("etn", 12)
    assert model.cls_token.shape == (1, 1, 16)
    assert [m.normalized_shape for m in model.modules() if isinstance(m, nn.LayerNorm)] == [(16,)] * 4
    assert model.ffn[0].out_features == 64 and isinstance(model.ffn[1], nn.GELU)
    assert model.head.out_features == 1


def test_ft_last_block_updates_only_the_class_token():
    torch.manual_seed(6)
    full = FTBlock(32, 4, 42, 0.0, 0.0, 0.0, attention_norm=True, cls_only=False).eval()
    last = FTBlock(32, 4, 42, 0.0, 0.0, 0.0, attention_norm=True, cls_only=True).eval()
    last.load_state_dict(full.state_dict())
    t = torch.randn(4, 13, 32)
    with torch.no_grad():
        torch.testing.assert_close(last(t), full(t)[:, -1:])


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_overfits_random_labels(name):
    """Without dropout, full-batch Adam memorises 256 events with random labels."""
    torch.manual_seed(0)
    # an object model: the 12 features and two real photons after them (type codes, not random numbers)
    n_in = 22 if name in OBJECT_MODELS else 12
    x, y = torch.randn(256, n_in), torch.randint(0, 2, (256,)).float()
    model = _build(name, n_in, **NO_DROPOUT[name]).train()
    if name in OBJECT_MODELS:
        x[:, [16, 21]] = 3.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(1000):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy(model(x), y)
        if loss.item() < 0.05:
            break
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, (name, _, loss.item())


@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_scores_do_not_depend_on_the_scoring_batch(name):
    """predict_neural scores in batches of SCORING_BATCH[device] (4096 on a CPU, 65 536 on a GPU). A batch
    of another size may change a score in its last bits (the matrix kernels round a short batch differently),
    never more; the default batch is the device's, and the same batch gives the same bits every time."""
    from hzg.learn.classifier import SCORING_BATCH, predict_neural, scoring_batch

    net = _model(name, 12)
    x = torch.randn(5000, 12, generator=torch.Generator().manual_seed(4))
    reference = predict_neural(net, x, batch=len(x))
    for batch in (1000, 4096, 65536):
        torch.testing.assert_close(predict_neural(net, x, batch=batch), reference, rtol=1e-5, atol=1e-6)
    assert torch.equal(predict_neural(net, x), predict_neural(net, x, batch=SCORING_BATCH["cpu"]))
    assert torch.equal(predict_neural(net, x), predict_neural(net, x))
    assert scoring_batch(torch.device("cpu")) == SCORING_BATCH["cpu"] < SCORING_BATCH["cuda"]
    assert scoring_batch(torch.device("meta")) == SCORING_BATCH["cuda"]  # another accelerator: a GPU's batch
    with pytest.raises(ValueError, match="positive"):
        predict_neural(net, x, batch=0)
