"""ETN training throughput (events/s) on a GPU: the plain loop, compiled + bf16, and the batched ensemble.

All in one process on the same synthetic events, which stay on the device (only the indices of a batch are
drawn there; no host transfer per batch):

* plain: the training loop of `hzg.learn.training.train_neural` as it is (eager, float32, `losses.total_loss`,
  which reads its parts back to the host every step), Adam (fused on CUDA);
* compiled + bf16: `torch.compile(model)`, the forward pass under `torch.autocast(bfloat16)`, the loss by
  weight (`losses.total_loss_by_weight`, no host sync), fused Adam;
* ensemble: K members (the trials of a run, `hzg.learn.ensemble.StackedModels`: stacked weights, vmap) in one
  step, eager and compiled + bf16; events/s counts the events of all members.
Every variant with BCE and with BCE + DisCo (lambda 10, 15 inputs). A variant that fails (e.g. torch.compile
on an unsupported setup) is reported and skipped.

Usage: python bench/bench_gpu.py [--device cuda|cpu] [--steps N] [--members K] [--batch B]
(`--device cpu --steps 2 --batch 512` is a smoke test of the code paths on a machine without a GPU.)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import traceback
from collections.abc import Callable

import torch

from bench_train import synthetic_batch  # the same synthetic events as the CPU benchmark (bench/ on sys.path)

from hzg.learn import losses, training
from hzg.learn.ensemble import StackedModels
from hzg.learn.models import build_model

LOSS_ARGS = {"kind": "bce", "data_scope": True, "narrow": (120.0, 130.0), "wide": (100.0, 180.0)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def events_per_second(
    step: Callable[[], None], events: int, steps: int, device: torch.device, warmup: int = 3
) -> float:
    for _ in range(warmup):  # includes compilation
        step()
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return events / statistics.median(times)


def single_step(
    data: tuple[torch.Tensor, ...], disco_lambda: float, batch: int, device: torch.device, fast: bool
) -> Callable[[], None]:
    x, y, w, mass = data
    torch.manual_seed(0)
    model = build_model("etn", x.shape[1]).to(device).train()
    opt = training.adam(model.parameters(), 1e-3, device)
    forward = torch.compile(model) if fast else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if fast else contextlib.nullcontext
    gen = torch.Generator(device=device).manual_seed(1)

    def step() -> None:
        idx = torch.randint(0, len(y), (batch,), device=device, generator=gen)
        with autocast():
            out = forward(x[idx]).float()
        if fast:
            loss = losses.total_loss_by_weight(
                out, y[idx], w[idx], mass[idx], disco_lambda=disco_lambda, **LOSS_ARGS
            )
        else:
            loss, _ = losses.total_loss(
                out, y[idx], w[idx], mass[idx], disco_lambda=disco_lambda, **LOSS_ARGS
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not fast:
            float(loss.detach())  # the plain loop's running sum of the loss (a host sync per step)

    return step


def ensemble_step(
    data: tuple[torch.Tensor, ...],
    disco_lambda: float,
    batch: int,
    members: int,
    device: torch.device,
    fast: bool,
) -> Callable[[], None]:
    x, y, w, mass = data
    torch.manual_seed(0)
    ensemble = StackedModels([build_model("etn", x.shape[1]) for _ in range(members)], compile=fast)
    ensemble = ensemble.to(device).train()
    opt = training.adam(ensemble.parameters(), 1e-3, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if fast else contextlib.nullcontext
    gen = torch.Generator(device=device).manual_seed(1)

    def step() -> None:
        idx = torch.randint(
            0, len(y), (members, batch), device=device, generator=gen
        )  # each member its own batch
        with autocast():
            out = ensemble(x[idx]).float()
        loss = sum(
            losses.total_loss_by_weight(
                out[k], y[idx[k]], w[idx[k]], mass[idx[k]], disco_lambda=disco_lambda, **LOSS_ARGS
            )
            for k in range(members)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--members", type=int, default=3, help="ensemble members (trials of a run)")
    parser.add_argument("--events", type=int, default=1 << 20, help="events resident on the device")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts of the variant names to run, e.g. 'ensemble BCE+DisCo' (default: all)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {name}; torch {torch.__version__}; batch {args.batch}; {args.members} ensemble members",
        flush=True,
    )
    results: dict[str, float] = {}
    failed: list[str] = []
    wanted = [" ".join(o.split()) for o in args.only.split(",") if o.strip()]  # labels have single spaces
    for lam in (0.0, 10.0):
        data = tuple(t.to(device) for t in synthetic_batch(args.events, 15 if lam else 12))
        loss = "BCE+DisCo" if lam else "BCE"
        variants = {
            f"plain {loss}": lambda: (
                single_step(data, lam, args.batch, device, False),
                args.batch,
            ),
            f"compiled+bf16 {loss}": lambda: (
                single_step(data, lam, args.batch, device, True),
                args.batch,
            ),
            f"ensemble {loss}": lambda: (
                ensemble_step(data, lam, args.batch, args.members, device, False),
                args.batch * args.members,
            ),
            f"ensemble+compiled+bf16 {loss}": lambda: (
                ensemble_step(data, lam, args.batch, args.members, device, True),
                args.batch * args.members,
            ),
        }
        for label, make in variants.items():
            if wanted and not any(o in label for o in wanted):
                continue
            try:
                step, events = make()
                results[label] = events_per_second(step, events, args.steps, device)
                print(f"{label:34s} {results[label]:14,.0f} events/s", flush=True)
            except Exception as err:  # report and go on: one broken variant must not hide the others
                failed.append(label)
                print(
                    f"{label:34s} FAILED: {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}"
                )
                traceback.print_exc(limit=3)
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    for loss in ("BCE", "BCE+DisCo"):
        base = results.get(f"plain {loss}")
        if not base:
            continue
        for label, value in results.items():
            if label.endswith(f" {loss}") and not label.startswith("plain"):
                print(f"{label.split()[0]:24s} / plain ({loss}): {value / base:6.2f}")
    if not results and not failed:
        raise SystemExit(f"--only {args.only!r} names no variant")
    if failed:
        raise SystemExit(f"{len(failed)} variant(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
