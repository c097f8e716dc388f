"""BDT scoring: the trees' tables against the node-by-node walk and scikit-learn's `tree_.apply`.

A BDT with the default's hyper-parameters (`models.bdt`: 850 trees of depth 3 on the 20-cut grid) is trained
on random events; the same events are then scored three ways, interleaved in one process:

* walk: every tree walked node by node, all events at once (`hzg.learn.boosted._walk_class`, what the BDT
  loaded from its checkpoint did before the tables: friend trees, fit templates);
* apply: each tree's leaf per event from scikit-learn's `tree_.apply` (what the training did);
* table: each tree's `TreeTable` (what both do now).

It prints events/s, the ratios to the table, and whether the three sums of votes agree bit for bit.

    .venv/bin/python bench/bench_bdt.py [--events 200000] [--train-events 25000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from hzg.learn import boosted

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def votes_walk(model, x: np.ndarray) -> np.ndarray:
    trees, boost = boosted._sklearn_trees(model[-1]), model[-1]
    binned = model[0].transform(x)
    total = 0
    for tree, w in zip(trees, boost.estimator_weights_):
        total = total + np.where(boosted._walk_class(tree, binned) == 1, w, -w)
    return total


def votes_apply(model, x: np.ndarray) -> np.ndarray:
    grid, boost = model[0], model[-1]
    xt = np.ascontiguousarray(grid.transform(x), dtype=np.float32)
    total = 0
    for est, w in zip(boost.estimators_, boost.estimator_weights_):
        signal_leaf = np.argmax(est.tree_.value[:, 0, :], axis=1) == 1
        total = total + np.where(signal_leaf[est.tree_.apply(xt)], w, -w)
    return total


def votes_table(model, x: np.ndarray) -> np.ndarray:
    total = 0
    for _, votes in boosted._tree_votes(model, x):
        total = total + votes
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--train-events", type=int, default=25_000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the fastest counts")
    args = parser.parse_args()
    hparams = {
        k: v
        for k, v in yaml.safe_load(CONFIG.read_text())["models"]["bdt"].items()
        if k in boosted.HPARAM_KEYS["bdt"]
    }
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.train_events, 12))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    t0 = time.perf_counter()
    model = boosted.fit_bdt(x, y, np.ones(len(x)), hparams, seed=1)
    print(f"BDT {hparams}: trained on {len(x)} events in {time.perf_counter() - t0:.1f} s")
    events = rng.normal(size=(args.events, 12))
    ways = {"walk": votes_walk, "apply": votes_apply, "table": votes_table}
    best, sums = {k: float("inf") for k in ways}, {}
    for _ in range(args.repeats):
        for name, votes in ways.items():
            t0 = time.perf_counter()
            sums[name] = votes(model, events)
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"{args.events} events, fastest of {args.repeats} interleaved repeats")
    print(f"{'way':6s} {'k events/s':>11s} {'time / table':>13s}  votes identical to the table's")
    for name in ways:
        same = bool(np.array_equal(sums[name], sums["table"]))
        print(f"{name:6s} {args.events / best[name] / 1e3:11.1f} {best[name] / best['table']:13.2f}  {same}")


if __name__ == "__main__":
    main()
