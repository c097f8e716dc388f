"""BDT training and scoring: the grid trees against scikit-learn's, the trees' tables against the
node-by-node walk and scikit-learn's `tree_.apply`.

Training: the default's BDT (`models.bdt`) is trained on random events with its trees grown from the grid's
histograms (`hzg.learn.grid_tree.GridTreeClassifier`, what `boosted.fit_bdt` does) and with scikit-learn's
`DecisionTreeClassifier` (what it did before), interleaved; it prints the seconds of each, their ratio, how
many of the trees are identical and whether the two BDTs' votes are.

A BDT with the default's hyper-parameters (`models.bdt`: 850 trees of depth 3 on the 20-cut grid) is trained
on random events; the same events are then scored three ways, interleaved in one process:

* walk: every tree walked node by node, all events at once (`hzg.learn.boosted._walk_class`, what the BDT
  loaded from its checkpoint did before the tables: friend trees, fit templates);
* apply: each tree's leaf per event from scikit-learn's `tree_.apply` (what the training did);
* table: each tree's `TreeTable` (what both do now).

It prints events/s, the ratios to the table, and whether the three sums of votes agree bit for bit.

    .venv/bin/python bench/bench_bdt.py [--events 200000] [--train-events 25000] [--repeats 3]
        [--train-repeats 2]
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


def fit_bdt_sklearn_trees(x: np.ndarray, y: np.ndarray, w: np.ndarray, hparams, seed: int):
    """`boosted.fit_bdt` with scikit-learn's DecisionTreeClassifier as the weak learner (the code before the
    grid trees)."""
    from sklearn.tree import DecisionTreeClassifier

    depth, fraction = hparams["max_depth"], hparams["min_node_fraction"]
    tree = DecisionTreeClassifier(max_depth=depth, min_weight_fraction_leaf=fraction, random_state=seed)
    return boosted.fit_bdt(x, y, w, hparams, seed, weak_learner=tree)


def same_tree(a, b) -> bool:
    """Whether two trees split the same way and hold the same class fractions in their leaves."""
    ta, tb = a.tree_, b.tree_
    leaves = ta.children_left < 0
    return (
        np.array_equal(ta.children_left, tb.children_left)
        and np.array_equal(ta.children_right, tb.children_right)
        and np.array_equal(ta.feature, tb.feature)
        and np.array_equal(ta.threshold, tb.threshold)
        and np.allclose(ta.value[leaves], tb.value[leaves], rtol=1e-9, atol=1e-12)
    )


def compare_training(x, y, w, hparams, repeats: int) -> None:
    ways = {"grid trees": boosted.fit_bdt, "scikit-learn trees": fit_bdt_sklearn_trees}
    best, models = {k: float("inf") for k in ways}, {}
    for _ in range(repeats):
        for name, fit in ways.items():
            t0 = time.perf_counter()
            models[name] = fit(x, y, w, hparams, 1)
            best[name] = min(best[name], time.perf_counter() - t0)
    grid, sk = models["grid trees"][-1], models["scikit-learn trees"][-1]
    same = sum(same_tree(a, b) for a, b in zip(grid.estimators_, sk.estimators_))
    print(f"training on {len(x)} events, fastest of {repeats} interleaved repeats")
    for name in ways:
        print(f"  {name:18s} {best[name]:6.2f} s  ({best[name] / best['grid trees']:.2f}x the grid trees)")
    votes = [votes_table(m, x) for m in models.values()]
    print(
        f"  identical trees: {same} of {len(grid.estimators_)} (scikit-learn: {len(sk.estimators_)}); "
        f"votes identical: {bool(np.array_equal(*votes))}"
    )


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
    parser.add_argument("--train-repeats", type=int, default=2, help="interleaved training repeats")
    args = parser.parse_args()
    hparams = {
        k: v
        for k, v in yaml.safe_load(CONFIG.read_text())["models"]["bdt"].items()
        if k in boosted.HPARAM_KEYS["bdt"]
    }
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.train_events, 12))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    w = rng.exponential(size=len(x))  # weighted events, as the training's
    print(f"BDT {hparams}")
    compare_training(x, y, w, hparams, args.train_repeats)
    model = boosted.fit_bdt(x, y, w, hparams, seed=1)
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
