"""Neural-network classifiers: a registry and `build_model`; every model maps (batch, N) to probabilities
(batch,)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from hzg.learn.models.etn import EventClassifierTransformer
from hzg.learn.models.ft_transformer import FTTransformer
from hzg.learn.models.mlp import DFNN, FNN
from hzg.learn.models.resnet import ResNet
from hzg.registry import NEURAL_MODELS

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "etn": EventClassifierTransformer,
    "fnn": FNN,
    "dfnn": DFNN,
    "ft_transformer": FTTransformer,
    "resnet": ResNet,
}


def default_hparams(name: str) -> dict[str, Any]:
    """Hyper-parameters of model `name` and their defaults (the paper's values)."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(NEURAL_MODELS)}")
    params = inspect.signature(MODEL_CLASSES[name]).parameters
    return {k: p.default for k, p in params.items() if k != "n_features"}


def build_model(name: str, n_features: int, **hparams: Any) -> nn.Module:
    """Model `name` for `n_features` inputs, hyper-parameters overriding the defaults by keyword."""
    allowed = default_hparams(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    return MODEL_CLASSES[name](int(n_features), **hparams)


__all__ = [
    "MODEL_CLASSES",
    "build_model",
    "default_hparams",
    "EventClassifierTransformer",
    "FNN",
    "DFNN",
    "FTTransformer",
    "ResNet",
]
