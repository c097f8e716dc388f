"""ETN with a second token stream of reconstructed objects (issue 14; seed paper 003's cross-attention).

Inputs: the row of a run's input columns, the ETN's event features first, then the object block of
`hzg.data.objects` (n_objects slots of pT, eta, phi, E, type; [l1, l2, gamma, photons..., jets...]). The
type column carries the codes as they are (the normaliser leaves it alone): type 0 is padding, and a padded
slot is masked out of every attention as a key, so its values change nothing (tested).

Two streams:
* feature tokens: the ETN's per-feature embedding (`etn.FeatureEmbedding`) and one pre-norm encoder block
  (self-attention + FFN), as in `etn.EventClassifierTransformer`;
* object tokens: a small per-object embedding of the continuous properties, Linear(4, d) - GELU -
  Linear(d, d), plus a learned embedding of the type, then one pre-norm encoder block whose self-attention
  has a key-padding mask.

Merge (hyper-parameter `merge`):
* "cross" (the default, model etn_objects): one pre-norm cross-attention block, queries from the feature
  tokens, keys and values from the object tokens (padding masked), then an FFN. 003 lets one stream query
  the other; we let the feature tokens query because (i) they are the ETN's readout: the class-token head
  stays that of the ETN, over [class, feature tokens], and each of the paper's features gathers the object
  context it needs; (ii) the key-padding mask then handles the variable number of objects exactly, whereas
  object queries would give padded rows that must be masked again downstream; (iii) the cost is
  n_features x n_objects per head, small.
* "concat" (model etn_objects_concat, 003's comparison): one pre-norm self-attention block over the
  concatenated [feature tokens, object tokens] (padding masked as keys), then the class token attends over
  [class, feature tokens, object tokens] (padding masked).

Attention with a mask runs, on the CPU, in the compiled kernel of `hzg.learn.models.small_attention` (several
times faster than PyTorch's here), which has no mask: a masked key gets a score lowered by 1e5 / sqrt(d_h + 1)
through one more dimension per head (`MaskedAttention._masked_small_attention`), so its weight is exactly 0;
elsewhere in `torch.nn.functional.scaled_dot_product_attention` with a boolean mask. The unmasked
feature-token self-attention and the class-token attention of "cross" reuse `etn.MultiHeadAttention`. No
Python loop over events, objects or heads. The candidate's three objects are always present; an input row
without any object (random inputs in tests) attends to its padding, zeroed, so it gives a finite,
value-independent output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hzg.data import objects as obj
from hzg.learn.models import fused, small_attention
from hzg.learn.models.dropout import Dropout
from hzg.learn.models.etn import FeatureEmbedding, MultiHeadAttention

MERGES = ("cross", "concat")
#: added to a masked key's score (times sqrt(d_head + 1)) in the CPU kernel: exp of it is exactly 0
MASK_BIAS = -1.0e5


class MaskedAttention(nn.Module):
    """Multi-head attention with packed q/k/v projections (laid out as `nn.MultiheadAttention`'s) and a key
    mask (batch, Tk), True where a key takes part; dropout on the attention weights in training."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_heads = n_heads
        self.dropout = float(dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)
        # as etn.MultiHeadAttention's (hzg.results.interpret.recording_attention): with keep_weights set, the
        # weights of the last call (batch, heads, Tq, Tk; 0 at a masked key) and which queries are real
        # tokens (batch, Tq), not padding
        self.keep_weights = False
        self.weights: torch.Tensor | None = None
        self.query_valid: torch.Tensor | None = None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        return t.reshape(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor,
        key_mask: torch.Tensor,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from `query` (B, Tq, d) to `key_value` (B, Tk, d) over the keys where `key_mask` (B, Tk).
        `query_mask` (B, Tq), where the queries are padding too (a self-attention), is only recorded for the
        attention maps: a padded query's output is never read."""
        d = query.shape[-1]
        q = fused.linear(query, self.in_proj_weight[:d], self.in_proj_bias[:d])
        k, v = fused.linear(key_value, self.in_proj_weight[d:], self.in_proj_bias[d:]).chunk(2, dim=-1)
        dropout = self.dropout if self.training else 0.0
        if self.keep_weights:
            return self._explicit(q, k, v, key_mask, query_mask, dropout)
        if small_attention.usable(q, k, v):
            out = self._masked_small_attention(q, k, v, key_mask, dropout)
            return fused.linear(out, self.out_proj.weight, self.out_proj.bias)
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            attn_mask=key_mask[:, None, None, :],
            dropout_p=dropout,
        )
        return self.out_proj(out.transpose(1, 2).reshape(query.shape))

    def _explicit(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_mask: torch.Tensor,
        query_mask: torch.Tensor | None,
        dropout: float,
    ) -> torch.Tensor:
        """Attention from the explicit weights softmax(q k^T / sqrt(d_head)) over the unmasked keys, kept in
        `weights` with the query mask in `query_valid`."""
        shape = q.shape
        qh, kh, vh = self._heads(q), self._heads(k), self._heads(v)
        scores = qh @ kh.transpose(-1, -2) * qh.shape[-1] ** -0.5
        weights = scores.masked_fill(~key_mask[:, None, None, :], float("-inf")).softmax(dim=-1)
        self.weights = weights.detach()
        valid = query_mask if query_mask is not None else key_mask.new_ones(shape[:2])
        self.query_valid = valid.detach()
        out = F.dropout(weights, dropout, training=bool(dropout)) @ vh
        return self.out_proj(out.transpose(1, 2).reshape(shape))

    def _masked_small_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, dropout: float
    ) -> torch.Tensor:
        """The masked attention in the unmasked CPU kernel: every head gets one more dimension, 1 in the
        query and 0 or MASK_BIAS in the key, so a masked key's score is lowered by |MASK_BIAS| / sqrt(d_h + 1)
        and its weight is exactly 0 (the kernel's exp is 0 below -87: no denormal weights): its value adds
        exactly nothing. The query is scaled by sqrt((d_h + 1) / d_h) so the other scores are those of d_h;
        the values get a zero dimension, dropped from the output."""
        b, tq, d = q.shape
        tk, h = k.shape[1], self.n_heads
        dh = d // h
        scale = ((dh + 1) / dh) ** 0.5
        bias = torch.where(key_mask, 0.0, MASK_BIAS).to(k.dtype)
        q5 = torch.cat((q.reshape(b, tq, h, dh) * scale, q.new_ones(b, tq, h, 1)), dim=-1).view(
            b, tq, h * (dh + 1)
        )
        k5 = torch.cat((k.reshape(b, tk, h, dh), bias[:, :, None, None].expand(b, tk, h, 1)), dim=-1)
        v5 = torch.cat((v.reshape(b, tk, h, dh), v.new_zeros(b, tk, h, 1)), dim=-1)
        out = small_attention.attention(
            q5, k5.reshape(b, tk, h * (dh + 1)), v5.reshape(b, tk, h * (dh + 1)), h, dropout
        )
        return out.view(b, tq, h, dh + 1)[..., :dh].reshape(b, tq, d)


