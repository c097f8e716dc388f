"""Tree baselines of paper 000: XGBoost and a TMVA-like AdaBoost BDT.

TMVA's BDT (AdaBoost over shallow trees with a minimum node size and nCuts grid points per variable) is
rebuilt with scikit-learn: AdaBoost (SAMME) over trees of depth `max_depth` whose leaves hold at least
`min_node_fraction` of the (weighted) training sample, on inputs discretised to the `n_cuts` grid TMVA scans
per variable. The hyper-parameters (the paper's values) come only from the config, `models.xgboost` and
`models.bdt` (config/config.yaml; the schema requires every key named in `HPARAM_KEYS`).
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


def fit_bdt(x: np.ndarray, y: np.ndarray, w: np.ndarray, hparams: Mapping[str, Any], seed: int):
    """Train the TMVA-like AdaBoost BDT.

    Args:
        x: Training features.
        y: Training labels.
        w: Training event weights.
        hparams: The config's `models.bdt` (n_trees, max_depth, min_node_fraction, n_cuts, learning_rate).
        seed: Random state.

    Returns:
        A scikit-learn pipeline (grid discretiser + AdaBoost).
    """
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer
    from sklearn.tree import DecisionTreeClassifier

    hp = hyper_parameters(hparams, "bdt")
    tree = DecisionTreeClassifier(
        max_depth=hp["max_depth"], min_weight_fraction_leaf=hp["min_node_fraction"], random_state=seed
    )
    boost = AdaBoostClassifier(
        tree, n_estimators=hp["n_trees"], learning_rate=hp["learning_rate"], random_state=seed
    )
    grid = KBinsDiscretizer(n_bins=hp["n_cuts"] + 1, encode="ordinal", strategy="uniform")
    pipe = make_pipeline(grid, boost)
    pipe.fit(x, y, adaboostclassifier__sample_weight=w)
    return pipe


def _tree_votes(model, x: np.ndarray):
    """Per tree of the fitted BDT pipeline: (its weight, +w / -w per event as the tree votes signal /
    background). scikit-learn's `estimator.predict` per tree re-validates the input and takes an argmax per
    event; here the grid transform and the float32 cast happen once, and a tree is its leaf index
    (`tree_.apply`) and a per-leaf lookup of its class: the same votes, 3-4 times faster."""
    grid, boost = model[0], model[-1]
    if list(boost.classes_) != [0, 1]:
        raise ValueError(f"the BDT must have the classes [0, 1], not {list(boost.classes_)}")
    xt = np.ascontiguousarray(grid.transform(x), dtype=np.float32)  # what each tree's predict casts to
    for estimator, w in zip(boost.estimators_, boost.estimator_weights_):
        tree = estimator.tree_
        signal_leaf = np.argmax(tree.value[:, 0, :], axis=1) == 1  # the class a leaf predicts (first on ties)
        yield w, np.where(signal_leaf[tree.apply(xt)], w, -w)


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
    wanted, out = set(stages), {}
    total, norm = 0, 0.0
    for i, (w, votes) in enumerate(_tree_votes(model, x), start=1):
        norm += w
        total = total + votes
        if i in wanted:
            signal = total / norm
            out[i] = _binary_proba(signal + signal)
    return out


#: Format tag of a BDT serialised as arrays (JSON), checked on load.
BDT_FORMAT = "hzg-bdt-arrays-1"


def bdt_to_arrays(model) -> dict[str, Any]:
    """The fitted BDT pipeline (grid discretiser + AdaBoost SAMME over trees) as plain lists: the grid's bin
    edges, the tree weights and, per tree, its nodes (children, split feature and threshold, class of the
    node)."""
    grid, boost = model[0], model[-1]
    if getattr(boost, "algorithm", "SAMME") not in ("SAMME", "deprecated"):
        raise ValueError(f"only AdaBoost SAMME can be stored as arrays, not {boost.algorithm!r}")
    forest = []
    for est in boost.estimators_:
        t = est.tree_
        forest.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "leaf_class": np.argmax(t.value[:, 0, :], axis=1).tolist(),
            }
        )
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

    def _grid(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        out = np.empty(x.shape, np.float64)
        for j, edges in enumerate(self.bin_edges):  # one pass per feature, columnar
            out[:, j] = np.searchsorted(edges[1:-1], x[:, j], side="right")
        return out

    @staticmethod
    def _tree_class(tree: Mapping[str, np.ndarray], xt: np.ndarray) -> np.ndarray:
        node = np.zeros(len(xt), np.int64)
        rows = np.arange(len(xt))
        while True:  # one step per tree level, every event at once
            inner = tree["left"][node] >= 0
            if not inner.any():
                return tree["leaf_class"][node]
            go_left = xt[rows, np.where(inner, tree["feature"][node], 0)] <= tree["threshold"][node]
            node = np.where(inner, np.where(go_left, tree["left"][node], tree["right"][node]), node)

    def staged_decision(self, x: np.ndarray):
        """The SAMME decision function after each tree (scikit-learn's staged_decision_function, binary
        case)."""
        xt = self._grid(x)
        total, norm = np.zeros(len(xt)), 0.0
        for tree, w in zip(self.trees, self.estimator_weights):
            total = total + np.where(self._tree_class(tree, xt) == 1, w, -w)
            norm += w
            yield 2.0 * total / norm

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) class probabilities, as scikit-learn's predict_proba."""
        decision = None
        for decision in self.staged_decision(x):
            pass
        if decision is None:
            decision = np.zeros(len(x))
        return _binary_softmax(decision)


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
