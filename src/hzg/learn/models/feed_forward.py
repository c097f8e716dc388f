"""The position-wise feed-forward network Linear - GELU - Linear of the attention models, fused when scoring.

Without an autograd graph (scoring, validation) on a CPU with oneDNN, each linear layer is one oneDNN matrix
product with its bias, and the first with the GELU, in the product's epilogue
(`torch.ops.mkldnn._linear_pointwise`, the fused kernel PyTorch's inductor emits for linear + pointwise on a
CPU). The (events, tokens, hidden) tensor between them is written once instead of three times (the bias
copied into it, the product added, the GELU's output), which is most of the ETN's scoring time at a large
batch. The numbers are PyTorch's unfused ones: equal to the last bit on this project's CPUs (tested to
float32 rounding elsewhere). Training (an autograd graph), other devices and dtypes, `torch.func.vmap` and a
PyTorch without the kernel take the plain layers.
"""

from __future__ import annotations

import torch
from torch import nn

#: oneDNN's fused linear + pointwise kernel, where this PyTorch has one (x86 and ARM builds with oneDNN)
_FUSED = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def fusable(x: torch.Tensor, *layers: nn.Linear) -> bool:
    """Whether the fused oneDNN kernel can compute these layers on `x`: no autograd graph to record, a dense
    float32 CPU tensor (not a `vmap` batch), float32 CPU layers with biases, oneDNN present."""
    if _FUSED is None or not torch.backends.mkldnn.is_available():
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous() or x.numel() == 0:
        return False
    if torch._C._functorch.is_batchedtensor(x):
        return False
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    if any(p is None or p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)))


class FeedForward(nn.Sequential):
    """Linear(d_in, hidden) - GELU - Linear(hidden, d_out): the `nn.Sequential` it replaces (the same modules,
    parameter names 0.weight ... 2.bias and initialisation), fused when scoring on a CPU (module doc)."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, activation, second = self[0], self[1], self[2]
        if fusable(x, first, second):
            h = _FUSED(x, first.weight, first.bias, "gelu", [], "none")  # GELU with erf, as nn.GELU()
            return _FUSED(h, second.weight, second.bias, "none", [], "")
        return second(activation(first(x)))
