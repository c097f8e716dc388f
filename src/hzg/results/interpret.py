"""What the attention models look at: mean attention maps and a Grad-CAM-style attribution per input feature.

For the ETN (`hzg.learn.models.etn`) and the FT-Transformer (`hzg.learn.models.ft_transformer`), on the test
split of one trial, separately for signal and background (means weighted by the physical event weight):

- the attention weights softmax(q k^T / sqrt(d_head)) of every attention block and head, computed explicitly
  (`MultiHeadAttention.keep_weights`; the fused kernels do not expose them), with the model in evaluation mode
  (no dropout): rows (queries) sum to 1;
- per feature token, grad x activation of the logit w.r.t. the token right after the embedding (the ETN's
  per-feature FFN, the FT-Transformer's tokenizer), summed over d_model, its absolute value (how much the
  token moves the logit, whichever way), averaged over events and normalised to sum to 1.

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
        features: The model's input features, in token order.
        blocks: The attention blocks, in the order the model runs them.
        gradcam_signal: Attribution per feature of the signal events, (n_features,), summing to 1.
        gradcam_background: The same for the background events.
    """

    features: list[str]
    blocks: list[AttentionBlock]
    gradcam_signal: np.ndarray
    gradcam_background: np.ndarray


def attention_modules(model: nn.Module) -> dict[str, MultiHeadAttention]:
    """The attention modules of `model` by module name, in the order they were registered (and run)."""
    model = unwrap(model)  # a multiclass network: the binary model's modules and names
    return {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}


def has_attention(model: nn.Module) -> bool:
    """Whether `interpret` supports `model` (the ETN and the FT-Transformer)."""
    model = unwrap(model)
    return isinstance(model, (EventClassifierTransformer, FTTransformer))


def token_module(model: nn.Module) -> nn.Module:
    """The module whose output are the feature tokens (B, n_features, d): the Grad-CAM layer."""
    model = unwrap(model)
    if isinstance(model, EventClassifierTransformer):
        return model.embed
    if isinstance(model, FTTransformer):
        return model.tokenizer
    raise TypeError(f"{type(model).__name__} has no feature tokens (only the ETN and the FT-Transformer)")


def block_tokens(model: nn.Module, features: Sequence[str]) -> dict[str, tuple[str, list[str], list[str]]]:
    """Title, query labels and key labels of every attention block of `model`, by module name."""
    model = unwrap(model)
    feats = list(features)
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
def recording_attention(model: nn.Module) -> Iterator[dict[str, MultiHeadAttention]]:
    """Within the block, every attention module of `model` keeps its last weights (`.weights`)."""
    modules = attention_modules(model)
    for m in modules.values():
        m.keep_weights = True
    try:
        yield modules
    finally:
        for m in modules.values():
            m.keep_weights, m.weights = False, None


def batch_interpretation(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Attention weights and token attributions of a batch of (normalised) events.

    Args:
        model: An ETN or FT-Transformer; put in evaluation mode here (no dropout).
        x: Features (B, n_features).

    Returns:
        The attention weights of every block by module name, (B, heads, queries, keys), and the attribution
        |sum_d (d logit / d t_jd) t_jd| of every feature token t_j, (B, n_features).
    """
    model.eval()
    tokens: list[torch.Tensor] = []
    hook = token_module(model).register_forward_hook(lambda _m, _i, out: tokens.append(out))
    try:
        with recording_attention(model) as modules, torch.enable_grad():
            logits = model.logits(x)
            weights = {name: m.weights for name, m in modules.items()}
    finally:
        hook.remove()
    # events are independent (no batch statistics): the gradient of the sum is every event's gradient
    (grad,) = torch.autograd.grad(logits.sum(), tokens[0])
    return weights, (grad * tokens[0]).sum(-1).abs().detach()


def interpret(
    model: nn.Module,
    x: torch.Tensor,
    is_signal: np.ndarray,
    weight: np.ndarray,
    features: Sequence[str],
    batch_size: int = 8192,
) -> Interpretation:
    """Weighted mean attention maps and Grad-CAM attribution of signal and background events.

    Args:
        model: An ETN or FT-Transformer.
        x: Normalised features (n, n_features).
        is_signal: (n,) true for signal events.
        weight: (n,) event weights of the means.
        features: The model's feature names (token labels).
        batch_size: Events per forward and backward pass.

    Returns:
        The maps (rows sum to 1) and attributions (sum to 1) of each class.
    """
    # class weights (2, n): row 0 background, row 1 signal
    w = torch.from_numpy(np.stack([np.where(is_signal, 0.0, weight), np.where(is_signal, weight, 0.0)]))
    totals = w.sum(dim=1)
    if not (totals > 0).all():
        raise ValueError(f"need a positive total weight of signal and of background, got {totals.tolist()}")
    att_sums: dict[str, torch.Tensor] = {}
    attr_sum = torch.zeros(2, x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        wb = w[:, start : start + batch_size]
        weights, attribution = batch_interpretation(model, x[start : start + batch_size])
        for name, a in weights.items():
            att_sums[name] = att_sums.get(name, 0) + torch.einsum("cb,bhqk->chqk", wb, a.double())
        attr_sum += wb @ attribution.double()
    labels = block_tokens(model, features)
    blocks = [
        AttentionBlock(name, *labels[name], *(s / totals[:, None, None, None]).flip(0).numpy())
        for name, s in att_sums.items()
    ]
    gradcam = (attr_sum / attr_sum.sum(dim=1, keepdim=True)).numpy()
    return Interpretation(list(features), blocks, gradcam[1], gradcam[0])


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
