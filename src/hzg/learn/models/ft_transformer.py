"""FT-Transformer of Gorishniy et al. 2021 ("Revisiting Deep Learning Models for Tabular Data").

Feature tokenizer (T_j = b_j + x_j W_j, all features at once), a [CLS] token appended to the
tokens, pre-norm transformer blocks (the first block has no LayerNorm before its attention; the
last block updates only the [CLS] token, as in the paper) with ReGLU feed-forward networks, and the
prediction head LayerNorm -> ReLU -> Linear on [CLS], followed by a sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hzg.learn.models.etn import MultiHeadAttention
from hzg.learn.models.missing import MissingTokens


class FeatureTokenizer(nn.Module):
    """Numerical feature tokenizer: token j = x_j * W_j + b_j, batched over features."""

    def __init__(self, n_features: int, d_token: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_token)
        self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map features (batch, n_features) to tokens (batch, n_features, d_token)."""
        return x.unsqueeze(-1) * self.weight + self.bias


class ReGLU(nn.Module):
    """ReGLU activation: a * relu(b) for the two halves (a, b) of the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the last dimension."""
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class FTBlock(nn.Module):
    """Pre-norm transformer block; optionally without the first LayerNorm and/or updating only [CLS]."""

    def __init__(
        self,
        d_token: int,
        n_heads: int,
        d_hidden: int,
        attention_dropout: float,
        ffn_dropout: float,
        residual_dropout: float,
        attention_norm: bool,
        cls_only: bool,
    ) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_token) if attention_norm else nn.Identity()
        self.attn = MultiHeadAttention(d_token, n_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d_token)
        self.ffn = nn.Sequential(
            nn.Linear(d_token, 2 * d_hidden), ReGLU(), nn.Dropout(ffn_dropout), nn.Linear(d_hidden, d_token)
        )
        self.drop = nn.Dropout(residual_dropout)
        self.cls_only = cls_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Update tokens x (batch, T, d); the [CLS] token is the last one (only it is returned if
        cls_only)."""
        h = self.attn_norm(x)
        if self.cls_only:
            x, q = x[:, -1:], h[:, -1:]
            x = x + self.drop(self.attn(q, h))
        else:
            x = x + self.drop(self.attn(h))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class FTTransformer(nn.Module):
    """FT-Transformer binary classifier (output: signal probability).

    `missing` (positions of the inputs that may be NaN; `hzg.learn.models.missing`): each gets a learned
    token that replaces its tokenizer output wherever it is NaN. Empty: no such parameter."""

    def __init__(
        self,
        n_features: int,
        d_token: int = 32,
        n_blocks: int = 2,
        n_heads: int = 4,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.1,
        residual_dropout: float = 0.0,
        missing: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        d_hidden = int(d_token * ffn_factor)
        self.tokenizer = FeatureTokenizer(n_features, d_token)
        bound = 1.0 / math.sqrt(d_token)
        self.cls_token = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))
        self.blocks = nn.Sequential(
            *(
                FTBlock(
                    d_token,
                    n_heads,
                    d_hidden,
                    attention_dropout,
                    ffn_dropout,
                    residual_dropout,
                    attention_norm=i > 0,
                    cls_only=i == n_blocks - 1,
                )
                for i in range(n_blocks)
            )
        )
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, 1))
        # last: the model without missing inputs draws its initial weights as before
        self.missing = MissingTokens(n_features, missing, d_token) if len(missing) else None

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The feature tokens (batch, n_features, d_token), learned tokens in place of missing values."""
        if self.missing is None:
            return self.tokenizer(x)
        x, mask = self.missing.zeroed(x)
        return self.missing(self.tokenizer(x), mask)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for features x (batch, n_features)."""
        t = self.tokens(x)
        t = torch.cat((t, self.cls_token.expand(t.shape[0], -1, -1)), dim=1)
        return self.head(self.blocks(t)[:, -1]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for features x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))
