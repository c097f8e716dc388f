"""Training throughput (events/s) on CPU at batch 8192: ETN with BCE and with BCE + DisCo, and the
FNN on the same data in the same process (ratios are robust against a noisy machine).

Usage: python bench/bench_train.py [--steps N] [--threads T]
Target on 2 cores: ETN >= 60 k events/s with BCE, >= 40 k events/s with BCE + DisCo.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from hzg import losses
from hzg.models import build_model


def synthetic_batch(n: int, n_features: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=gen)
    y = (torch.rand(n, generator=gen) < 0.5).float()
    w = torch.ones(n)
    # half the background in the narrow window, the rest spread over the wide one
    mass = torch.where(torch.rand(n, generator=gen) < 0.5, 120 + 10 * torch.rand(n, generator=gen),
                       100 + 80 * torch.rand(n, generator=gen))
    return x, y, w, mass


def throughput(model_name: str, disco_lambda: float, steps: int, batch: int) -> float:
    n_features = 15 if disco_lambda > 0 else 12
    x, y, w, mass = synthetic_batch(batch, n_features)
    torch.manual_seed(0)
    model = build_model(model_name, n_features)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        loss, _ = losses.total_loss(model(x), y, w, mass, kind="bce", disco_lambda=disco_lambda, data_scope=True,
                                    narrow=(120.0, 130.0), wide=(100.0, 180.0))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8192)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name, model, lam in (("FNN  BCE", "fnn", 0.0), ("ETN  BCE", "etn", 0.0), ("ETN  BCE+DisCo", "etn", 10.0),
                             ("FNN  BCE+DisCo", "fnn", 10.0)):
        results[name] = throughput(model, lam, args.steps, args.batch)
        print(f"{name:16s} {results[name]:12,.0f} events/s")
    print(f"ETN/FNN (BCE):        {results['ETN  BCE'] / results['FNN  BCE']:.4f}")
    print(f"ETN/FNN (BCE+DisCo):  {results['ETN  BCE+DisCo'] / results['FNN  BCE+DisCo']:.4f}")
    print(f"ETN BCE+DisCo / ETN BCE: {results['ETN  BCE+DisCo'] / results['ETN  BCE']:.4f}")


if __name__ == "__main__":
    main()
