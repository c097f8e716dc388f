"""What the attention models look at: mean attention maps and a Grad-CAM-style attribution per input feature.

For the ETN (`hzg.learn.models.etn`, with or without jet features), the FT-Transformer
(`hzg.learn.models.ft_transformer`) and the ETN with the object stream (`hzg.learn.models.etn_objects`,
cross-attention or concatenation), on the test split of one trial, separately for signal and background
(means weighted by the physical event weight):

- the attention weights softmax(q k^T / sqrt(d_head)) of every attention block and head (self-attention of
  each token stream, the cross-attention between them, the class token's), computed explicitly
  (`keep_weights` of `etn.MultiHeadAttention` and `etn_objects.MaskedAttention`; the fused kernels do not
  expose them), with the model in evaluation mode (no dropout): rows (queries) sum to 1. A padded object slot
  gets weight 0 as a key, and a row of a padded object query is averaged over the events where that object
  exists only;
- per token, grad x activation of the logit w.r.t. the token right after the embedding (the ETN's per-feature
  FFN, the FT-Transformer's tokenizer, the object embedding), summed over d_model, its absolute value (how
  much the token moves the logit, whichever way), averaged over events and normalised to sum to 1 over all
  tokens (features, then object slots).

Everything is batched over events (no loop over events, features or heads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hzg import metrics
from hzg.learn.classifier import Classifier
from hzg.learn.models.etn import EventClassifierTransformer, MultiHeadAttention
from hzg.learn.models.etn_objects import MaskedAttention, ObjectETN
from hzg.learn.models.ft_transformer import FTTransformer
from hzg.learn.multiclass import unwrap
from hzg.learn.training import load_dataset
from hzg.registry import TEST

#: label of the ETN's class token and of the FT-Transformer's [CLS] token
ETN_CLASS_TOKEN, FT_CLASS_TOKEN = "class", "[CLS]"


@dataclass
class AttentionBlock:
    """Mean attention weights of one attention block, per head, for signal and background.

    Attributes:
        name: The block's module name in the model ("attn", "cls_attn", "blocks.0.attn", ...).
        title: What the block is, for plots.
        queries: Labels of the attending tokens (rows).
        keys: Labels of the attended tokens (columns).
        signal: Weighted mean attention weights of the signal events, (heads, queries, keys).
        background: The same for the background events.
    """

    name: str
    title: str
    queries: list[str]
    keys: list[str]
    signal: np.ndarray
    background: np.ndarray


@dataclass
class Interpretation:
    """Mean attention maps of every block and the Grad-CAM-style attribution of every feature.

    Attributes:
        features: The labels of the tokens the attribution is given for: the model's input features, in
            token order, then (the object model) its object slots.
        blocks: The attention blocks, in the order the model runs them.
        gradcam_signal: Attribution per token of the signal events, (n_tokens,), summing to 1.
        gradcam_background: The same for the background events.
    """

    features: list[str]
    blocks: list[AttentionBlock]
    gradcam_signal: np.ndarray
    gradcam_background: np.ndarray


AttentionModule = MultiHeadAttention | MaskedAttention


def attention_modules(model: nn.Module) -> dict[str, AttentionModule]:
    """The attention modules of `model` by module name, in the order they were registered (and run)."""
    model = unwrap(model)  # a multiclass network: the binary model's modules and names
    return {
        name: m for name, m in model.named_modules() if isinstance(m, (MultiHeadAttention, MaskedAttention))
    }


def has_attention(model: nn.Module) -> bool:
    """Whether `interpret` supports `model` (the ETN, the FT-Transformer and the ETN with objects)."""
    model = unwrap(model)
    return isinstance(model, (EventClassifierTransformer, FTTransformer, ObjectETN))


def token_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the tokens (B, n_tokens, d) of the Grad-CAM attribution, in label order:
    the feature tokens, then (the object model) the object tokens."""
    model = unwrap(model)
    if isinstance(model, EventClassifierTransformer):
        return [model.embed]
    if isinstance(model, FTTransformer):
        return [model.tokenizer]
    if isinstance(model, ObjectETN):
        return [model.embed, model.obj_embed]
    raise TypeError(f"{type(model).__name__} has no tokens (only the ETN, FT-Transformer and ETN+objects)")


