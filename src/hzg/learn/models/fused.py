"""Linear layers fused with their bias and activation, and a faster layer norm, when scoring: the attention
models' feed-forward networks (Linear - GELU - Linear), attention projections and layer norms.

Without an autograd graph (scoring, validation) on a CPU with oneDNN, a linear layer is one oneDNN matrix
product with its bias, and a GELU after it, in the product's epilogue (`torch.ops.mkldnn._linear_pointwise`,
the fused kernel PyTorch's inductor emits for linear + pointwise on a CPU). PyTorch's own `F.linear` first
copies the bias into every row of the output and then adds the product to it, and the GELU reads and writes
the whole (events, tokens, hidden) tensor once more: most of the ETN's scoring time at a large batch. The
numbers are PyTorch's unfused ones: equal to the last bit on this project's CPUs (the default's trained
models score and select the same epochs, bit for bit; tested to float32 rounding). Training (an autograd
graph), other devices and dtypes, `torch.func.vmap` and a PyTorch without the kernel take the plain layers.

The layer norm (`LayerNorm`) runs, under the same conditions, in the project's CPU kernel library
(`hzg.learn.models.small_attention`'s `layer_norm` operator): PyTorch's CPU layer norm pays a fixed cost per
row that dominated at the attention models' 16-wide tokens (a fifth of the ETN's scoring time at a batch of
8192). It gives PyTorch's result to float rounding, not bit for bit (the sums run in another order; at most a
few 1e-6 on unit-size tokens, tested), so the scores, and through the validation significance the epochs
kept, are this kernel's: the default's Table I comes from them. Where the kernel is not built
(`HZG_SMALL_ATTENTION=0`, no compiler) the layer norm is PyTorch's.

Training (an autograd graph on a CPU, float32 or float64) runs the feed-forward network over chunks of 4096
rows (`_ChunkedFeedForward`): each chunk's (4096, hidden) layer stays in cache from one product to the GELU
and the next, and the backward pass recomputes it instead of reading a saved one from memory; 1.15-1.3x
faster forward + backward on the ETN's (8192 x 12, 16 -> 64 -> 16) at 2 threads, 1.4x at 1 thread, and the
same gradients to float rounding (tested). It takes the library's training layer norm: its forward
pass keeps each row's mean and 1/std, and its backward pass is one kernel, where PyTorch's CPU layer norm pays
its per-row cost in both passes (5.4 ms against 1.7 ms forward + backward for the ETN's 106 k tokens of a
batch of 8192). It gives PyTorch's values and gradients to float rounding (tested against float64), and its
weight and bias gradients are the same bits whatever the number of threads.

In training on a CPU a linear layer is the product and then its bias added in place (`linear`): PyTorch's
addmm first copies the bias into every row of the output, a pass that scales badly over threads (3 ms of
the ETN's 86 ms step at a batch of 8192 on 2 threads); the same values and gradients, bit for bit
(tested). The chunked feed-forward network's bias and exact GELU, and in its backward pass the GELU's
recomputation, derivative and bias gradient, are one pass of the kernel library (`gelu_bias_`,
`gelu_bias_backward_`: erf and the normal density share one exp; 16 lanes with AVX-512), as are the ETN
embedding's bias, transposition to token order and GELU (`gelu_tokens`). Their values are PyTorch's to
float rounding (as close to float64 as PyTorch's own float32 GELU; tested), so the trained weights are
the kernel's. Together the training step 1.06x faster (BCE) and 1.07x (BCE + DisCo) at a batch of 8192 on
2 threads, interleaved against the code before; no gain at the default's batch of 1024 on one thread
(docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hzg.learn.models import small_attention

#: oneDNN's fused linear + pointwise kernel, where this PyTorch has one (x86 and ARM builds with oneDNN)
_FUSED = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


_enabled = True


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """The plain layers everywhere inside the block (benchmarks: the same scores, unfused)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def fusable(x: torch.Tensor, *layers: nn.Linear) -> bool:
    """Whether the fused oneDNN kernel can compute these layers on `x`: no autograd graph to record, a dense
    float32 CPU tensor (not a `vmap` batch), float32 CPU layers with biases, oneDNN present."""
    return _fusable(x, [p for layer in layers for p in (layer.weight, layer.bias)])


