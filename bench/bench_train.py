"""Training and inference throughput (events/s) on CPU at batch 8192, against the paper authors'
implementation.

The baseline is `bench/paper_etn.py`, a faithful rebuild of github.com/jaebak/EventClassifierTransformer (a
Python loop over per-feature embedding networks, sequence-first `nn.MultiheadAttention(dropout=0.1)`,
`nn.Dropout`, their `bce_disco_loss` with DisCo from repeated N x N copies). Both run in the same process on
the same batch, with the same optimiser (Adam, lr 1e-3; the project's is `training.adam`, multi-tensor, the
same numbers as the per-parameter loop of the paper's code), so the ratios are robust against a noisy machine:

* ETN BCE: the project's ETN and `losses.total_loss(kind="bce")` against theirs with `nn.BCELoss` in the data
  scope;
* ETN BCE + DisCo (lambda 10, 15 inputs): DisCo over the batch's background (4096 events at batch 8192);
* inference: scores of 65536 events in batches of 8192, evaluation mode, no gradient.
The FNN on the same data is printed for scale, and the DisCo term alone (forward + backward) of both.
`--ablation` adds the project's ETN with PyTorch's attention and nn.Dropout, and without attention-weight
dropout.

Usage: python bench/bench_train.py [--steps N] [--threads T] [--clock wall|process] [--ablation]
Targets on 2 threads: >= 3x the paper's code with BCE and in inference, >= 10x with BCE + DisCo.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_etn  # noqa: E402

from hzg.learn import losses, training  # noqa: E402
from hzg.learn.models import build_model, small_attention  # noqa: E402
from hzg.learn.models.dropout import Dropout  # noqa: E402
from hzg.learn.models.etn import MultiHeadAttention  # noqa: E402

NARROW, WIDE = (120.0, 130.0), (100.0, 180.0)


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
    """The project's ETN with PyTorch's fused attention and nn.Dropout (no small-attention kernel)."""
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


#: the clock of the timings: wall time (default), or the process's CPU time (`--clock process`: on a machine
#: shared with other jobs, wall time counts the time the scheduler gives to others; CPU time does not)
CLOCK = time.perf_counter


def median_time(fn: Callable[[], None], steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def training_step(
    model: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], project: bool = True
) -> Callable[[], None]:
    # each code's own Adam: the project's (hzg.learn.training.adam), PyTorch's default for the paper's
    opt = (
        training.adam(model.parameters(), 1e-3, torch.device("cpu"))
        if project
        else torch.optim.Adam(model.parameters(), lr=1e-3)
    )
    model.train()

    def step() -> None:
        loss = loss_fn(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def project_loss(batch: tuple[torch.Tensor, ...], disco_lambda: float) -> Callable[[nn.Module], torch.Tensor]:
    x, y, w, mass = batch
    return lambda model: losses.total_loss(
        model(x), y, w, mass, kind="bce", disco_lambda=disco_lambda, data_scope=True, narrow=NARROW, wide=WIDE
    )[0]


def paper_loss(batch: tuple[torch.Tensor, ...], disco_lambda: float) -> Callable[[nn.Module], torch.Tensor]:
    x, y, _, mass = batch
    y1, m1 = y.unsqueeze(1), mass.unsqueeze(1)
    if disco_lambda > 0:
        return lambda model: paper_etn.bce_disco_loss(model(x), y1, m1, disco_factor=disco_lambda)
    return lambda model: paper_etn.bce_loss(model(x), y1, m1)


def train_throughput(
    kind: str, model_name: str, disco_lambda: float, steps: int, batch_size: int, variant: str | None = None
) -> float:
    """Events/s of training steps: kind 'project' (hzg) or 'paper' (the authors' code)."""
    n_features = 15 if disco_lambda > 0 else 12
    batch = synthetic_batch(batch_size, n_features)
    torch.manual_seed(0)
    if kind == "paper":
        return batch_size / median_time(
            training_step(paper_etn.PaperETN(n_features), paper_loss(batch, disco_lambda), project=False),
            steps,
            warmup=1,
        )
    model = build_model(model_name, n_features)
    if variant == "no-attention-dropout":
        for module in model.modules():
            if isinstance(module, MultiHeadAttention):
                module.dropout = 0.0
    with pytorch_attention_and_dropout(model) if variant == "pytorch" else contextlib.nullcontext():
        return batch_size / median_time(training_step(model, project_loss(batch, disco_lambda)), steps)


def inference_throughput(model: nn.Module, n: int, batch_size: int, steps: int) -> float:
    x = synthetic_batch(n, 12, seed=1)[0]
    model.eval()

    @torch.no_grad()
    def run() -> None:
        for i in range(0, n, batch_size):
            model(x[i : i + batch_size])

    return n / median_time(run, steps, warmup=1)


def disco_time(n: int, repeats: int, paper: bool = False) -> float:
    """Median seconds of DisCo forward + backward for n background events (float32, as in training)."""
    x, _, w, mass = synthetic_batch(n, 1)

    def run() -> None:
        score = torch.sigmoid(x[:, 0]).requires_grad_()
        value = (
            paper_etn.distance_corr(mass, score, w) if paper else losses.distance_correlation(mass, score, w)
        )
        value.backward()

    return median_time(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--paper-steps", type=int, default=5, help="timed steps of the (slow) paper code")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="process: events per CPU-second of this process (use with --threads 1 on a busy machine)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also the project's ETN with PyTorch's attention and dropout, and without attention dropout",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "process" else time.perf_counter
    print(
        f"{args.clock} clock; torch {torch.__version__}; small-attention kernel: "
        f"{'built' if small_attention.extension() else 'NOT available'}; "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; "
        f"{args.threads} threads; batch {args.batch}"
    )
    r: dict[str, float] = {}

    def show(name: str, value: float) -> None:
        r[name] = value
        print(f"{name:44s} {value:12,.0f} events/s", flush=True)

    show("paper ETN  BCE", train_throughput("paper", "etn", 0.0, args.paper_steps, args.batch))
    show("ETN        BCE", train_throughput("project", "etn", 0.0, args.steps, args.batch))
    show("paper ETN  BCE+DisCo", train_throughput("paper", "etn", 10.0, args.paper_steps, args.batch))
    show("ETN        BCE+DisCo", train_throughput("project", "etn", 10.0, args.steps, args.batch))
    torch.manual_seed(0)
    show(
        "paper ETN  inference",
        inference_throughput(paper_etn.PaperETN(12), 65536, args.batch, args.paper_steps),
    )
    torch.manual_seed(0)
    show("ETN        inference", inference_throughput(build_model("etn", 12), 65536, args.batch, args.steps))
    show("FNN        BCE", train_throughput("project", "fnn", 0.0, args.steps, args.batch))
    show("FNN        BCE+DisCo", train_throughput("project", "fnn", 10.0, args.steps, args.batch))
    if args.ablation:
        show(
            "ETN        BCE  [PyTorch attention, nn.Dropout]",
            train_throughput("project", "etn", 0.0, args.steps, args.batch, "pytorch"),
        )
        show(
            "ETN        BCE+DisCo  [PyTorch attention, nn.Dropout]",
            train_throughput("project", "etn", 10.0, args.steps, args.batch, "pytorch"),
        )
        show(
            "ETN        BCE  {no attention-weight dropout}",
            train_throughput("project", "etn", 0.0, args.steps, args.batch, "no-attention-dropout"),
        )
    print("ratios, project / paper's code (targets: 3, 10, 3):")
    for what in ("BCE", "BCE+DisCo", "inference"):
        print(f"  ETN {what:10s} {r[f'ETN        {what}'] / r[f'paper ETN  {what}']:6.2f}x")
    print(
        f"ETN/FNN (BCE): {r['ETN        BCE'] / r['FNN        BCE']:.3f}; "
        f"ETN BCE+DisCo / ETN BCE: {r['ETN        BCE+DisCo'] / r['ETN        BCE']:.3f}"
    )
    if args.ablation:
        print(
            f"ETN BCE: kernel + integer-mask dropout / PyTorch attention + nn.Dropout: "
            f"{r['ETN        BCE'] / r['ETN        BCE  [PyTorch attention, nn.Dropout]']:.2f}"
        )
        print(
            f"ETN BCE: with / without attention-weight dropout: "
            f"{r['ETN        BCE'] / r['ETN        BCE  {no attention-weight dropout}']:.3f}"
        )
    n = args.batch // 2
    print(
        f"DisCo fwd+bwd, {n} events: project {disco_time(n, args.steps) * 1e3:.1f} ms, "
        f"paper's code {disco_time(n, args.paper_steps, paper=True) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
