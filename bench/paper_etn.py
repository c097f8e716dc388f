"""A faithful rebuild of the paper authors' public implementation
(github.com/jaebak/EventClassifierTransformer, files EventClassifierTransformer.py, LossFunction.py and
Disco.py), the baseline `bench_train.py` reads its ratios against.

* `PaperETN` is `EventClassifierTransformerNetwork` line for line: a Python loop over per-feature embedding
  networks `nn.Sequential(nn.Linear(1, 4), nn.GELU(), nn.Linear(4, 16), nn.GELU())`, sequence-first
  `nn.MultiheadAttention(16, 4, dropout=0.1)` for the encoder and the class-token attention, `nn.Dropout(0.1)`
  before every residual addition, output (batch, 1) through a sigmoid.
* `distance_corr` is their `Disco.distance_corr` (from gkasieczka/DisCo): N x N distance matrices built from
  `repeat` copies, double centring, power 1.
* `bce_loss` and `bce_disco_loss` are their `bce_disco_loss.forward`: `nn.BCELoss` on the events in the data
  scope (120 < m < 130), plus `disco_factor` times DisCo(mass, output) over all background events of the batch
  with unit weights (`normedweight = torch.tensor([1.] * len(mass))`, built on the host every step, as theirs
  is).
"""

from __future__ import annotations

import torch
from torch import nn


class PaperETN(nn.Module):
    """`EventClassifierTransformerNetwork(nvars, dropout=0.1, nodes=16, nheads=4, linear_factor=4)`."""

    def __init__(
        self, nvars: int, dropout: float = 0.1, nodes: int = 16, nheads: int = 4, linear_factor: int = 4
    ):
        super().__init__()
        self.embed = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(1, linear_factor), nn.GELU(), nn.Linear(linear_factor, nodes), nn.GELU()
                )
                for _ in range(nvars)
            ]
        )
        self.pre_attn_norm = nn.LayerNorm(nodes)
        self.attn = nn.MultiheadAttention(embed_dim=nodes, num_heads=nheads, dropout=dropout)
        self.pre_fc_norm = nn.LayerNorm(nodes)
        self.fc1 = nn.Linear(nodes, linear_factor * nodes)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(linear_factor * nodes, nodes)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, nodes), requires_grad=True)
        self.cls_pre_attn_norm = nn.LayerNorm(nodes)
        self.cls_attn = nn.MultiheadAttention(embed_dim=nodes, num_heads=nheads, dropout=dropout)
        self.cls_pre_fc_norm = nn.LayerNorm(nodes)
        self.cls_fc = nn.Linear(nodes, 1)
        self.sigmoid = torch.nn.Sigmoid()
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var_embed_list = []
        for ivar, var_embed_nn in enumerate(self.embed):
            var_embed_list.append(var_embed_nn(x[:, ivar].unsqueeze(1)))
        var_embed = torch.stack(var_embed_list, axis=1)  # (batch, nvars, nodes)
        x = var_embed.permute(1, 0, 2).contiguous()  # (nvars, batch, nodes)
        residual = x
        x = self.pre_attn_norm(x)
        x = self.attn(x, x, x)[0]
        x = self.dropout(x)
        x += residual
        residual = x
        x = self.pre_fc_norm(x)
        x = self.act(self.fc1(x))
        x = self.fc2(x)
        x = self.dropout(x)
        x += residual
        cls_tokens = self.cls_token.expand(1, x.size(1), -1)  # (1, batch, nodes)
        residual = cls_tokens
        u = torch.cat((cls_tokens, x), dim=0)
        u = self.cls_pre_attn_norm(u)
        x = self.cls_attn(cls_tokens, u, u)[0]
        x = self.dropout(x)
        x += residual
        x = self.cls_pre_fc_norm(x)
        x = x.permute(1, 0, 2)
        x = x.flatten(start_dim=1)
        x = self.cls_fc(x)
        return self.sigmoid(x)  # (batch, 1)


