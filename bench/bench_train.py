"""Training throughput (events/s) on CPU at batch 8192: ETN with BCE and with BCE + DisCo, and the
FNN on the same data in the same process (ratios are robust against a noisy machine).

Also in the same process: the ETN with PyTorch's own attention and dropout (`--baseline`, what the ETN used
before
the small-attention kernel and the integer-mask dropout; attention-weight dropout then by
scaled_dot_product_attention),
the ETN without attention-weight dropout (`--baseline`, what it costs), and the DisCo term alone (forward +
backward)
at the batch's background size.

Usage: python bench/bench_train.py [--steps N] [--threads T] [--baseline]
Target on 2 cores: ETN >= 60 k events/s with BCE, >= 40 k events/s with BCE + DisCo.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator

import torch
from torch import nn

from hzg.learn import losses
from hzg.learn.models import build_model, small_attention
from hzg.learn.models.dropout import Dropout
from hzg.learn.models.etn import MultiHeadAttention


def synthetic_batch(n: int, n_features: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=gen)
    y = (torch.rand(n, generator=gen) < 0.5).float()
    w = torch.ones(n)
    # half the background in the narrow window, the rest spread over the wide one
    mass = torch.where(
        torch.rand(n, generator=gen) < 0.5,
        120 + 10 * torch.rand(n, generator=gen),
        100 + 80 * torch.rand(n, generator=gen),
    )
    return x, y, w, mass


@contextlib.contextmanager
def pytorch_attention_and_dropout(model: nn.Module) -> Iterator[None]:
    """The ETN as it was before: PyTorch's fused attention and nn.Dropout."""
    os.environ[small_attention.ENV_SWITCH] = "0"
    small_attention.extension.cache_clear()
    for name, child in list(model.named_children()):
        if isinstance(child, Dropout):
            setattr(model, name, nn.Dropout(child.p))
    try:
        yield
    finally:
        del os.environ[small_attention.ENV_SWITCH]
        small_attention.extension.cache_clear()


def throughput(
    model_name: str,
    disco_lambda: float,
    steps: int,
    batch: int,
    baseline: bool = False,
    attention_dropout: bool = True,
) -> float:
    n_features = 15 if disco_lambda > 0 else 12
    x, y, w, mass = synthetic_batch(batch, n_features)
    torch.manual_seed(0)
    model = build_model(model_name, n_features)
    if not attention_dropout:
        for module in model.modules():
            if isinstance(module, MultiHeadAttention):
                module.dropout = 0.0
    with pytorch_attention_and_dropout(model) if baseline else contextlib.nullcontext():
        return _throughput(model, x, y, w, mass, disco_lambda, steps, batch)


def _throughput(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    mass: torch.Tensor,
    disco_lambda: float,
    steps: int,
    batch: int,
) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        loss, _ = losses.total_loss(
            model(x),
            y,
            w,
            mass,
            kind="bce",
            disco_lambda=disco_lambda,
            data_scope=True,
            narrow=(120.0, 130.0),
            wide=(100.0, 180.0),
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def disco_time(n: int, repeats: int) -> float:
    """Median seconds of DisCo forward + backward for n background events (float32, as in training)."""
    x, _, w, mass = synthetic_batch(n, 1)
    score = torch.sigmoid(x[:, 0]).requires_grad_()
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        losses.distance_correlation(mass, score, w).backward()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument(
        "--baseline", action="store_true", help="also the ETN with PyTorch's attention and dropout"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"small-attention kernel: {'built' if small_attention.extension() else 'NOT available'}; "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; {args.threads} threads"
    )
    runs = [
        ("FNN  BCE", "fnn", 0.0, False),
        ("ETN  BCE", "etn", 0.0, False),
        ("ETN  BCE+DisCo", "etn", 10.0, False),
        ("FNN  BCE+DisCo", "fnn", 10.0, False),
    ]
    if args.baseline:
        runs += [
            ("ETN  BCE        [PyTorch attention, nn.Dropout]", "etn", 0.0, True),
            ("ETN  BCE+DisCo  [PyTorch attention, nn.Dropout]", "etn", 10.0, True),
            ("ETN  BCE        {no attention-weight dropout}", "etn", 0.0, None),
        ]
    results = {}
    for name, model, lam, baseline in runs:
        results[name] = throughput(model, lam, args.steps, args.batch, bool(baseline), baseline is not None)
        print(f"{name:16s} {results[name]:12,.0f} events/s")
    print(f"ETN/FNN (BCE):        {results['ETN  BCE'] / results['FNN  BCE']:.4f}")
    print(f"ETN/FNN (BCE+DisCo):  {results['ETN  BCE+DisCo'] / results['FNN  BCE+DisCo']:.4f}")
    print(f"ETN BCE+DisCo / ETN BCE: {results['ETN  BCE+DisCo'] / results['ETN  BCE']:.4f}")
    if args.baseline:
        for loss in ("BCE", "BCE+DisCo"):
            base = next(
                value for name, value in results.items() if name.startswith(f"ETN  {loss} ") and "[" in name
            )
            print(
                f"ETN {loss}: kernel + integer-mask dropout / PyTorch attention + nn.Dropout: "
                f"{results[f'ETN  {loss}'] / base:.2f}"
            )
        without = next(value for name, value in results.items() if "{" in name)
        print(f"ETN BCE: with / without attention-weight dropout: {results['ETN  BCE'] / without:.3f}")
    n = args.batch // 2
    print(
        f"DisCo fwd+bwd, {n} events: {disco_time(n, args.steps) * 1e3:.1f} ms; "
        f"{2 * n} events: {disco_time(2 * n, args.steps) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
