"""Tree baselines of paper 000: XGBoost and a TMVA-like AdaBoost BDT.

TMVA's BDT (AdaBoost over shallow trees with a minimum node size and nCuts grid points per variable) is
rebuilt with scikit-learn: AdaBoost (SAMME) over trees of depth `max_depth` whose leaves hold at least
`min_node_fraction` of the (weighted) training sample, on inputs discretised to the `n_cuts` grid TMVA scans
per variable; the trees take scikit-learn's Gini splits, grown from the grid's histograms
(`hzg.learn.grid_tree`).
The hyper-parameters (the paper's values) come only from the config, `models.xgboost` and `models.bdt`
(config/config.yaml; the schema requires every key named in `HPARAM_KEYS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

#: The hyper-parameters each tree model takes from its config section `models.<model>`, all required.
HPARAM_KEYS: dict[str, tuple[str, ...]] = {
    "xgboost": ("n_rounds", "max_depth", "learning_rate"),
    "bdt": ("n_trees", "max_depth", "min_node_fraction", "n_cuts", "learning_rate"),
}


#: optional key of a tree model's section: train on at most this many in-scope training events
#: (`hzg.learn.training.capped_training_events`); used by the training, not by the fit
MAX_TRAIN_EVENTS = "max_train_events"
#: keys a tree model's section may hold beside HPARAM_KEYS
OPTIONAL_HPARAM_KEYS: tuple[str, ...] = (MAX_TRAIN_EVENTS,)


def hyper_parameters(hparams: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The hyper-parameters of tree model `name` from its config section `models.<name>`.

    Args:
        hparams: The config's `models.<name>` mapping (None or empty when the section is missing).
        name: The tree model, a key of `HPARAM_KEYS`.

    Returns:
        The hyper-parameters, every key of `HPARAM_KEYS[name]` present.

    Raises:
        ValueError: a key is missing (the message names the config key) or unknown.
    """
    known = HPARAM_KEYS[name]
    hparams = dict(hparams or {})
    missing = [k for k in known if k not in hparams]
    if missing:
        keys = ", ".join(f"models.{name}.{k}" for k in missing)
        raise ValueError(f"config key(s) {keys} missing: the {name} hyper-parameters come from the config")
    unknown = set(hparams) - set(known) - set(OPTIONAL_HPARAM_KEYS)
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {sorted(unknown)} in config key models.{name}; known: {list(known)}"
        )
    return hparams