def distance_corr(
    var_1: torch.Tensor, var_2: torch.Tensor, normedweight: torch.Tensor, power: int = 1
) -> torch.Tensor:
    """`Disco.distance_corr` of the authors' code (gkasieczka/DisCo), verbatim."""
    xx = var_1.view(-1, 1).repeat(1, len(var_1)).view(len(var_1), len(var_1))
    yy = var_1.repeat(len(var_1), 1).view(len(var_1), len(var_1))
    amat = (xx - yy).abs()

    xx = var_2.view(-1, 1).repeat(1, len(var_2)).view(len(var_2), len(var_2))
    yy = var_2.repeat(len(var_2), 1).view(len(var_2), len(var_2))
    bmat = (xx - yy).abs()

    amatavg = torch.mean(amat * normedweight, dim=1)
    Amat = (
        amat
        - amatavg.repeat(len(var_1), 1).view(len(var_1), len(var_1))
        - amatavg.view(-1, 1).repeat(1, len(var_1)).view(len(var_1), len(var_1))
        + torch.mean(amatavg * normedweight)
    )

    bmatavg = torch.mean(bmat * normedweight, dim=1)
    Bmat = (
        bmat
        - bmatavg.repeat(len(var_2), 1).view(len(var_2), len(var_2))
        - bmatavg.view(-1, 1).repeat(1, len(var_2)).view(len(var_2), len(var_2))
        + torch.mean(bmatavg * normedweight)
    )

    ABavg = torch.mean(Amat * Bmat * normedweight, dim=1)
    AAavg = torch.mean(Amat * Amat * normedweight, dim=1)
    BBavg = torch.mean(Bmat * Bmat * normedweight, dim=1)

    if power == 1:
        return torch.mean(ABavg * normedweight) / torch.sqrt(
            torch.mean(AAavg * normedweight) * torch.mean(BBavg * normedweight)
        )
    if power == 2:
        return torch.mean(ABavg * normedweight) ** 2 / (
            torch.mean(AAavg * normedweight) * torch.mean(BBavg * normedweight)
        )
    return (
        torch.mean(ABavg * normedweight)
        / torch.sqrt(torch.mean(AAavg * normedweight) * torch.mean(BBavg * normedweight))
    ) ** power


_BCE = nn.BCELoss(reduction="none")


def bce_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mass: torch.Tensor,
    data_scope_min: float = 120.0,
    data_scope_max: float = 130.0,
) -> torch.Tensor:
    """The classifier term of their `bce_disco_loss.forward`: mean BCE over the events in the data scope."""
    mass_list = mass.squeeze()
    with torch.no_grad():
        mass_mask = ((mass_list > data_scope_min) & (mass_list < data_scope_max)).unsqueeze(1)
    output_window = output[mass_mask].unsqueeze(1)
    target_window = target[mass_mask].unsqueeze(1)
    return torch.mean(_BCE(output_window, target_window))


def bce_disco_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mass: torch.Tensor,
    disco_factor: float = 10.0,
    background_label: int = 0,
) -> torch.Tensor:
    """Their `bce_disco_loss(disco_factor).forward(output, target, mass)`; all arguments (batch, 1)."""
    loss = bce_loss(output, target, mass)
    mass_list = mass.squeeze()
    output_list = output.squeeze()
    normedweight = torch.tensor([1.0] * len(mass))
    with torch.no_grad():
        mask = target.squeeze() == background_label
    disco = distance_corr(mass_list[mask], output_list[mask], normedweight[mask])
    return loss + disco_factor * disco


def state_from_project(project: nn.Module) -> dict[str, torch.Tensor]:
    """The project ETN's parameters in `PaperETN`'s layout (for the equivalence check)."""
    s = project.state_dict()
    out: dict[str, torch.Tensor] = {}
    for j in range(s["embed.weight1"].shape[0]):
        out[f"embed.{j}.0.weight"] = s["embed.weight1"][j].T.clone()
        out[f"embed.{j}.0.bias"] = s["embed.bias1"][j].clone()
        out[f"embed.{j}.2.weight"] = s["embed.weight2"][j].T.clone()
        out[f"embed.{j}.2.bias"] = s["embed.bias2"][j].clone()
    names = {
        "attn_norm": "pre_attn_norm",
        "ffn_norm": "pre_fc_norm",
        "ffn.0": "fc1",
        "ffn.2": "fc2",
        "cls_kv_norm": "cls_pre_attn_norm",
        "cls_norm": "cls_pre_fc_norm",
        "head": "cls_fc",
        "attn": "attn",
        "cls_attn": "cls_attn",
        "cls_token": "cls_token",
    }
    for key, value in s.items():
        if key.startswith("embed."):
            continue
        for ours, theirs in sorted(names.items(), key=lambda kv: -len(kv[0])):
            if key == ours or key.startswith(ours + "."):
                out[theirs + key[len(ours) :]] = value.clone()
                break
    return out
