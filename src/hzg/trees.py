"""Tree baselines of paper 000: XGBoost (100 rounds, depth 3) and a TMVA-like AdaBoost BDT.

TMVA's BDT (850 trees, depth 3, minimum node size 2.5 %, nCuts = 20, AdaBoost beta 0.5) is rebuilt
with scikit-learn: AdaBoost (SAMME) over depth-3 trees whose leaves hold at least 2.5 % of the
(weighted) training sample, on inputs discretised to the 20-cut grid TMVA scans per variable.
"""
from __future__ import annotations

import io as _io
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

#: The tree models (every other model is a neural network).
TREE_MODELS = ("xgboost", "bdt")
XGBOOST_DEFAULTS = {"n_rounds": 100, "max_depth": 3, "learning_rate": 0.3}
BDT_DEFAULTS = {"n_trees": 850, "max_depth": 3, "min_node_fraction": 0.025, "n_cuts": 20, "learning_rate": 0.5}


def _merge(defaults: Mapping[str, Any], hparams: Mapping[str, Any], name: str) -> dict[str, Any]:
    unknown = set(hparams) - set(defaults)
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {sorted(unknown)} for model {name!r}; known: {sorted(defaults)}")
    return {**defaults, **hparams}


def cuda_available() -> bool:
    """Whether a CUDA device is visible (via torch, which the training stage has anyway)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def fit_xgboost(x: np.ndarray, y: np.ndarray, w: np.ndarray, hparams: Mapping[str, Any], seed: int,
                threads: int, device: str = "auto"):
    """Train an XGBoost classifier (on CUDA when there is one and device allows it)."""
    import xgboost as xgb

    hp = _merge(XGBOOST_DEFAULTS, hparams, "xgboost")
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    model = xgb.XGBClassifier(n_estimators=hp["n_rounds"], max_depth=hp["max_depth"], learning_rate=hp["learning_rate"],
                              tree_method="hist", device="cuda" if use_cuda else "cpu", random_state=seed,
                              n_jobs=threads, objective="binary:logistic", eval_metric="logloss")
    model.fit(x, y, sample_weight=w, verbose=False)
    return model


def xgboost_scores(model, x: np.ndarray, n_rounds: int | None = None) -> np.ndarray:
    """Signal probability using the first `n_rounds` boosting rounds (all by default)."""
    kwargs = {"iteration_range": (0, n_rounds)} if n_rounds else {}
    return model.predict_proba(x, **kwargs)[:, 1]


def fit_bdt(x: np.ndarray, y: np.ndarray, w: np.ndarray, hparams: Mapping[str, Any], seed: int):
    """Train the TMVA-like AdaBoost BDT; returns a scikit-learn pipeline (grid discretiser + AdaBoost)."""
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer
    from sklearn.tree import DecisionTreeClassifier

    hp = _merge(BDT_DEFAULTS, hparams, "bdt")
    tree = DecisionTreeClassifier(max_depth=hp["max_depth"], min_weight_fraction_leaf=hp["min_node_fraction"],
                                  random_state=seed)
    boost = AdaBoostClassifier(tree, n_estimators=hp["n_trees"], learning_rate=hp["learning_rate"], random_state=seed)
    grid = KBinsDiscretizer(n_bins=hp["n_cuts"] + 1, encode="ordinal", strategy="uniform")
    pipe = make_pipeline(grid, boost)
    pipe.fit(x, y, adaboostclassifier__sample_weight=w)
    return pipe


def bdt_scores(model, x: np.ndarray) -> np.ndarray:
    """Signal probability of the BDT."""
    return model.predict_proba(x)[:, 1]


def bdt_staged_scores(model, x: np.ndarray, stages: list[int]) -> dict[int, np.ndarray]:
    """Signal probability after each of `stages` trees, in one pass over the boosting stages."""
    grid, boost = model[0], model[-1]
    wanted, out = set(stages), {}
    for i, proba in enumerate(boost.staged_predict_proba(grid.transform(x)), start=1):
        if i in wanted:
            out[i] = proba[:, 1]
    return out


def to_bytes(model) -> bytes:
    """Serialise a fitted tree model (XGBoost: its JSON model; BDT: pickle)."""
    if type(model).__name__ == "XGBClassifier":
        return bytes(model.get_booster().save_raw("json"))
    buf = _io.BytesIO()
    pickle.dump(model, buf)
    return buf.getvalue()


def from_bytes(kind: str, blob: bytes):
    """Inverse of `to_bytes`."""
    if kind == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier()
        model.load_model(bytearray(blob))
        return model
    if kind == "bdt":
        return pickle.loads(blob)
    raise ValueError(f"unknown tree model kind {kind!r}")