def token_labels(
    model: nn.Module, features: Sequence[str], object_labels: Sequence[str] | None = None
) -> list[str]:
    """Labels of the tokens of the Grad-CAM attribution: the features, or (the object model) its event
    features then its object slots (`object_labels`, `hzg.data.objects.slot_names`; "object<i>" if none)."""
    model = unwrap(model)
    if not isinstance(model, ObjectETN):
        return list(features)
    objects = (
        list(object_labels)
        if object_labels is not None
        else [f"object{i + 1}" for i in range(model.n_objects)]
    )
    if len(objects) != model.n_objects:
        raise ValueError(
            f"the model has {model.n_objects} object slots, got {len(objects)} labels: {objects}"
        )
    return [*list(features)[: model.n_event], *objects]


def block_tokens(
    model: nn.Module, features: Sequence[str], object_labels: Sequence[str] | None = None
) -> dict[str, tuple[str, list[str], list[str]]]:
    """Title, query labels and key labels of every attention block of `model`, by module name."""
    model = unwrap(model)
    feats = list(features)
    if isinstance(model, ObjectETN):
        tokens = token_labels(model, features, object_labels)
        feats, objs = tokens[: model.n_event], tokens[model.n_event :]
        blocks = {
            "attn": ("Self-attention of the feature tokens", feats, feats),
            "obj_attn": ("Self-attention of the object tokens (padding masked)", objs, objs),
        }
        if model.merge == "cross":
            blocks["merge_attn"] = (
                "Cross-attention: the feature tokens query the object tokens",
                feats,
                objs,
            )
            blocks["cls_attn"] = ("Class-token attention", [ETN_CLASS_TOKEN], [ETN_CLASS_TOKEN, *feats])
        else:
            both = [*feats, *objs]
            blocks["merge_attn"] = (
                "Self-attention over feature and object tokens (concatenated)",
                both,
                both,
            )
            blocks["cls_masked_attn"] = ("Class-token attention", [ETN_CLASS_TOKEN], [ETN_CLASS_TOKEN, *both])
        return blocks
    if isinstance(model, EventClassifierTransformer):
        return {
            "attn": ("Self-attention of the feature tokens", feats, feats),
            "cls_attn": ("Class-token attention", [ETN_CLASS_TOKEN], [ETN_CLASS_TOKEN, *feats]),
        }
    if isinstance(model, FTTransformer):
        keys = [*feats, FT_CLASS_TOKEN]
        return {
            f"blocks.{i}.attn": (
                f"Block {i + 1} attention" + (f" ({FT_CLASS_TOKEN} only)" if block.cls_only else ""),
                [FT_CLASS_TOKEN] if block.cls_only else keys,
                keys,
            )
            for i, block in enumerate(model.blocks)
        }
    raise TypeError(f"{type(model).__name__} has no attention")


@contextlib.contextmanager
def recording_attention(model: nn.Module) -> Iterator[dict[str, AttentionModule]]:
    """Within the block, every attention module of `model` keeps its last weights (`.weights`) and, a masked
    one, which of its queries are real tokens (`.query_valid`)."""
    modules = attention_modules(model)
    for m in modules.values():
        m.keep_weights = True
    try:
        yield modules
    finally:
        for m in modules.values():
            m.keep_weights, m.weights = False, None
            if isinstance(m, MaskedAttention):
                m.query_valid = None


def _query_valid(module: AttentionModule, weights: torch.Tensor) -> torch.Tensor:
    """(B, queries) 1 where a query of the module's last call is a real token, 0 where it is padding."""
    valid = getattr(module, "query_valid", None)
    return weights.new_ones(weights.shape[0], weights.shape[2]) if valid is None else valid.to(weights.dtype)