def cuda_available() -> bool:
    """Whether a CUDA device is visible (via torch, which the training stage has anyway)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def fit_xgboost(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    hparams: Mapping[str, Any],
    seed: int,
    threads: int,
    device: str = "auto",
):
    """Train an XGBoost classifier (on CUDA when there is one and device allows it).

    Args:
        x: Training features.
        y: Training labels.
        w: Training event weights.
        hparams: The config's `models.xgboost` (n_rounds, max_depth, learning_rate).
        seed: Random state.
        threads: CPU threads.
        device: "cuda", "cpu" or "auto" (CUDA where there is one).

    Returns:
        The fitted `xgboost.XGBClassifier`.
    """
    import xgboost as xgb

    hp = hyper_parameters(hparams, "xgboost")
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    model = xgb.XGBClassifier(
        n_estimators=hp["n_rounds"],
        max_depth=hp["max_depth"],
        learning_rate=hp["learning_rate"],
        tree_method="hist",
        device="cuda" if use_cuda else "cpu",
        random_state=seed,
        n_jobs=threads,
        objective="binary:logistic",
        eval_metric="logloss",
    )
    model.fit(x, y, sample_weight=w, verbose=False)
    return model


def xgboost_scores(model, x: np.ndarray, n_rounds: int | None = None) -> np.ndarray:
    """Signal probability using the first `n_rounds` boosting rounds (all by default)."""
    kwargs = {"iteration_range": (0, n_rounds)} if n_rounds else {}
    return model.predict_proba(x, **kwargs)[:, 1]


def fit_bdt(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    hparams: Mapping[str, Any],
    seed: int,
    weak_learner: Any = None,
):
    """Train the TMVA-like AdaBoost BDT.

    Args:
        x: Training features.
        y: Training labels.
        w: Training event weights.
        hparams: The config's `models.bdt` (n_trees, max_depth, min_node_fraction, n_cuts, learning_rate).
        seed: Random state.
        weak_learner: The tree AdaBoost boosts; None: the grid tree of `hparams`
            (`grid_tree.GridTreeClassifier`: scikit-learn's DecisionTreeClassifier splits, grown from the
            grid's histograms, 2.1-2.7x faster). bench/bench_bdt.py passes scikit-learn's tree to compare.

    Returns:
        A scikit-learn pipeline (grid discretiser + AdaBoost).
    """
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer

    from hzg.learn.grid_tree import GridTreeClassifier

    hp = hyper_parameters(hparams, "bdt")
    tree = (
        weak_learner
        if weak_learner is not None
        else GridTreeClassifier(
            max_depth=hp["max_depth"],
            min_weight_fraction_leaf=hp["min_node_fraction"],
            n_bins=hp["n_cuts"] + 1,
        )
    )
    boost = AdaBoostClassifier(
        tree, n_estimators=hp["n_trees"], learning_rate=hp["learning_rate"], random_state=seed
    )
    grid = KBinsDiscretizer(n_bins=hp["n_cuts"] + 1, encode="ordinal", strategy="uniform")
    pipe = make_pipeline(grid, boost)
    pipe.fit(x, y, adaboostclassifier__sample_weight=w)
    return pipe


#: a tree with at most this many splits (every tree of max_depth 4 or less) is evaluated from a table of the
#: leaf each combination of its splits' outcomes reaches (`TreeTable`); a deeper one node by node
TABLE_MAX_SPLITS = 16


class TreeTable:
    """One tree of the BDT as a table: on the grid's bins (small integers) a split "bin <= threshold" is
    "bin <= floor(threshold)", the outcomes of a tree's n splits are the n bits of a code, and the tree is
    the class of the leaf each of the 2^n codes reaches. An event's class costs n column comparisons and one
    lookup, all events at once, instead of a walk with a gather per level: 10 times faster than the walk,
    6 times faster than scikit-learn's `tree_.apply` on the default's BDT (850 trees of depth 3; the same
    classes, tested)."""

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        leaf_class: np.ndarray,
    ) -> None:
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        splits = np.flatnonzero(left >= 0)
        if len(splits) > TABLE_MAX_SPLITS:
            raise ValueError(
                f"a tree of {len(splits)} splits is too large for a table ({TABLE_MAX_SPLITS} at most)"
            )
        bit = np.full(len(left), -1, np.int64)
        bit[splits] = np.arange(len(splits))
        self.features = np.asarray(feature, np.int64)[splits]
        #: the largest bin that goes left at each split (bins are integers from 0; clipped to what a column
        #: of `bin_columns` holds, which changes no comparison)
        self.cuts = np.clip(np.floor(np.asarray(threshold, np.float64)[splits]), -1, np.iinfo(np.int16).max)
        self.cuts = self.cuts.astype(np.int64)
        codes = np.arange(2 ** len(splits), dtype=np.int64)
        node = np.zeros(len(codes), np.int64)
        for _ in range(len(splits)):  # every code walks the tree, one level per step
            inner = left[node] >= 0
            if not inner.any():
                break
            goes_left = (codes >> np.where(inner, bit[node], 0)) & 1 == 1
            node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
        self.code_class = np.asarray(leaf_class, np.int64)[node]
        self.code_dtype = np.uint8 if len(splits) <= 8 else np.uint16

    def codes(self, columns: list[np.ndarray]) -> np.ndarray:
        """The code of every event from the grid's bin columns (`bin_columns`)."""
        n = len(columns[0]) if columns else 0
        code = np.zeros(n, self.code_dtype)
        for k, (f, cut) in enumerate(zip(self.features, self.cuts)):
            column = columns[f]
            code |= (column <= column.dtype.type(cut)).astype(self.code_dtype) << self.code_dtype(k)
        return code


def bin_columns(binned: np.ndarray) -> list[np.ndarray]:
    """The grid's bins of every event (ordinal, as the grid transform gives them: integers from 0) as one
    contiguous small-integer column per feature, what `TreeTable.codes` compares."""
    binned = np.asarray(binned)
    dtype = np.int16 if binned.size == 0 or binned.max() < np.iinfo(np.int16).max else np.int64
    return [np.ascontiguousarray(binned[:, j], dtype=dtype) for j in range(binned.shape[1])]


def _tree_tables(trees: list[Mapping[str, np.ndarray]]) -> list[TreeTable | None]:
    """A `TreeTable` per tree (arrays as `bdt_to_arrays` stores them); None for a tree too deep for one."""
    return [
        TreeTable(t["left"], t["right"], t["feature"], t["threshold"], t["leaf_class"])
        if int(np.sum(np.asarray(t["left"]) >= 0)) <= TABLE_MAX_SPLITS
        else None
        for t in trees
    ]


def walk_to_leaves(
    left: np.ndarray, right: np.ndarray, feature: np.ndarray, threshold: np.ndarray, binned: np.ndarray
) -> np.ndarray:
    """The leaf each event (row of `binned`) reaches in the tree of scikit-learn's arrays (children, -1 at a
    leaf; split feature; go left where the value <= threshold), node by node: one step per tree level, every
    event at once."""
    node = np.zeros(len(binned), np.int64)
    rows = np.arange(len(binned))
    while True:
        inner = left[node] >= 0
        if not inner.any():
            return node
        go_left = binned[rows, np.where(inner, feature[node], 0)] <= threshold[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)


def _walk_class(tree: Mapping[str, np.ndarray], binned: np.ndarray) -> np.ndarray:
    """The class of the leaf each event reaches (`walk_to_leaves`): the trees too deep for a `TreeTable`."""
    arrays = (np.asarray(tree[k]) for k in ("left", "right", "feature", "threshold"))
    return np.asarray(tree["leaf_class"])[walk_to_leaves(*arrays, binned)]


def forest_votes(
    trees: list[Mapping[str, np.ndarray]],
    weights: np.ndarray,
    binned: np.ndarray,
    tables: list[TreeTable | None] | None = None,
):
    """Per tree, in order: (its weight w, +w / -w per event as the tree votes signal / background), from the
    events' grid bins `binned` (n events x features, the grid transform's output); `tables`: the trees'
    `_tree_tables`, when the caller keeps them."""
    columns = bin_columns(binned)
    for tree, table, w in zip(trees, _tree_tables(trees) if tables is None else tables, weights):
        if table is not None:
            yield w, np.where(table.code_class == 1, w, -w)[table.codes(columns)]
        else:
            yield w, np.where(_walk_class(tree, binned) == 1, w, -w)


def _sklearn_trees(boost) -> list[dict[str, np.ndarray]]:
    """The trees of a fitted AdaBoost as the arrays `bdt_to_arrays` stores (children, split feature and
    threshold, class of the node)."""
    return [
        {
            "left": est.tree_.children_left,
            "right": est.tree_.children_right,
            "feature": est.tree_.feature,
            "threshold": est.tree_.threshold,
            # the class a leaf predicts (the first on ties)
            "leaf_class": np.argmax(est.tree_.value[:, 0, :], axis=1),
        }
        for est in boost.estimators_
    ]


def _tree_votes(model, x: np.ndarray):
    """Per tree of the fitted BDT pipeline: (its weight, +w / -w per event as the tree votes signal /
    background), from the grid transform (once) and each tree's `TreeTable`: the votes of scikit-learn's
    `estimator.predict` per tree, in its order."""
    grid, boost = model[0], model[-1]
    if list(boost.classes_) != [0, 1]:
        raise ValueError(f"the BDT must have the classes [0, 1], not {list(boost.classes_)}")
    yield from forest_votes(_sklearn_trees(boost), boost.estimator_weights_, grid.transform(x))


def _binary_proba(decision: np.ndarray) -> np.ndarray:
    """scikit-learn's AdaBoost probability of the signal class from its binary decision function."""
    from sklearn.ensemble import AdaBoostClassifier

    return AdaBoostClassifier._compute_proba_from_decision(decision, 2)[:, 1]


def bdt_scores(model, x: np.ndarray) -> np.ndarray:
    """Signal probability of the BDT: scikit-learn's `predict_proba(x)[:, 1]`, bit for bit (tested), with the
    SAMME decision function summed in its order from `_tree_votes`; a BDT loaded from a checkpoint
    (`ArrayBDT`) scores itself."""
    if isinstance(model, ArrayBDT):
        return model.predict_proba(x)[:, 1]
    total = 0
    for _, votes in _tree_votes(model, x):
        total = total + votes
    signal = total / model[-1].estimator_weights_.sum()
    return _binary_proba(signal + signal)  # the binary decision: -(background column) + signal column


def bdt_staged_scores(model, x: np.ndarray, stages: list[int]) -> dict[int, np.ndarray]:
    """Signal probability after each of `stages` trees, in one pass over the boosting stages:
    scikit-learn's `staged_predict_proba`, bit for bit (tested)."""
    return bdt_scores_and_staged(model, x, np.ones(len(x), bool), stages)[1]


def bdt_scores_and_staged(
    model, x: np.ndarray, staged_events: np.ndarray, stages: list[int]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """`bdt_scores` of every event and `bdt_staged_scores` of the events of the mask `staged_events`, from
    one pass over the trees (the training's final scores and its history): the same floats as the two."""
    wanted, staged = set(stages), {}
    total, norm = 0, 0.0
    for i, (w, votes) in enumerate(_tree_votes(model, x), start=1):
        norm += w
        total = total + votes
        if i in wanted:
            signal = total[staged_events] / norm
            staged[i] = _binary_proba(signal + signal)
    signal = total / model[-1].estimator_weights_.sum()
    return _binary_proba(signal + signal), staged


#: Format tag of a BDT serialised as arrays (JSON), checked on load.
BDT_FORMAT = "hzg-bdt-arrays-1"


def bdt_to_arrays(model) -> dict[str, Any]:
    """The fitted BDT pipeline (grid discretiser + AdaBoost SAMME over trees) as plain lists: the grid's bin
    edges, the tree weights and, per tree, its nodes (children, split feature and threshold, class of the
    node)."""
    grid, boost = model[0], model[-1]
    if getattr(boost, "algorithm", "SAMME") not in ("SAMME", "deprecated"):
        raise ValueError(f"only AdaBoost SAMME can be stored as arrays, not {boost.algorithm!r}")
    forest = [{k: v.tolist() for k, v in tree.items()} for tree in _sklearn_trees(boost)]
    return {
        "format": BDT_FORMAT,
        "bin_edges": [e.tolist() for e in grid.bin_edges_],
        "classes": boost.classes_.tolist(),
        "estimator_weights": boost.estimator_weights_.tolist(),
        "trees": forest,
    }


class ArrayBDT:
    """The BDT evaluated from its arrays (`bdt_to_arrays`) with numpy: the same probabilities as
    scikit-learn's
    pipeline (grid transform, SAMME decision function, binary softmax), without scikit-learn or pickle."""

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        if arrays.get("format") != BDT_FORMAT:
            raise ValueError(
                f"not a BDT in the array format {BDT_FORMAT!r} (format {arrays.get('format')!r})"
            )
        self.bin_edges = [np.asarray(e, np.float64) for e in arrays["bin_edges"]]
        self.classes = np.asarray(arrays["classes"])
        if len(self.classes) != 2:
            raise ValueError(f"the BDT must have two classes, not {len(self.classes)}")
        self.estimator_weights = np.asarray(arrays["estimator_weights"], np.float64)
        self.trees = [
            {k: np.asarray(v, np.float64 if k == "threshold" else np.int64) for k, v in t.items()}
            for t in arrays["trees"]
        ]
        self.tables = _tree_tables(self.trees)

    def _grid(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        out = np.empty(x.shape, np.float64)
        for j, edges in enumerate(self.bin_edges):  # one pass per feature, columnar
            out[:, j] = np.searchsorted(edges[1:-1], x[:, j], side="right")
        return out

    def staged_decision(self, x: np.ndarray):
        """The SAMME decision function after each tree (scikit-learn's staged_decision_function, binary
        case)."""
        for total, norm in self._sums(x):
            yield 2.0 * total / norm

    def _sums(self, x: np.ndarray):
        """After each tree: the sum of the votes so far per event and the sum of those trees' weights."""
        total, norm = np.zeros(len(x)), 0.0
        for w, votes in forest_votes(self.trees, self.estimator_weights, self._grid(x), self.tables):
            total = total + votes
            norm += w
            yield total, norm

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) class probabilities, as scikit-learn's predict_proba."""
        total, norm = np.zeros(len(x)), 0.0
        for total, norm in self._sums(x):
            pass
        return _binary_softmax(2.0 * total / norm if norm else total)


def _binary_softmax(decision: np.ndarray) -> np.ndarray:
    half = np.stack([-decision, decision], axis=1) / 2.0
    half -= half.max(axis=1, keepdims=True)
    e = np.exp(half)
    return e / e.sum(axis=1, keepdims=True)


def to_bytes(model) -> bytes:
    """Serialise a fitted tree model as JSON: XGBoost's own JSON model, the BDT as arrays (`bdt_to_arrays`).
    Neither format can run code when it is loaded."""
    if type(model).__name__ == "XGBClassifier":
        return bytes(model.get_booster().save_raw("json"))
    if isinstance(model, ArrayBDT):
        raise TypeError("an ArrayBDT is already a loaded checkpoint; store the arrays it was built from")
    return json.dumps(bdt_to_arrays(model), allow_nan=False).encode()


def from_bytes(kind: str, blob: bytes):
    """Inverse of `to_bytes` (the BDT comes back as an `ArrayBDT`)."""
    if kind == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier()
        model.load_model(bytearray(blob))
        return model
    if kind == "bdt":
        try:
            arrays = json.loads(bytes(blob).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"the BDT is not stored as JSON arrays (a pickle from an older version?): {err}"
            ) from err
        return ArrayBDT(arrays)
    raise ValueError(f"unknown tree model kind {kind!r}")
