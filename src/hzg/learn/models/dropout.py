"""Dropout with a cheaper random mask on the CPU.

`torch.nn.Dropout` on the CPU draws one Bernoulli variate per element from a serial generator; at the ETN's
sizes
(8192 events x 12 tokens x 16 dims per batch) that is half of the cost of its training step outside the matrix
products. Here one 64-bit draw of torch's generator gives two 31-bit uniform integers, and an element is kept
where
its integer is >= round(p 2^31): the drop probability is p to within 2^-32, and kept elements are scaled by
1 / (1 - that probability), so the expectation is exact. It is about 2x faster forward + backward (bench/).
The mask comes from torch's default generator, so `torch.manual_seed` fixes it and a checkpoint's RNG state
resumes it.
Off the CPU, inside `torch.func.vmap`, and in eval mode, it is `torch.nn.functional.dropout` / the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 31


def _checked(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    return float(p)


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, float]:
    """A boolean mask of `shape`, each element False with probability p (to 2^-32), and that probability."""
    p = _checked(p)
    n = math.prod(shape)
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_()  # 63 random bits each
    uniform = words.view(torch.int32)[:n].bitwise_and_(2**_BITS - 1)  # two 31-bit integers per word
    threshold = round(p * 2**_BITS)
    return (uniform >= threshold).view(shape), threshold / 2**_BITS


class Dropout(nn.Module):
    """Drop-in for `nn.Dropout(p)` (no parameters, so checkpoints are unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _checked(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or torch._C._functorch.is_batchedtensor(x):  # vmap: its own random numbers
            return F.dropout(x, self.p, training=True)
        keep, p_drop = keep_mask(x.shape, self.p, x.device)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p_drop))

    def extra_repr(self) -> str:
        return f"p={self.p}"
