"""Neural-network classifiers: a registry and `build_model`; every model maps (batch, N) to probabilities
(batch,)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from hzg.learn.models.etn import EventClassifierTransformer
from hzg.learn.models.etn_objects import ObjectETN, ObjectETNConcat
from hzg.learn.models.ft_transformer import FTTransformer
from hzg.learn.models.mlp import DFNN, FNN
from hzg.learn.models.resnet import ResNet
from hzg.registry import JET_MODELS, NEURAL_MODELS, OBJECT_MODELS, missing_mode

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "etn": EventClassifierTransformer,
    "fnn": FNN,
    "dfnn": DFNN,
    "ft_transformer": FTTransformer,
    "resnet": ResNet,
    "etn_objects": ObjectETN,
    "etn_objects_concat": ObjectETNConcat,
    # the ETN and FT-Transformer reading the jet features (registry JET_MODELS): the same classes, with
    # learned tokens for missing values (embedding) or without (sentinel, the numbers do it)
    **{
        name: {"etn": EventClassifierTransformer, "ft_transformer": FTTransformer}[base]
        for name, (base, _) in JET_MODELS.items()
    },
}
#: constructor arguments that come from the inputs, not from the config's hyper-parameters
LAYOUT_ARGS = ("n_features", "n_objects", "missing")


def default_hparams(name: str) -> dict[str, Any]:
    """Hyper-parameters of model `name` and their defaults (the paper's values)."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(NEURAL_MODELS)}")
    params = inspect.signature(MODEL_CLASSES[name]).parameters
    return {k: p.default for k, p in params.items() if k not in LAYOUT_ARGS}


def build_model(
    name: str, n_features: int, n_objects: int = 0, missing: Sequence[int] = (), **hparams: Any
) -> nn.Module:
    """Model `name` for `n_features` inputs, hyper-parameters overriding the defaults by keyword.

    An object model (registry OBJECT_MODELS) needs `n_objects` > 0: its last 5 x n_objects inputs are the
    object block (`hzg.data.objects.count_objects` of the input columns); the others take none. `missing`:
    positions of the inputs that may be NaN, each with a learned token (`missing_inputs`), for the models
    whose missing mode (registry `missing_mode`) is "embedding" only."""
    allowed = default_hparams(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    if (name in OBJECT_MODELS) != (int(n_objects) > 0):
        raise ValueError(
            f"model {name!r} takes {'an object block' if name in OBJECT_MODELS else 'no objects'}, "
            f"got n_objects={n_objects}"
        )
    if len(missing) and missing_mode(name) != "embedding":
        raise ValueError(f"model {name!r} has no learned embeddings of missing values, got missing={missing}")
    if name in OBJECT_MODELS:
        return MODEL_CLASSES[name](int(n_features), int(n_objects), **hparams)
    if len(missing):
        return MODEL_CLASSES[name](int(n_features), missing=[int(i) for i in missing], **hparams)
    return MODEL_CLASSES[name](int(n_features), **hparams)


def missing_inputs(name: str, columns: Sequence[str]) -> list[int]:
    """Positions among the input `columns` of the features that may be missing
    (`hzg.data.features.OPTIONAL_FEATURES`) where model `name` learns their embeddings; [] otherwise."""
    from hzg.data.features import OPTIONAL_FEATURES

    if missing_mode(name) != "embedding":
        return []
    return [i for i, c in enumerate(columns) if c in OPTIONAL_FEATURES]


__all__ = [
    "MODEL_CLASSES",
    "build_model",
    "missing_inputs",
    "default_hparams",
    "EventClassifierTransformer",
    "FNN",
    "DFNN",
    "FTTransformer",
    "ResNet",
    "ObjectETN",
    "ObjectETNConcat",
]
