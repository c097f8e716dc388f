"""The classes of a multiclass run (seed thesis 002, Secs. 2.1.4, 2.6, 2.7) from the config, and their
weights. Pure functions of the config and numpy arrays (no torch): the rules (workflow/rules/common.smk) call
`multiclass_spec`, the training (`hzg.learn.training`, `hzg.learn.multiclass`) the rest.

* Every sample has a class: `samples.<name>.class`, by default its kind (signal, background), so that a
  configuration without classes is the binary one.
* A loss of kind `multiclass` trains on the classes `losses.<name>.classes` lists, in that order (the index
  of a class is its position there; by default the samples' classes in the order of `samples`). Every class
  is a class of some sample, every sample's class is listed, and the samples of one class share a kind: the
  signal classes are those of the signal samples. The class index of an event comes from its sample (the
  `sample_id` of its key), so the feature files are the binary runs'.
* Class weights, 002's item 7 of Sec. 2.6 ("weighted class-imbalance weights & per-sample not normalized
  weights"): alpha_c = (W / W_c) / sum_k (W / W_k), W_c the summed event weight of class c in the training
  scope and W that of all classes (eq. 2.20 with 2.21's normalisation to a sum of 1), times the event's own
  weight; every class then carries the same total weight.
* Two-phase training (002, Sec. 2.7): `losses.<name>.multiclass_fraction` f < 1 trains the first
  round(f x training.epochs) epochs (at least 1, at most epochs - 1) multiclass and the rest binary; unset
  (or 1): multiclass throughout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MULTICLASS = "multiclass"
#: the phases of a multiclass run's epochs
MULTICLASS_PHASE, BINARY_PHASE = "multiclass", "binary"


def sample_class(spec: Mapping[str, Any]) -> str:
    """The class of a sample's config entry: its `class`, else its kind."""
    return str(spec.get("class", spec["kind"]))


def multiclass_spec(config: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """What a run of loss `loss` needs to know of the classes (training.RunSpec.multiclass), under the key
    `multiclass`; {} for a loss of another kind (so the binary runs' specs stay as they were)."""
    entry = config["losses"][loss]
    if entry["kind"] != MULTICLASS:
        if "classes" in entry or "multiclass_fraction" in entry:
            raise ValueError(f"losses.{loss}: `classes` and `multiclass_fraction` need kind {MULTICLASS!r}")
        return {}
    sample_classes = {s: sample_class(v) for s, v in config["samples"].items()}
    kinds: dict[str, set[str]] = {}
    for s, c in sample_classes.items():
        kinds.setdefault(c, set()).add(config["samples"][s]["kind"])
    mixed = sorted(c for c, k in kinds.items() if len(k) > 1)
    if mixed:
        raise ValueError(f"samples of class(es) {mixed} are of both kinds: a class is signal or background")
    classes = [str(c) for c in entry.get("classes") or dict.fromkeys(sample_classes.values())]
    unknown = sorted(set(classes) - set(kinds))
    unlisted = sorted(set(kinds) - set(classes))
    if unknown or unlisted or len(set(classes)) != len(classes):
        raise ValueError(
            f"losses.{loss}.classes {classes}: every class once, each the class of some sample "
            f"(unknown: {unknown}; samples' classes not listed: {unlisted})"
        )
    signal = [c for c in classes if kinds[c] == {"signal"}]
    if not signal or len(signal) == len(classes):
        raise ValueError(f"losses.{loss}: the classes {classes} need a signal and a background class")
    return {
        "multiclass": {
            "classes": classes,
            "signal_classes": signal,
            "sample_classes": sample_classes,
            "multiclass_epochs": multiclass_epochs(
                int(config["training"]["epochs"]), entry.get("multiclass_fraction")
            ),
        }
    }


def multiclass_epochs(epochs: int, fraction: float | None) -> int:
    """Epochs of the multiclass phase: all without a fraction (or 1), else round(f epochs) in [1, epochs - 1]
    (a two-phase run keeps at least one epoch of each phase)."""
    if fraction is None or float(fraction) >= 1.0:
        return int(epochs)
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"multiclass_fraction must lie in (0, 1], got {fraction}")
    if epochs < 2:
        raise ValueError("a two-phase run needs at least 2 epochs")
    return min(max(round(float(fraction) * epochs), 1), epochs - 1)


def phase(epoch: int, spec: Mapping[str, Any]) -> str:
    """The phase of epoch `epoch` (1-based) of a multiclass run: multiclass up to multiclass_epochs."""
    return MULTICLASS_PHASE if epoch <= int(spec["multiclass_epochs"]) else BINARY_PHASE


def signal_mask(spec: Mapping[str, Any]) -> list[bool]:
    """Which of the classes, in order, are signal."""
    return [c in spec["signal_classes"] for c in spec["classes"]]


def class_index(sample_ids: Sequence[int] | np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """The class index of every event from its sample id (the event key's `sample_id`)."""
    from hzg.data.features import sample_id

    index = {sample_id(s): spec["classes"].index(c) for s, c in spec["sample_classes"].items()}
    ids = np.asarray(sample_ids, np.int64)
    out = np.full(len(ids), -1, np.int64)
    for sid, c in index.items():
        out[ids == sid] = c
    if (out < 0).any():
        raise ValueError(
            f"events of sample id(s) {sorted(set(ids[out < 0].tolist()))} belong to no sample of the classes "
            f"{spec['sample_classes']}"
        )
    return out


def class_weights(cls: np.ndarray, weight: np.ndarray, n_classes: int) -> np.ndarray:
    """002's class weights (module text): alpha_c = (W / W_c) / sum_k (W / W_k), summing to 1."""
    cls, weight = np.asarray(cls), np.asarray(weight, np.float64)
    totals = np.array([weight[cls == c].sum() for c in range(n_classes)])
    if (totals <= 0).any():
        raise ValueError(f"every class needs a positive total weight, got {totals.tolist()}")
    inverse = totals.sum() / totals
    return inverse / inverse.sum()


def class_balanced_weights(weight: np.ndarray, cls: np.ndarray, n_classes: int) -> np.ndarray:
    """Event weight x its class weight, scaled so that every class sums to n / n_classes (n events): the
    multiclass `training.balanced_weights`."""
    weight = np.asarray(weight, np.float64)
    alpha = class_weights(cls, weight, n_classes)
    out = weight * alpha[np.asarray(cls)]
    return out * (len(out) / out.sum())