def _fusable(x: torch.Tensor, params: list[torch.Tensor | None]) -> bool:
    """`fusable` for the weights and biases `params`: oneDNN is asked last, after `_scoring_on_cpu` (which
    refuses while `torch.compile` traces, where asking it would break the graph)."""
    return _FUSED is not None and _scoring_on_cpu(x, params) and torch.backends.mkldnn.is_available()


def _scoring_on_cpu(x: torch.Tensor, params: list[torch.Tensor | None]) -> bool:
    """No autograd graph to record, a dense float32 CPU tensor `x` (not a `vmap` batch) and float32 CPU
    parameters `params` (none missing), fusion not `disabled`, not while `torch.compile` traces."""
    if not _enabled or torch.compiler.is_compiling():
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous() or x.numel() == 0:
        return False
    if torch._C._functorch.is_batchedtensor(x):
        return False
    if any(
        p is None or p.device.type != "cpu" or p.dtype != torch.float32 or not p.is_contiguous()
        for p in params
    ):
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)))


def _training_on_cpu(x: torch.Tensor, params: list[torch.Tensor | None], kernel: bool = True) -> bool:
    """Whether an autograd graph is being recorded through `x` or `params` on CPU float32/float64 tensors of
    one dtype (not a `vmap` batch, fusion not `disabled`), and, with `kernel`, the kernel library is built."""
    if not (_enabled and torch.is_grad_enabled()) or any(p is None for p in params):
        return False
    tensors = [x, *params]
    if not any(t.requires_grad for t in tensors) or any(t.dtype != x.dtype for t in params):
        return False
    return small_attention.usable(*tensors) if kernel else small_attention.cpu_tensors(*tensors)


#: rows of the feed-forward network's input per chunk in training on a CPU (`_ChunkedFeedForward`): the
#: chunk's hidden layer (4096 x 64 float32, 1 MB) stays in cache between the products and the GELU
FFN_CHUNK_ROWS = 4096


#: the hidden widths the GELU kernel takes: whole registers of its 16 (AVX-512), 8 (AVX2) or 4 (SSE2) lanes
GELU_WIDTH_MULTIPLE = 16


def _gelu_kernel(width: int, *tensors: torch.Tensor) -> Any | None:
    """The kernel library, whose GELU kernels (`gelu_bias_` and its backward for `_ChunkedFeedForward`,
    `gelu_tokens` and its backward for `gelu_tokens`) take a GELU of `width` on `tensors` (a width of whole
    vector registers, as the attention models' 64 and 16; CPU tensors), or None: PyTorch's operations."""
    kernel = small_attention.extension() if small_attention.cpu_tensors(*tensors) else None
    return kernel if kernel is not None and width % GELU_WIDTH_MULTIPLE == 0 else None


