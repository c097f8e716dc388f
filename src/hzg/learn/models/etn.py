"""Event classifier transformer (arXiv:2401.00428, Sec. II, Sec. IV C and Fig. 2).

The architecture is that of the authors' public code (github.com/jaebak/EventClassifierTransformer,
`EventClassifierTransformerNetwork`), layer for layer. Each event feature is embedded into its own token by
its
own small feed-forward network, Linear(1, 4) - GELU - Linear(4, 16) - GELU, without positional encoding. One
encoder block contextualises the tokens: tokens are normalised and passed to multi-head self-attention, whose
output goes through dropout and is added back (residual); the same for the position-wise FFN 16 -> 64 -> 16
with
GELU (pre-norm). A trainable class token then queries the normalised [class, tokens] with a second multi-head
attention; after dropout and the residual addition, a LayerNorm, a linear layer and a sigmoid give the signal
probability. Dropout (p = 0.1) sits before every residual addition (the Dropout boxes of Fig. 2), and both
attentions drop their attention weights with the same p in training, as the authors' `nn.MultiheadAttention(
dropout=0.1)` does. The residual dropout is `hzg.learn.models.dropout.Dropout`, the same as `nn.Dropout` with
a cheaper
random mask on the CPU; the attention-weight dropout is done inside the CPU attention kernel (its mask, too,
is
seeded by torch's generator), elsewhere by `scaled_dot_product_attention`.

The per-feature embedding networks are batched into one tensor operation (weights of shape
(n_features, 1, h) and (n_features, h, d)), and attention uses packed q/k/v projections; no Python loop over
events, features or heads. On the CPU attention runs in a compiled kernel made for few tokens and many events
(`hzg.learn.models.small_attention`, about 4x faster than PyTorch's here), elsewhere in
`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hzg.learn.models import fused, small_attention
from hzg.learn.models.dropout import Dropout
from hzg.learn.models.missing import MissingTokens


class FeatureEmbedding(nn.Module):
    """Per-feature FFN embedding Linear(1, hidden) - GELU - Linear(hidden, d) - GELU, all features in one
    batched
    operation (feature j's token is the authors' `nn.Sequential(nn.Linear(1, 4), nn.GELU(), nn.Linear(4, 16),
    nn.GELU())` with weights weight1[j].T, bias1[j], weight2[j].T, bias2[j])."""

    def __init__(self, n_features: int, d_model: int = 16, hidden: int = 4) -> None:
        super().__init__()
        self.weight1 = nn.Parameter(torch.empty(n_features, 1, hidden))
        self.bias1 = nn.Parameter(torch.empty(n_features, hidden))
        self.weight2 = nn.Parameter(torch.empty(n_features, hidden, d_model))
        self.bias2 = nn.Parameter(torch.empty(n_features, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise each feature's layers like an independent `nn.Linear` (U(+-1/sqrt(fan_in)))."""
        for w, b in ((self.weight1, self.bias1), (self.weight2, self.bias2)):
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map features (batch, n_features) to tokens (batch, n_features, d_model)."""
        h = F.gelu(x.unsqueeze(-1) * self.weight1.squeeze(1) + self.bias1)  # (B, F, hidden)
        t = torch.bmm(h.transpose(0, 1), self.weight2)  # (F, B, d), one matmul per feature
        # bias, GELU and the (B, F, d) order everything downstream wants, in one pass on a CPU
        return fused.gelu_tokens(t, self.bias2)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with packed q/k/v projections and a fused attention kernel.

    On the CPU (float32/64) the kernel is `hzg.learn.models.small_attention`; otherwise
    `torch.nn.functional.scaled_dot_product_attention`. In training mode the attention weights are dropped
    with
    probability `dropout` (the rest scaled by 1 / (1 - dropout)), as in `nn.MultiheadAttention(dropout=...)`.

    Parameters are laid out as in `nn.MultiheadAttention` (`in_proj_weight` (3d, d), `in_proj_bias`,
    `out_proj`), with the same initialisation, so the two are interchangeable.

    With `keep_weights` set (`hzg.results.interpret.recording_attention`), the attention is computed
    explicitly as softmax(q k^T / sqrt(d_head)) v and the weights, detached, of the last call are kept in
    `weights` (batch, heads, Tq, Tk); the output is the same to float rounding. Off by default: training and
    scoring take the fused kernels.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        small_attention.dropout_threshold(dropout)  # raises unless 0 <= dropout < 1
        self.dropout = float(dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)
        self.keep_weights = False
        self.weights: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"heads={self.n_heads}, dropout={self.dropout}"

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, heads, T, d / heads)."""
        b, n, d = t.shape
        # contiguous: the fused CPU kernel is about 30 % faster on a dense (B, heads, T, d_head) layout
        return t.reshape(b, n, self.n_heads, d // self.n_heads).transpose(1, 2).contiguous()

    def forward(self, query: torch.Tensor, key_value: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from `query` (B, Tq, d) to `key_value` (B, Tk, d); self-attention when it is None."""
        d = query.shape[-1]
        if key_value is None:
            q, k, v = fused.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            q = fused.linear(query, self.in_proj_weight[:d], self.in_proj_bias[:d])
            k, v = fused.linear(key_value, self.in_proj_weight[d:], self.in_proj_bias[d:]).chunk(2, dim=-1)
        dropout = self.dropout if self.training else 0.0
        if self.keep_weights:
            return self._explicit(q, k, v, dropout, query.shape)
        if small_attention.usable(q, k, v):
            out = small_attention.attention(q, k, v, self.n_heads, dropout)
            return fused.linear(out, self.out_proj.weight, self.out_proj.bias)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if torch._C._functorch.is_batchedtensor(q):
            # inside torch.func.vmap (hzg.ensemble): plain matrix products, which vmap batches on every
            # backend (scaled_dot_product_attention lacks a batching rule for some of its kernels and falls
            # back to a loop)
            weights = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
            out = F.dropout(weights, dropout, training=bool(dropout)) @ v
        elif q.shape[2] == 1 and not dropout:
            # one query (the class token): plain broadcasting beats the fused kernel by 2x on CPU
            weights = ((q * k).sum(-1, keepdim=True) * q.shape[-1] ** -0.5).softmax(dim=2)
            out = (weights * v).sum(dim=2, keepdim=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).reshape(query.shape))

    def _explicit(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float, shape: torch.Size
    ) -> torch.Tensor:
        """Attention from the explicit weights softmax(q k^T / sqrt(d_head)), kept in `self.weights`."""
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        weights = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        self.weights = weights.detach()
        out = F.dropout(weights, dropout, training=bool(dropout)) @ v
        return self.out_proj(out.transpose(1, 2).reshape(shape))


class EventClassifierTransformer(nn.Module):
    """Event classifier transformer: per-feature tokens, one encoder block, class-token attention.

    `missing` (positions of the inputs that may be NaN; `hzg.learn.models.missing`): each gets a learned
    token that replaces its embedding wherever it is NaN. Empty (the paper's ETN): no such parameter, and
    the model is the one it always was."""

    def __init__(
        self,
        n_features: int,
        d_model: int = 16,
        embed_hidden: int = 4,
        n_heads: int = 4,
        ffn_hidden: int = 64,
        dropout: float = 0.1,
        missing: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.embed = FeatureEmbedding(n_features, d_model, embed_hidden)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.attn_norm = fused.LayerNorm(d_model)
        self.ffn = fused.FeedForward(
            d_model, ffn_hidden, d_model
        )  # the authors' Sequential, fused when scoring
        self.ffn_norm = fused.LayerNorm(d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.cls_kv_norm = fused.LayerNorm(d_model)
        self.cls_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cls_norm = fused.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)
        self.drop = Dropout(dropout)
        # last: the ETN without missing inputs (the paper's) draws its initial weights as it always did
        self.missing = MissingTokens(n_features, missing, d_model) if len(missing) else None

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The feature tokens (batch, n_features, d_model), learned tokens in place of missing values."""
        if self.missing is None:
            return self.embed(x)
        x, mask = self.missing.zeroed(x)
        return self.missing(self.embed(x), mask)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for features x (batch, n_features)."""
        t = self.tokens(x)
        t = t + self.drop(self.attn(self.attn_norm(t)))
        t = t + self.drop(self.ffn(self.ffn_norm(t)))
        cls = self.cls_token.expand(t.shape[0], -1, -1)
        kv = self.cls_kv_norm(torch.cat((cls, t), dim=1))
        c = self.cls_norm(cls + self.drop(self.cls_attn(cls, kv)))
        return self.head(c[:, 0]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for features x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))