def batch_interpretation(
    model: nn.Module, x: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Attention weights and token attributions of a batch of (normalised) events.

    Args:
        model: An ETN, FT-Transformer or ETN with objects; put in evaluation mode here (no dropout).
        x: Features (B, n_features).

    Returns:
        The attention weights of every block by module name, (B, heads, queries, keys); which queries of
        every block are real tokens (B, queries), 1 or 0 (padded object slots); and the attribution
        |sum_d (d logit / d t_jd) t_jd| of every token t_j (`token_labels`), (B, n_tokens).
    """
    model.eval()
    tokens: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: tokens.append(out)) for m in token_modules(model)]
    try:
        with recording_attention(model) as modules, torch.enable_grad():
            logits = model.logits(x)
            weights = {name: m.weights for name, m in modules.items()}
            queries = {name: _query_valid(m, weights[name]) for name, m in modules.items()}
    finally:
        for hook in hooks:
            hook.remove()
    # events are independent (no batch statistics): the gradient of the sum is every event's gradient
    grads = torch.autograd.grad(logits.sum(), tokens)
    attribution = torch.cat([(g * t).sum(-1).abs().detach() for g, t in zip(grads, tokens)], dim=1)
    return weights, queries, attribution


def interpret(
    model: nn.Module,
    x: torch.Tensor,
    is_signal: np.ndarray,
    weight: np.ndarray,
    features: Sequence[str],
    batch_size: int = 8192,
    object_labels: Sequence[str] | None = None,
) -> Interpretation:
    """Weighted mean attention maps and Grad-CAM attribution of signal and background events.

    Args:
        model: An ETN, FT-Transformer or ETN with objects.
        x: Normalised features (n, n_features).
        is_signal: (n,) true for signal events.
        weight: (n,) event weights of the means.
        features: The model's input columns (token labels).
        batch_size: Events per forward and backward pass.
        object_labels: The object slots' names, for the object model (`hzg.data.objects.slot_names`).

    Returns:
        The maps (rows sum to 1; a padded object query's row averaged over the events that have the object)
        and attributions (sum to 1) of each class.
    """
    # class weights (2, n): row 0 background, row 1 signal
    w = torch.from_numpy(np.stack([np.where(is_signal, 0.0, weight), np.where(is_signal, weight, 0.0)]))
    totals = w.sum(dim=1)
    if not (totals > 0).all():
        raise ValueError(f"need a positive total weight of signal and of background, got {totals.tolist()}")
    tokens = token_labels(model, features, object_labels)
    att_sums: dict[str, torch.Tensor] = {}
    query_sums: dict[str, torch.Tensor] = {}
    attr_sum = torch.zeros(2, len(tokens), dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        wb = w[:, start : start + batch_size]
        weights, queries, attribution = batch_interpretation(model, x[start : start + batch_size])
        for name, a in weights.items():
            q = queries[name].double()
            att_sums[name] = att_sums.get(name, 0) + torch.einsum("cb,bq,bhqk->chqk", wb, q, a.double())
            query_sums[name] = query_sums.get(name, 0) + wb @ q
        attr_sum += wb @ attribution.double()
    labels = block_tokens(model, features, object_labels)
    blocks = []
    for name, s in att_sums.items():
        # a query that no event of a class has (an object slot always empty) keeps a row of zeros
        mean = s / query_sums[name].clamp(min=torch.finfo(torch.float64).tiny)[:, None, :, None]
        blocks.append(AttentionBlock(name, *labels[name], *mean.flip(0).numpy()))
    gradcam = (attr_sum / attr_sum.sum(dim=1, keepdim=True)).numpy()
    return Interpretation(tokens, blocks, gradcam[1], gradcam[0])


def held_out_events(
    classifier: Classifier, feature_paths: Sequence[str | Path], window: Sequence[float]
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Normalised features, signal flags and weights of the test events of the checkpoint's trial in the mass
    window (the events a classifier is judged on), from the feature Parquet files of all samples (read and
    checked as for training, `training.load_dataset`)."""
    data = load_dataset(feature_paths, classifier.features, int(classifier.checkpoint["trial"]))
    keep = (data.split == TEST) & metrics.in_window(data.mass, window)
    return torch.from_numpy(classifier.normaliser(data.x[keep])), data.y[keep].astype(bool), data.weight[keep]


def describe(result: Interpretation) -> str:
    """The Grad-CAM attribution of each feature and the class-token attention, as text for the log."""
    lines = [
        f"{f:>20s}  signal {s:.3f}  background {b:.3f}"
        for f, s, b in zip(result.features, result.gradcam_signal, result.gradcam_background)
    ]
    for block in result.blocks:
        if len(block.queries) == 1:
            sig, bkg = block.signal.mean(axis=0)[0], block.background.mean(axis=0)[0]
            lines.append(f"{block.title}, mean over heads (signal / background):")
            lines += [f"{k:>20s}  {s:.3f} / {b:.3f}" for k, s, b in zip(block.keys, sig, bkg)]
    return "Grad-CAM attribution (sum 1):\n" + "\n".join(lines)
