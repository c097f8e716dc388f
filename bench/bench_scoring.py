"""Scoring throughput of the neural models on CPU against the forward-pass batch size.

`hzg.learn.classifier.predict_neural` scores in batches of `SCORING_BATCH[device]` events. This benchmark
scores the same random inputs with each model at several batch sizes, interleaved in one process, and prints
events/s and the ratio to the largest batch (the old default, 65 536), and whether the scores agree bit for
bit with it. Then, at the workflow's batch, the attention models with their linear layers fused with bias and
GELU and their layer norms in the project's kernel (`hzg.learn.models.fused`, what scoring runs) against the
plain layers, interleaved: the ratio, and the largest difference of the scores (the fused linear layers give
PyTorch's bits, the layer norm its numbers to float rounding). Last, the object model with denormal floats
flushed to zero (what training does, `hzg.learn.training.flushed_denormals`) against IEEE denormals (what
scoring runs with), interleaved: 1.0 when the attention kernel makes none (a padded object's masked key once
gave a denormal weight, and scoring ran 1.6x slower than flushed), and whether the scores are identical.

    .venv/bin/python bench/bench_scoring.py [--events 131072] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from hzg.learn.classifier import SCORING_BATCH, predict_neural
from hzg.learn.training import flushed_denormals
from hzg.learn.models import build_model, default_hparams, fused

#: (model, input features, object slots): the default's networks and the object model of the overlays
MODELS = (("etn", 12, 0), ("dfnn", 12, 0), ("etn_objects", 12 + 5 * 8, 8))
BATCHES = (65536, 16384, SCORING_BATCH["cpu"], 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=131072)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a workflow job's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.events} events, {args.threads} thread(s), fastest of {args.repeats} interleaved repeats")
    print(f"{'model':12s} {'batch':>7s} {'k events/s':>11s} {'ratio':>7s}  identical to 65536")
    for name, n_features, n_objects in MODELS:
        model = build_model(name, n_features, n_objects, **default_hparams(name))
        x = torch.randn(args.events, n_features)
        predict_neural(model, x[:4096])  # warm-up (the ETN's CPU kernel loads on first use)
        best = {b: float("inf") for b in BATCHES}
        scores = {}
        for _ in range(args.repeats):
            for b in BATCHES:
                t0 = time.perf_counter()
                scores[b] = predict_neural(model, x, b).numpy()
                best[b] = min(best[b], time.perf_counter() - t0)
        for b in BATCHES:
            same = bool(np.array_equal(scores[b], scores[BATCHES[0]]))
            rate, ratio = args.events / best[b] / 1e3, best[BATCHES[0]] / best[b]
            print(f"{name:12s} {b:7d} {rate:11.0f} {ratio:7.2f}  {same}")
    batch = SCORING_BATCH["cpu"]
    print(f"\nbatch {batch}: fused layers and layer norm (scoring) against the plain ones")
    print(f"{'model':12s} {'plain':>11s} {'fused':>11s} {'fastest':>7s} {'median':>7s}  max |score diff|")
    for name, n_features, n_objects in MODELS:
        if name == "dfnn":
            continue  # no fused layers
        model, x = warm_model(name, n_features, n_objects, args.events)
        contexts = {"plain": fused.disabled, "fused": contextlib.nullcontext}
        seconds, scores = interleaved(model, x, batch, args.repeats, contexts)
        diff = float(np.max(np.abs(scores["plain"] - scores["fused"])))
        print(f"{name:12s} {comparison(seconds, args.events, 'plain', 'fused')}  {diff:.1e}")
    print(f"\nbatch {batch}: denormals flushed to zero (training) against IEEE denormals (scoring)")
    print(f"{'model':12s} {'IEEE':>11s} {'flushed':>11s} {'fastest':>7s} {'median':>7s}  identical")
    for name, n_features, n_objects in MODELS:
        if not n_objects:
            continue  # no masked attention
        # random inputs: an object type below 0.5 rounds to padding, 69 % of the slots
        model, x = warm_model(name, n_features, n_objects, args.events)
        contexts = {"ieee": contextlib.nullcontext, "flushed": flushed_denormals}
        seconds, scores = interleaved(model, x, batch, args.repeats, contexts)
        same = bool(np.array_equal(scores["ieee"], scores["flushed"]))
        print(f"{name:12s} {comparison(seconds, args.events, 'ieee', 'flushed')}  {same}")


def warm_model(
    name: str, n_features: int, n_objects: int, events: int
) -> tuple[torch.nn.Module, torch.Tensor]:
    """A model with the default's hyper-parameters, random inputs, and one warm-up call (the kernel loads)."""
    model = build_model(name, n_features, n_objects, **default_hparams(name))
    x = torch.randn(events, n_features)
    predict_neural(model, x[:4096])
    return model, x


def interleaved(
    model: torch.nn.Module,
    x: torch.Tensor,
    batch: int,
    repeats: int,
    contexts: dict[str, Callable[[], contextlib.AbstractContextManager]],
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Score `x` inside each mode's context, the modes interleaved `repeats` times: seconds per call and
    the scores of each mode."""
    seconds: dict[str, list[float]] = {mode: [] for mode in contexts}
    scores: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for mode, context in contexts.items():
            with context():
                t0 = time.perf_counter()
                scores[mode] = predict_neural(model, x, batch).numpy()
                seconds[mode].append(time.perf_counter() - t0)
    return seconds, scores


def comparison(seconds: dict[str, list[float]], events: int, base: str, other: str) -> str:
    """k events/s of both modes (fastest call), and base's time over other's: fastest and median."""
    rate = {m: events / min(t) / 1e3 for m, t in seconds.items()}
    fastest = min(seconds[base]) / min(seconds[other])
    median = statistics.median(seconds[base]) / statistics.median(seconds[other])
    return f"{rate[base]:11.0f} {rate[other]:11.0f} {fastest:7.2f} {median:7.2f}"


if __name__ == "__main__":
    main()