def _ffn(d_model: int, hidden: int) -> fused.FeedForward:
    return fused.FeedForward(d_model, hidden, d_model)


class ObjectEmbedding(nn.Module):
    """Token of each object: Linear(4, d) - GELU - Linear(d, d) of (pT, eta, phi, E) plus a type embedding."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        n_cont = len(obj.CONTINUOUS)
        self.net = fused.FeedForward(n_cont, d_model, d_model)
        self.type_embedding = nn.Embedding(obj.N_TYPES, d_model)

    def forward(self, props: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(B, N, 4) properties and (B, N) integer types -> (B, N, d) tokens."""
        return self.net(props) + self.type_embedding(types)


class ObjectETN(nn.Module):
    """ETN feature tokens + object tokens, merged by cross-attention (or by concatenation)."""

    merge_default = "cross"

    def __init__(
        self,
        n_features: int,
        n_objects: int,
        d_model: int = 16,
        embed_hidden: int = 4,
        n_heads: int = 4,
        ffn_hidden: int = 64,
        dropout: float = 0.1,
        merge: str = "cross",
    ) -> None:
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        n_props = len(obj.PROPERTIES)
        if n_objects < 1 or n_features - n_props * n_objects < 1:
            raise ValueError(
                f"{n_features} inputs cannot hold {n_objects} objects of {n_props} properties and a feature"
            )
        self.merge = merge
        self.n_objects = int(n_objects)
        self.n_event = int(n_features - n_props * n_objects)
        # feature tokens: the ETN's embedding and encoder block
        self.embed = FeatureEmbedding(self.n_event, d_model, embed_hidden)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.attn_norm = fused.LayerNorm(d_model)
        self.ffn = _ffn(d_model, ffn_hidden)
        self.ffn_norm = fused.LayerNorm(d_model)
        # object tokens: embedding and a masked encoder block
        self.obj_embed = ObjectEmbedding(d_model)
        self.obj_attn = MaskedAttention(d_model, n_heads, dropout)
        self.obj_attn_norm = fused.LayerNorm(d_model)
        self.obj_ffn = _ffn(d_model, ffn_hidden)
        self.obj_ffn_norm = fused.LayerNorm(d_model)
        # merge
        self.merge_attn = MaskedAttention(d_model, n_heads, dropout)
        self.merge_q_norm = fused.LayerNorm(d_model)
        self.merge_kv_norm = fused.LayerNorm(d_model) if merge == "cross" else None
        self.merge_ffn = _ffn(d_model, ffn_hidden)
        self.merge_ffn_norm = fused.LayerNorm(d_model)
        # class-token head, as the ETN's
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.cls_kv_norm = fused.LayerNorm(d_model)
        self.cls_attn = MultiHeadAttention(d_model, n_heads, dropout) if merge == "cross" else None
        self.cls_masked_attn = MaskedAttention(d_model, n_heads, dropout) if merge == "concat" else None
        self.cls_norm = fused.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)
        self.drop = Dropout(dropout)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Event features (B, F), object properties (B, N, 4) and types (B, N) (long) of inputs x."""
        objects = x[:, self.n_event :].reshape(x.shape[0], self.n_objects, len(obj.PROPERTIES))
        types = objects[..., -1].round().long().clamp(0, obj.N_TYPES - 1)
        return x[:, : self.n_event], objects[..., :-1], types

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for inputs x (batch, n_features)."""
        features, props, types = self.split(x)
        valid = types != obj.PADDING  # (B, N)
        # a padded slot's values never reach a valid token: zero them all the same (no NaN from garbage)
        props = props.masked_fill(~valid[..., None], 0.0)
        # an event without any object (never after the selection: l1, l2, gamma) attends to its padding,
        # which is then a fixed token (zero properties, the padding type): no NaN, no dependence on values
        valid = valid | ~valid.any(dim=1, keepdim=True)
        t = self.embed(features)
        t = t + self.drop(self.attn(self.attn_norm(t)))
        t = t + self.drop(self.ffn(self.ffn_norm(t)))
        o = self.obj_embed(props, types)
        on = self.obj_attn_norm(o)
        o = o + self.drop(self.obj_attn(on, on, valid, query_mask=valid))
        o = o + self.drop(self.obj_ffn(self.obj_ffn_norm(o)))
        cls = self.cls_token.expand(t.shape[0], -1, -1)
        if self.merge == "cross":
            t = t + self.drop(self.merge_attn(self.merge_q_norm(t), self.merge_kv_norm(o), valid))
            t = t + self.drop(self.merge_ffn(self.merge_ffn_norm(t)))
            kv = self.cls_kv_norm(torch.cat((cls, t), dim=1))
            c = self.cls_norm(cls + self.drop(self.cls_attn(cls, kv)))
        else:
            s = torch.cat((t, o), dim=1)
            mask = torch.cat((valid.new_ones(t.shape[:2]), valid), dim=1)
            sn = self.merge_q_norm(s)
            s = s + self.drop(self.merge_attn(sn, sn, mask, query_mask=mask))
            s = s + self.drop(self.merge_ffn(self.merge_ffn_norm(s)))
            kv = self.cls_kv_norm(torch.cat((cls, s), dim=1))
            mask = torch.cat((valid.new_ones(t.shape[0], 1), mask), dim=1)
            c = self.cls_norm(cls + self.drop(self.cls_masked_attn(cls, kv, mask)))
        return self.head(c[:, 0]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for inputs x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))


class ObjectETNConcat(ObjectETN):
    """`ObjectETN` with merge = "concat": one self-attention over [feature tokens, object tokens] (003's
    comparison), a model of its own so that its runs have their own name (etn_objects_concat_<loss>)."""

    def __init__(
        self,
        n_features: int,
        n_objects: int,
        d_model: int = 16,
        embed_hidden: int = 4,
        n_heads: int = 4,
        ffn_hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(n_features, n_objects, d_model, embed_hidden, n_heads, ffn_hidden, dropout, "concat")