class _ChunkedFeedForward(torch.autograd.Function):
    """Linear - GELU - Linear over chunks of FFN_CHUNK_ROWS rows: the forward pass keeps only its input, the
    backward pass recomputes each chunk's hidden layer (one more product and GELU) and accumulates the weight
    gradients chunk by chunk, in order."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(x, w1, b1, w2)
        kernel = _gelu_kernel(w1.shape[0], w1)
        out = x.new_empty(x.shape[0], w2.shape[0])
        for i in range(0, x.shape[0], FFN_CHUNK_ROWS):
            product = torch.mm(x[i : i + FFN_CHUNK_ROWS], w1.t())
            hidden = kernel.gelu_bias_(product, b1) if kernel else F.gelu(product.add_(b1))
            torch.mm(hidden, w2.t(), out=out[i : i + FFN_CHUNK_ROWS]).add_(b2)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, w1, b1, w2 = ctx.saved_tensors
        kernel = _gelu_kernel(w1.shape[0], w1)
        grad = grad.contiguous()
        dx = torch.empty_like(x)
        dw1, db1, dw2 = torch.zeros_like(w1), torch.zeros_like(b1), torch.zeros_like(w2)
        for i in range(0, x.shape[0], FFN_CHUNK_ROWS):
            xc, gc = x[i : i + FFN_CHUNK_ROWS], grad[i : i + FFN_CHUNK_ROWS]
            pre = torch.mm(xc, w1.t())
            dpre = gc @ w2
            if kernel:  # pre <- gelu(pre + b1), dpre <- dpre gelu'(pre + b1), in one pass
                db1 += kernel.gelu_bias_backward_(pre, b1, dpre)
                dw2.addmm_(gc.t(), pre)
            else:
                pre.add_(b1)
                dw2.addmm_(gc.t(), F.gelu(pre))
                dpre = torch.ops.aten.gelu_backward(dpre, pre)
                db1 += dpre.sum(0)
            dw1.addmm_(dpre.t(), xc)
            torch.mm(dpre, w1, out=dx[i : i + FFN_CHUNK_ROWS])
        return dx, dw1, db1, dw2, grad.sum(0)


class _LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        y, mean, rstd = small_attention.extension().layer_norm_train(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, mean, rstd = ctx.saved_tensors
        dx, dweight, dbias = small_attention.extension().layer_norm_backward(grad, x, weight, mean, rstd)
        return dx, dweight, dbias, None


class _GeluTokens(torch.autograd.Function):
    """gelu(t[f, b] + bias[f]) in token order (B, features, d) from per-feature products t (features, B, d):
    the kernel library's `gelu_tokens` and `gelu_tokens_backward`, which keep t and recompute the rest."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(t, bias)
        return small_attention.extension().gelu_tokens(t, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, bias = ctx.saved_tensors
        dz, dbias = small_attention.extension().gelu_tokens_backward(t, bias, grad)
        return dz, dbias


def gelu_tokens(t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`F.gelu((t + bias[:, None]).transpose(0, 1))`, contiguous (B, features, d), for per-feature products
    t (features, B, d) and biases (features, d): on a CPU one pass of the kernel library each way (the bias,
    the transposition and the exact GELU; float rounding apart, the same values and gradients), elsewhere
    PyTorch's operations."""
    if _enabled and t.is_contiguous() and bias.dtype == t.dtype and _gelu_kernel(t.shape[-1], t, bias):
        return _GeluTokens.apply(t, bias.contiguous())
    return F.gelu((t + bias.unsqueeze(1)).transpose(0, 1).contiguous())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`F.linear(x, weight, bias)`; without an autograd graph on a CPU one oneDNN product with the bias in
    its epilogue, in training on a CPU the product and then the bias added in place (module doc)."""
    if _fusable(x, [weight, bias]):
        return _FUSED(x, weight, bias, "none", [], "")
    if _training_on_cpu(x, [weight, bias], kernel=False):
        return torch.matmul(x, weight.t()).add_(bias)
    return F.linear(x, weight, bias)


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
        params = [first.weight, first.bias, second.weight, second.bias]
        if (
            isinstance(activation, nn.GELU)
            and activation.approximate == "none"
            and _training_on_cpu(x, params, kernel=False)
        ):
            flat = x.reshape(-1, x.shape[-1]).contiguous()
            return _ChunkedFeedForward.apply(flat, *params).view(*x.shape[:-1], second.out_features)
        return second(activation(first(x)))


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last dimension (the same parameters, names and initialisation), computed by
    the project's CPU kernel when scoring (module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.normalized_shape) == 1 and _scoring_on_cpu(x, [self.weight, self.bias]):
            kernel = small_attention.extension()
            if kernel is not None:
                return kernel.layer_norm(x, self.weight, self.bias, self.eps)
        if len(self.normalized_shape) == 1 and _training_on_cpu(x, [self.weight, self.bias]):
            return _LayerNorm.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)
