"""The classes of a multiclass run (seed thesis 002, Secs. 2.1.4, 2.6, 2.7) from the config, and their
weights. Pure functions of the config and numpy arrays (no torch): the rules (workflow/rules/common.smk) call
`multiclass_spec`, the training (`hzg.learn.training`, `hzg.learn.multiclass`) the rest.

* A loss of kind `multiclass` names its classes and their samples, `losses.<name>.classes: {class: [sample,
  ...], ...}`, in output order (the index of a class is its position there). Every sample the run reads is
  in exactly one class, and the samples of a class share a kind: the signal classes are those of signal
  samples. Unset: every sample its own class, named after it, in the order of `samples`. The class index of
  an event comes from its sample (the `sample_id` of its key), so the feature files are the binary runs'.
* `multiclass_samples` (entries as in `samples`): samples that only the multiclass runs read, for classes
  the analysis does not have (config/methods.yaml: the VBF signal). They are generated, skimmed and featured
  as every sample and trained on in both phases, as their kind says (VBF: signal); the validation
  significance that picks the epoch and the scores a run writes (Table I, ROC) are those of the events of
  `samples` only, so the signal of every run's table row stays that of `samples` (ggH, the paper's), and
  friend trees and fits score the samples of `samples` as for every run.
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


def multiclass_spec(config: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """What a run of loss `loss` needs to know of the classes (training.RunSpec.multiclass), under the key
    `multiclass`; {} for a loss of another kind (so the binary runs' specs stay as they were)."""
    entry = config["losses"][loss]
    if entry["kind"] != MULTICLASS:
        if "classes" in entry or "multiclass_fraction" in entry:
            raise ValueError(f"losses.{loss}: `classes` and `multiclass_fraction` need kind {MULTICLASS!r}")
        return {}
    extra = dict(config.get("multiclass_samples") or {})
    clash = sorted(set(extra) & set(config["samples"]))
    if clash:
        raise ValueError(f"multiclass_samples {clash} are also in samples: a sample is one or the other")
    specs = {**config["samples"], **extra}
    members = {str(c): list(v) for c, v in (entry.get("classes") or {s: [s] for s in specs}).items()}
    sample_classes = {s: c for c, names in members.items() for s in names}
    listed = [s for names in members.values() for s in names]
    unknown = sorted(set(listed) - set(specs))
    unlisted = [s for s in specs if s not in sample_classes]
    twice = sorted({s for s in listed if listed.count(s) > 1})
    if unknown or unlisted or twice or any(not names for names in members.values()):
        raise ValueError(
            f"losses.{loss}.classes {members}: every sample the run reads in exactly one class (unknown "
            f"samples: {unknown}; not listed: {unlisted}; listed twice: {twice}), no class empty"
        )
    kinds = {c: {specs[s]["kind"] for s in names} for c, names in members.items()}
    mixed = sorted(c for c, k in kinds.items() if len(k) > 1)
    if mixed:
        raise ValueError(f"losses.{loss}: class(es) {mixed} mix signal and background samples")
    classes = list(members)
    signal = [c for c in classes if kinds[c] == {"signal"}]
    if not signal or len(signal) == len(classes):
        raise ValueError(f"losses.{loss}: the classes {classes} need a signal and a background class")
    return {
        "multiclass": {
            "classes": classes,
            "signal_classes": signal,
            "sample_classes": {s: sample_classes[s] for s in specs},
            "training_only": list(extra),
            "multiclass_epochs": multiclass_epochs(
                int(config["training"]["epochs"]), entry.get("multiclass_fraction")
            ),
        }
    }


def problems(config: Mapping[str, Any]) -> list[str]:
    """The multiclass losses' broken constraints (`multiclass_spec`'s errors), for config_checks."""
    out = []
    for name, entry in config["losses"].items():
        try:
            multiclass_spec(config, name)
        except ValueError as err:
            out.append(str(err))
        if entry["kind"] == MULTICLASS and entry.get("strategy", "standard") != "standard":
            out.append(f"losses.{name}: a multiclass loss takes no mass-scan strategy")
    return out


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


def reads_multiclass_samples(config: Mapping[str, Any], loss: str) -> bool:
    """Whether a training job of this loss reads `multiclass_samples` (a multiclass loss, where there are)."""
    return config["losses"][loss]["kind"] == MULTICLASS and bool(config.get("multiclass_samples"))


def analysis_events(sample_ids: Sequence[int] | np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Which events are of `samples` (not of the training-only `multiclass_samples`)."""
    from hzg.data.features import sample_id

    extra = [sample_id(s) for s in spec.get("training_only", [])]
    return ~np.isin(np.asarray(sample_ids, np.int64), np.asarray(extra, np.int64))


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
