"""Training of one (model, loss, trial): data scope, balancing, normalisation, the events each epoch
draws, the epoch loop with significance-based model selection, resumable checkpoints, and the scores of
every event."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hzg.data import features as feat
from hzg.data import objects
from hzg import checkpoints, io, metrics
from hzg.learn import boosted, classes, losses, multiclass, strategies
from hzg.learn.draws import class_draw, draw_classes, narrow_share_missing, split_class_draw
from hzg.learn.classifier import SENTINEL, Normaliser, predict_neural
from hzg.registry import (
    JET_MODELS,
    OBJECT_MODELS,
    STANDARD,
    TRAIN,
    TREE_MODELS,
    VALIDATION,
    missing_mode,
    result_training,
    run_name,
    split_column,
)

log = logging.getLogger(__name__)

KEY_COLUMNS = ("sample_id", "chunk", "entry")


@dataclass
class Dataset:
    """All events of all samples for one trial: inputs, labels, weights, mass, split and key."""

    x: np.ndarray  # (n, n_features) float32, not normalised
    y: np.ndarray  # (n,) float32, 1 = signal
    weight: np.ndarray  # (n,) physical weight (expected events of the full sample)
    mass: np.ndarray  # (n,) mllg
    split: np.ndarray  # (n,) 0 train, 1 validation, 2 test
    keys: pd.DataFrame  # sample_id, chunk, entry
    features: list[str]
    #: weights the training draws from (a mass-scan strategy's, hzg.learn.strategies); None: `weight`
    train_weight: np.ndarray | None = None
    #: generated Higgs mass of every signal event, NaN for background (mass-scan strategies); None otherwise
    true_mass: np.ndarray | None = None
    #: class index of every event (a multiclass run, hzg.learn.classes); None otherwise
    class_index: np.ndarray | None = None

    @property
    def training_weight(self) -> np.ndarray:
        """The weights training draws from: `train_weight` where a strategy sets them, else `weight`."""
        return self.weight if self.train_weight is None else self.train_weight


def feature_names(disco_lambda: float, sigma_m: str = feat.SIGMA_M_DEFAULT) -> list[str]:
    """The paper's inputs: 12 features (sigma_m in GeV or relative), plus the 3 momenta with DisCo."""
    return list(feat.feature_set(sigma_m)) + (list(feat.DISCO_FEATURES) if disco_lambda > 0 else [])


def input_columns(
    model: str, disco_lambda: float, sigma_m: str = feat.SIGMA_M_DEFAULT, n_objects: int = 0
) -> list[str]:
    """A run's input columns, in the order the model reads them: `feature_names`, for a jet model (registry
    JET_MODELS) the jet features after them (`hzg.data.features.JET_FEATURES`, NaN where missing), and for
    an object model (registry OBJECT_MODELS) the object block of `n_objects` slots last (`hzg.data.objects`).
    The one place that says what a run reads; its checkpoint keeps the list, which scoring and
    interpretation use."""
    columns = feature_names(disco_lambda, sigma_m)
    if model in JET_MODELS:
        columns += list(feat.JET_FEATURES)
    if model in OBJECT_MODELS:
        if int(n_objects) < 1:
            raise ValueError(f"model {model!r} reads objects: n_objects must be positive, got {n_objects}")
        columns += objects.object_columns(int(n_objects))
    return columns


def load_dataset(paths: Sequence[str | Path], features: Sequence[str], trial: int) -> Dataset:
    """Concatenate the feature Parquet files of all samples, with the split of `trial`. Only the columns a run
    uses are read (a twentieth of the time of all a feature file holds); every file must have them all."""
    split_col = split_column(trial)
    wanted = list(dict.fromkeys([*features, split_col, "weight", "mllg", "is_signal", *KEY_COLUMNS]))
    names = {str(p): io.parquet_columns(p) for p in paths}
    columns = list(dict.fromkeys(c for cols in names.values() for c in cols))
    missing = list(dict.fromkeys(c for cols in names.values() for c in wanted if c not in cols))
    n_objects = objects.count_objects(list(features))
    if n_objects and any(c in objects.object_columns(n_objects) for c in missing):
        objects.check_object_columns(columns, n_objects, f"feature files {list(map(str, paths))}")
    if missing and set(missing) & set(feat.JET_FEATURES):
        raise KeyError(
            f"feature files {list(map(str, paths))} lack columns {missing}: the jet features are written "
            "where a run reads them (registry JET_MODELS), the skim has at least two jet slots (config "
            "objects.n_jets >= 2) and the n-tuples a Jet collection"
        )
    if missing:
        lacking = {p: [c for c in wanted if c not in cols] for p, cols in names.items()}
        raise KeyError(
            f"feature files {list(map(str, paths))} lack columns {missing} "
            f"({', '.join(f'{p}: {c}' for p, c in lacking.items() if c)})"
        )
    frame = pd.concat([pd.read_parquet(p, columns=wanted) for p in paths], ignore_index=True)
    if frame["is_signal"].nunique() < 2:
        raise ValueError(
            f"feature files {list(map(str, paths))} hold only one class; need signal and background"
        )
    feat.check_finite(frame, list(features), source="training inputs")
    return Dataset(
        x=frame[list(features)].to_numpy(np.float32),
        y=frame["is_signal"].to_numpy(np.float32),
        weight=frame["weight"].to_numpy(np.float64),
        mass=frame["mllg"].to_numpy(np.float64),
        split=frame[split_col].to_numpy(np.int8),
        keys=frame[list(KEY_COLUMNS)].reset_index(drop=True),
        features=list(features),
    )


def fit_normaliser(x: np.ndarray, columns: Sequence[str], model: str) -> Normaliser:
    """The normaliser of a run of `model` fitted on its training inputs `x`: missing values (NaN) stay NaN
    and are left out of the statistics, or become `SENTINEL` for a model whose missing mode is "sentinel"
    (registry `missing_mode`)."""
    return Normaliser.fit(x, columns, sentinel=SENTINEL if missing_mode(model) == "sentinel" else None)


def training_scope(
    mass: np.ndarray, y: np.ndarray, disco_lambda: float, tcfg: Mapping[str, Any]
) -> np.ndarray:
    """Events a training step sees: the narrow window (classifier term), plus background in the
    wide window when DisCo is on (paper Sec. III B / IV C); everything when data scope is off."""
    if not tcfg["data_scope"]:
        return np.ones(len(mass), dtype=bool)
    scope = metrics.in_window(mass, tcfg["narrow_window"])
    if disco_lambda > 0:
        scope |= (y == 0) & metrics.in_window(mass, tcfg["wide_window"])
    return scope


def balanced_weights(weight: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights rescaled so that signal and background each sum to half the number of events."""
    out = np.asarray(weight, np.float64).copy()
    for cls in (0, 1):
        sel = y == cls
        total = out[sel].sum()
        if total <= 0:
            raise ValueError(f"class {cls} has non-positive total weight {total} in the training scope")
        out[sel] *= 0.5 * len(out) / total
    return out


def resume_epoch(epoch: int, every: int) -> bool:
    """Whether a resume file is written after `epoch` (1-based): every `every` epochs (training.resume_every;
    1: after each)."""
    if every < 1:
        raise ValueError(f"training.resume_every must be at least 1 epoch, got {every}")
    return epoch % every == 0


def eval_epochs(n_epochs: int, every_early: int, early_until: int, every_late: int) -> list[int]:
    """Epochs (1-based) with a validation pass: every `every_early` up to `early_until`, then every
    `every_late`; the last epoch always."""
    epochs = set(range(every_early, min(early_until, n_epochs) + 1, every_early))
    start = (early_until // every_late + 1) * every_late
    epochs |= set(range(start, n_epochs + 1, every_late))
    epochs.add(n_epochs)
    return sorted(epochs)


def config_hash(payload: Any) -> str:
    """SHA-256 of a JSON-serialisable description of what a result depends on."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def denormals_flushed() -> bool:
    """Whether the CPU flushes denormal floats to zero now (a product that should be denormal comes out 0)."""
    return float((torch.tensor([1e-30], dtype=torch.float32) * 1e-9).item()) == 0.0


@contextlib.contextmanager
def flushed_denormals() -> Iterator[bool]:
    """Flush denormal floats to zero on the CPU (SSE3 FTZ/DAZ; torch.set_flush_denormal) inside the block, and
    restore the previous state after it (it is per thread and global: other code, e.g. hypothesis, relies on
    IEEE subnormals). Yields whether the CPU supports it (False leaves the default, e.g. on ARM).

    The object models' masked attention made denormal numbers (softmax weights of padded tokens), and the
    CPU computes on them many times slower: etn_objects trained 2.6 times slower with them (231 s against
    89 s a trial, alone on 2 cores; the same losses, best epoch and validation significance;
    docs/methods.md). The attention kernel now gives those weights exactly 0 (its softmax exp is 0 below -87),
    so this is a guard for whatever else may make them (PyTorch's attention where the kernel is not built)."""
    was_on = denormals_flushed()
    supported = bool(torch.set_flush_denormal(True))
    try:
        yield supported
    finally:
        torch.set_flush_denormal(was_on)


def pick_device(choice: str) -> torch.device:
    """CUDA when asked for or ('auto') when present, else CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("config training.device is 'cuda' but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class RunSpec:
    """What one training job does (built from config by the rule)."""

    model: str
    loss: str
    loss_kind: str
    disco_lambda: float
    hparams: dict
    training: dict
    trial: int
    sigma_m: str = feat.SIGMA_M_DEFAULT
    #: training strategy of the loss entry (hzg.learn.strategies): standard, munn or pnn
    strategy: str = STANDARD
    #: the mass points of a mass-scan strategy (hzg.data.mass_scan.strategy_spec); None for standard
    mass_scan: dict | None = None
    n_objects: int = 0  # object slots of an object model's inputs (config objects), 0 for the others
    #: the classes of a multiclass loss (hzg.learn.classes.multiclass_spec); None for the binary losses
    multiclass: dict | None = None
    #: the classifier term weighs its scope's two classes equally (config losses.<loss>.balance_classifier)
    balance_classifier: bool = False
    #: the share of a DisCo run's background draws in the narrow window (config losses.<loss>.narrow_share)
    narrow_share: float | None = None

    @property
    def seed(self) -> int:
        return int(self.training["seed"]) + self.trial

    def describe(self) -> dict:
        return {
            "model": self.model,
            "loss": self.loss,
            "loss_kind": self.loss_kind,
            "disco_lambda": self.disco_lambda,
            "hparams": self.hparams,
            # what the result depends on: not how often a resume file is written (resume_every)
            "training": result_training(self.training),
            "trial": self.trial,
            "sigma_m": self.sigma_m,
            # only for a mass-scan strategy: the standard runs' hashes and resume keys stay as they were
            **({"strategy": self.strategy, "mass_scan": self.mass_scan} if self.strategy != STANDARD else {}),
            # only where set: the description (and so the hashes) of the other runs stays as it was
            **({"n_objects": self.n_objects} if self.n_objects else {}),
            **({"multiclass": self.multiclass} if self.multiclass else {}),
            **({"balance_classifier": True} if self.balance_classifier else {}),
            **({"narrow_share": self.narrow_share} if self.narrow_share is not None else {}),
        }

    def input_columns(self) -> list[str]:
        """The run's input columns (`input_columns`)."""
        return input_columns(self.model, self.disco_lambda, self.sigma_m, self.n_objects)


def validation_significance(
    score: np.ndarray, data: Dataset, eval_w: np.ndarray, n_bins: int, split: int = 1
) -> float:
    """The paper's binned significance on one split (validation by default); `score` covers all events."""
    sel = data.split == split
    return split_significance(score[sel], data.mass[sel], eval_w[sel], data.y[sel], n_bins)


def split_significance(
    score: np.ndarray, mass: np.ndarray, weight: np.ndarray, y: np.ndarray, n_bins: int
) -> float:
    """The paper's binned significance of already-selected events."""
    z, _ = metrics.binned_significance(score, mass, weight, y.astype(bool), n_bins=n_bins)
    return float(z)


def _batch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Shuffled event order of one epoch: a function of (seed, epoch) only, so a resumed run repeats it."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


class EpochSampler:
    """The events of each training epoch and their weights, a function of (seed, epoch) only, so that a
    resumed run repeats them.

    `events_per_epoch` None: every training event once, in shuffled order, with `balanced_weights`.
    An integer N: n = min(N, number of training events) draws, n // 2 of signal and the rest of
    background (so every batch holds both classes, about half each). Each class is drawn with replacement
    with probability proportional to |weight| and carries weight sign(w) * sum|w| / sum(w), 1 for positive
    weights: each class then sums to its number of draws in expectation (the classes stay balanced, as
    with `balanced_weights`), every weighted sum over the epoch is an unbiased estimate of that over all
    training events with their weights, and a few events with weights 10-100 times the others do not
    dominate batches. The DisCo term gets its background (wide window) the same way: drawn by |w|, with
    unit (sign) weights. The epoch size, and so its cost, does not grow with the sample. Validation and
    scores do not use this: they take all events with their true weights.
    """

    def __init__(
        self,
        idx: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray,
        events_per_epoch: int | None,
        seed: int,
        narrow: np.ndarray | None = None,
        narrow_share: float | None = None,
    ) -> None:
        self.idx = np.asarray(idx, np.int64)
        self.seed = int(seed)
        y = np.asarray(y)[self.idx]
        w = np.asarray(weight, np.float64)[self.idx]
        self.events_per_epoch = None if events_per_epoch is None else int(events_per_epoch)
        if self.events_per_epoch is None:
            self.weight = balanced_weights(w, y)
            return
        if self.events_per_epoch < 2:
            raise ValueError(
                f"config training.events_per_epoch must be at least 2 or null, got {events_per_epoch}"
            )
        self.n_draw = min(self.events_per_epoch, len(self.idx))
        # (positions in idx, cumulative |w| normalised to end at 1, weights of a draw, draws)
        n_signal = self.n_draw // 2
        background, n_background = np.flatnonzero(y == 0), self.n_draw - n_signal
        self.classes = [class_draw(np.flatnonzero(y == 1), w, n_signal, 1)]
        if narrow_share is None:
            self.classes.append(class_draw(background, w, n_background, 0))
        else:  # the background in two groups (`split_class_draw`, `sampler_narrow_share`)
            self.classes += split_class_draw(
                background, np.asarray(narrow, bool)[self.idx], w, n_background, float(narrow_share), "0"
            )

    def __len__(self) -> int:
        return len(self.idx) if self.events_per_epoch is None else self.n_draw

    def __call__(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Event indices (into the dataset) of epoch `epoch`, in training order, and their weights."""
        if self.events_per_epoch is None:
            order = _batch_order(len(self.idx), self.seed, epoch).numpy()
            return self.idx[order], self.weight[order]
        picks, weights = draw_classes(self.classes, np.random.default_rng([self.seed, epoch]), self.n_draw)
        return self.idx[picks], weights


def sampler_narrow_share(spec: RunSpec) -> float | None:
    """The run's `narrow_share` where it applies: a DisCo run with the data scope and a drawn epoch.

    Raises:
        ValueError: the loss sets narrow_share for a run it cannot apply to (the message names the key).
    """
    if spec.narrow_share is None:
        return None
    missing = narrow_share_missing(spec.loss, spec.disco_lambda, spec.training)
    if missing:
        raise ValueError(
            f"config key losses.{spec.loss}.narrow_share needs {', '.join(missing)}: it splits the "
            "background drawn for DisCo in the wide window"
        )
    return spec.narrow_share


def epoch_sampler(idx: np.ndarray, data: Dataset, weight: np.ndarray, spec: RunSpec) -> EpochSampler:
    """The run's `EpochSampler` over the training events `idx`: with the loss' `narrow_share`, the background
    drawn that share in the narrow window (`split_class_draw`)."""
    share = sampler_narrow_share(spec)
    narrow = None if share is None else metrics.in_window(data.mass, spec.training["narrow_window"])
    return EpochSampler(
        idx,
        data.y,
        weight,
        spec.training.get("events_per_epoch"),
        spec.seed,
        narrow=narrow,
        narrow_share=share,
    )


@dataclass
class _Prepared:
    """The tensors one neural training works on (all events, on the training device).

    Attributes:
        norm: Normaliser fitted on the in-scope training events.
        x: Normalised features of all events.
        y: Labels of all events.
        m: mllg of all events (float32).
        w_val: Validation-loss weights: balanced true weights of the in-scope validation events, 0 elsewhere.
        val_idx: Indices of the in-scope validation events (validation loss).
        val_np: Boolean mask of all validation events (validation significance).
        val_scope: Boolean mask of the in-scope validation events (those of val_idx).
        eval_w: Per-split scaled event weights for the significance.
        sampler: Draws the training events and their weights of each epoch.
    """

    norm: Normaliser
    x: torch.Tensor
    y: torch.Tensor
    m: torch.Tensor
    w_val: torch.Tensor
    val_idx: torch.Tensor
    val_np: np.ndarray
    val_scope: np.ndarray
    eval_w: np.ndarray
    sampler: EpochSampler
    #: the multiclass phase's targets, draw and validation weights (a multiclass run); None otherwise
    multi: multiclass.Prepared | None = None


def _prepare_data(data: Dataset, spec: RunSpec, device: torch.device) -> _Prepared:
    """Select the training scope, fit the normaliser and move everything the epochs need to `device`.

    Args:
        data: All events of the run (every split).
        spec: The run; its training section gives the data scope and events per epoch.
        device: Where the tensors go.

    Returns:
        The prepared tensors, masks, weights and epoch sampler.
    """
    tcfg = spec.training
    scope = training_scope(data.mass, data.y, spec.disco_lambda, tcfg)
    train_sel, val_sel = (data.split == TRAIN) & scope, (data.split == VALIDATION) & scope
    norm = fit_normaliser(data.x[train_sel], data.features, spec.model)
    x = torch.from_numpy(norm(data.x)).to(device)
    y = torch.from_numpy(data.y).to(device)
    m = torch.from_numpy(data.mass.astype(np.float32)).to(device)
    sampler = epoch_sampler(np.flatnonzero(train_sel), data, data.training_weight, spec)
    # validation loss: the in-scope validation events (at most training.validation_loss_events of them, drawn
    # uniformly once), balanced true weights
    val_sel = capped_training_events(val_sel, tcfg.get("validation_loss_events"), spec.seed + 1)
    w_val = np.zeros(len(data.y))
    w_val[val_sel] = balanced_weights(data.training_weight[val_sel], data.y[val_sel])
    w = torch.from_numpy(w_val.astype(np.float32)).to(device)
    eval_w = metrics.split_scaled_weights(data.weight, data.y, data.split)
    val_idx = torch.from_numpy(np.flatnonzero(val_sel)).to(device)
    val_np = data.split == VALIDATION
    multi = None
    if spec.multiclass and spec.multiclass.get("training_only"):
        # the significance that picks the epoch: the events of `samples` only, as the binary runs'
        keep = classes.analysis_events(data.keys["sample_id"].to_numpy(), spec.multiclass)
        eval_w = np.zeros(len(data.y))
        eval_w[keep] = metrics.split_scaled_weights(data.weight[keep], data.y[keep], data.split[keep])
        val_np = val_np & keep
    if spec.multiclass:
        multi = multiclass.Prepared(
            data, spec.multiclass, train_sel, val_sel, tcfg.get("events_per_epoch"), spec.seed, device
        )
    return _Prepared(norm, x, y, m, w, val_idx, val_np, val_sel, eval_w, sampler, multi)


def _build_model_and_optimiser(
    spec: RunSpec, n_features: int, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """Build the model of `spec` and its Adam optimiser.

    Args:
        spec: The run (model name, hyper-parameters, learning rate).
        n_features: Number of input features.
        device: Where the model lives (`adam`).

    Returns:
        The model and the optimiser.
    """
    from hzg.learn.models import build_model, missing_inputs

    n_objects = spec.n_objects if spec.model in OBJECT_MODELS else 0
    missing = missing_inputs(spec.model, spec.input_columns())
    model = build_model(spec.model, n_features, n_objects=n_objects, missing=missing, **spec.hparams)
    if spec.multiclass:
        model = multiclass.wrap(model, spec.multiclass)
    model = model.to(device)
    return model, adam(model.parameters(), float(spec.training["learning_rate"]), device)


def adam(params: Any, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam as the neural runs use it: fused on CUDA; elsewhere the multi-tensor (foreach) implementation,
    the same numbers as PyTorch's per-parameter loop (its CPU default) in fewer operator calls (0.6 against
    0.8 ms a step for the ETN's 27 parameter tensors on one thread)."""
    cuda = device.type == "cuda"
    return torch.optim.Adam(params, lr=lr, fused=cuda, foreach=not cuda)


def _loss_args(spec: RunSpec) -> dict[str, Any]:
    """Keyword arguments of `losses.total_loss` for the run's loss and data scope."""
    tcfg = spec.training
    return {
        "kind": spec.loss_kind,
        "disco_lambda": spec.disco_lambda,
        "data_scope": bool(tcfg["data_scope"]),
        "narrow": tuple(tcfg["narrow_window"]),
        "wide": tuple(tcfg["wide_window"]),
        "balance_classifier": spec.balance_classifier,
    }


def _eval_schedule(tcfg: Mapping[str, Any]) -> set[int]:
    """The epochs after which the validation pass runs (`eval_epochs` of the training section)."""
    return set(
        eval_epochs(
            int(tcfg["epochs"]),
            int(tcfg["eval_every_early"]),
            int(tcfg["eval_early_until"]),
            int(tcfg["eval_every_late"]),
        )
    )


def _train_epoch(
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    prep: _Prepared,
    epoch: int,
    batch: int,
    loss_args: Mapping[str, Any],
) -> float:
    """Train one epoch on the events the sampler draws for it.

    Args:
        model: The model, put in training mode here.
        optimiser: Its optimiser.
        prep: The prepared tensors and sampler.
        epoch: The epoch number (seeds the draw).
        batch: Batch size.
        loss_args: Keyword arguments of `losses.total_loss`.

    Returns:
        The mean training loss per event of the epoch.
    """
    device = prep.x.device
    model.train()
    order_np, w_np = prep.sampler(epoch)
    order = torch.from_numpy(order_np).to(device)
    w_epoch = torch.from_numpy(w_np.astype(np.float32)).to(device)
    total, seen = 0.0, 0
    for i in range(0, len(prep.sampler), batch):
        idx = order[i : i + batch]
        if len(idx) < 2:  # a lone last event: BatchNorm (ResNet) cannot train on it, and it is noise
            continue
        loss, _ = losses.total_loss(
            model(prep.x[idx]), prep.y[idx], w_epoch[i : i + batch], prep.m[idx], **loss_args
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


def _validate(
    model: torch.nn.Module,
    prep: _Prepared,
    data: Dataset,
    loss_args: Mapping[str, Any],
    n_bins: int,
    multiclass_phase: bool = False,
) -> tuple[float, float]:
    """Validation pass: the loss on the in-scope validation events and the significance on all of them.

    Only the events that can change the significance are scored: the in-scope ones (scored for the loss
    anyway), every validation signal event (the score bins and their mass windows come from the signal
    alone) and the background inside the windows' range (`metrics.significance_mass_range`); the other
    background events, which fall in no bin's window whatever their score, get a placeholder score. The
    significance is the one of scoring every validation event, at a quarter of the cost for the runs without
    DisCo.

    Args:
        model: The model (evaluated without gradients).
        prep: The prepared tensors.
        data: The run's events (mass, labels of the validation split).
        loss_args: Keyword arguments of `losses.total_loss`.
        n_bins: Number of score bins of the significance.
        multiclass_phase: The loss is the multiclass one (`multiclass.validation_loss`).

    Returns:
        The validation loss and the validation significance.
    """
    i = prep.val_idx
    score = np.zeros(len(data.y), dtype=np.float32)
    with torch.no_grad():
        in_scope = predict_neural(model, prep.x[i])
        if multiclass_phase:
            vloss = multiclass.validation_loss(model, prep, loss_args)
        else:
            vloss, _ = losses.total_loss(in_scope, prep.y[i], prep.w_val[i], prep.m[i], **loss_args)
        if data.true_mass is not None:  # a mass-scan strategy: the mean over its mass points
            return float(vloss), scan_validation_significance(model, prep, data, n_bins)
        score[i.cpu().numpy()] = in_scope.cpu().numpy()
        signal = prep.val_np & (data.y == 1)
        _score_into(score, model, prep, signal & ~prep.val_scope)
        lo, hi = metrics.significance_mass_range(
            score[signal], data.mass[signal], prep.eval_w[signal], n_bins
        )
        near = prep.val_np & (data.y == 0) & ~prep.val_scope & (data.mass >= lo) & (data.mass <= hi)
        _score_into(score, model, prep, near)
    v = prep.val_np
    significance = split_significance(score[v], data.mass[v], prep.eval_w[v], data.y[v], n_bins)
    return float(vloss), significance


def _score_into(score: np.ndarray, model: torch.nn.Module, prep: _Prepared, mask: np.ndarray) -> None:
    """Fill `score` at the events of `mask` with the model's scores."""
    idx = np.flatnonzero(mask)
    if idx.size:
        rows = torch.from_numpy(idx).to(prep.x.device)
        score[idx] = predict_neural(model, prep.x[rows]).cpu().numpy()


def _start_or_resume(
    resume_path: Path, key: str, model: torch.nn.Module, optimiser: torch.optim.Optimizer
) -> tuple[list[dict[str, float]], dict[str, Any], int]:
    """The bookkeeping to start from: a fresh one, or that of `resume_path` when it matches `key`.

    Args:
        resume_path: The resume file of a killed run (may be missing).
        key: The resume key of this run (`resume_key`).
        model: The model; a resumed state is loaded into it.
        optimiser: Its optimiser; likewise.

    Returns:
        The history so far, the best epoch so far (significance, epoch, state) and the first epoch to train.
    """
    history: list[dict[str, float]] = []
    best = {"significance": -math.inf, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    start_epoch = 1
    state = load_resume(resume_path, key)
    if state is not None:
        history, best, start_epoch = restore(state, model, optimiser)
        log.info("resuming from %s after epoch %d", resume_path, state["epoch"])
    return history, best, start_epoch


def train_neural(
    data: Dataset,
    spec: RunSpec,
    outdir: Path,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    resume_every: int | None = None,
) -> dict[str, Any]:
    """Train a neural model; resume from `outdir/resume.pt` if a previous run was killed.

    Args:
        data: All events of the run (every split).
        spec: The run: model, loss, hyper-parameters, training section, trial.
        outdir: The run's folder; `resume.pt` is written there after every `resume_every`-th epoch.
        progress: Show a progress bar.
        on_epoch_end: Called with the epoch number after each epoch (and its resume file, if one is due).
        resume_every: Epochs between resume files; None: the spec's training.resume_every, else 1 (each
            epoch). It does not change the result.

    Returns:
        The result: best state, normaliser, history, best epoch, best validation significance and the scores
        of all events (from the best state).
    """
    with flushed_denormals():
        if resume_every is None:
            resume_every = int(spec.training.get("resume_every", 1))
        return _train_neural(data, spec, outdir, progress, on_epoch_end, resume_every)


def _train_neural(
    data: Dataset,
    spec: RunSpec,
    outdir: Path,
    progress: bool,
    on_epoch_end: Callable[[int], None] | None,
    resume_every: int,
) -> dict[str, Any]:
    """`train_neural`'s body, with denormals flushed."""
    tcfg = spec.training
    torch.set_num_threads(int(tcfg["threads"]))
    device = pick_device(tcfg["device"])
    torch.manual_seed(spec.seed)
    prep = _prepare_data(data, spec, device)
    model, optimiser = _build_model_and_optimiser(spec, prep.x.shape[1], device)
    schedule = _eval_schedule(tcfg)
    loss_args = _loss_args(spec)
    resume_path = outdir / "resume.pt"
    key = resume_key(spec, data)
    history, best, start_epoch = _start_or_resume(resume_path, key, model, optimiser)

    batch = int(tcfg["batch_size"])
    log.info("%d training events in scope, %d per epoch", len(prep.sampler.idx), len(prep.sampler))
    n_epochs = int(tcfg["epochs"])
    bar = tqdm(
        range(start_epoch, n_epochs + 1),
        desc=f"{run_name(spec.model, spec.loss)} trial {spec.trial}",
        disable=not progress,
        initial=start_epoch - 1,
        total=n_epochs,
        mininterval=5,
    )
    # the epoch kept is one of the last phase: a two-phase run's model is the binary fine-tuned one (002)
    final_phase = classes.phase(n_epochs, spec.multiclass) if spec.multiclass else None
    for epoch in bar:
        t0 = time.perf_counter()
        phase = classes.phase(epoch, spec.multiclass) if spec.multiclass else None
        if phase == classes.MULTICLASS_PHASE:
            train_loss = multiclass.train_epoch(model, optimiser, prep, epoch, batch, loss_args)
        else:  # a binary run, or the binary phase of a two-phase run (BCE on the signal probability)
            args = {**loss_args, "kind": "bce"} if phase else loss_args
            train_loss = _train_epoch(model, optimiser, prep, epoch, batch, args)
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"{run_name(spec.model, spec.loss)} trial {spec.trial}: the training loss is {train_loss} at "
                f"epoch {epoch}: a NaN or infinite output, input or weight (a diverged model: lower "
                f"models.{spec.model}.learning_rate or training.learning_rate, or check the features)"
            )
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": math.nan,
            "val_significance": math.nan,
            "seconds": time.perf_counter() - t0,
            **({"phase": phase} if phase else {}),
        }
        if epoch in schedule:
            row["val_loss"], row["val_significance"] = _validate(
                model,
                prep,
                data,
                {**loss_args, "kind": "bce"} if phase == classes.BINARY_PHASE else loss_args,
                int(tcfg["significance_bins"]),
                multiclass_phase=phase == classes.MULTICLASS_PHASE,
            )
            if phase == final_phase and row["val_significance"] > best["significance"]:
                best = {
                    "significance": row["val_significance"],
                    "epoch": epoch,
                    "state": copy.deepcopy(model.state_dict()),
                }
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", z=f"{row['val_significance']:.3f}")
            log.info(
                "epoch %d: train loss %.5f, val loss %.5f, val significance %.4f",
                epoch,
                row["train_loss"],
                row["val_loss"],
                row["val_significance"],
            )
        history.append(row)
        if resume_epoch(epoch, resume_every):
            _save_resume(resume_path, model, optimiser, history, best, epoch, key)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    model.load_state_dict(best["state"])
    scores = predict_neural(model, prep.x).cpu().numpy()
    return {
        "state": best["state"],
        "normaliser": prep.norm,
        "history": history,
        "best_epoch": best["epoch"],
        "best_significance": best["significance"],
        "scores": scores,
    }


def _save_resume(path: Path, model, optimiser, history, best, epoch: int, key: str) -> None:
    """Everything needed to continue after `epoch`, written atomically."""
    with io.atomic_path(path) as tmp:
        torch.save(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "rng": rng_states(),
                "history": history,
                "best": best,
                "epoch": epoch,
                "resume_key": key,
            },
            tmp,
        )


#: Library files whose code a training result depends on: a resume.pt written by other code is not resumed.
_CODE_FILES = (
    "learn/training.py",
    "learn/classifier.py",
    "learn/losses.py",
    "metrics.py",
    "learn/pairsums.py",
    "data/features.py",
    "data/objects.py",
    "learn/boosted.py",
    "learn/classes.py",
    "learn/multiclass.py",
)


def code_version() -> str:
    """Hash of the training code (this module, losses, metrics, models and the attention kernel's source) and
    torch's version."""
    root = Path(__file__).parents[1]  # src/hzg
    files = (
        [root / name for name in _CODE_FILES]
        + sorted((root / "learn/models").rglob("*.py"))
        + sorted((root / "learn/models").rglob("*.cpp"))
    )
    digest = hashlib.sha256(torch.__version__.encode())
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def inputs_hash(data: Dataset) -> str:
    """Hash of the training inputs of one trial: features, labels, weights, mass, split and event keys."""
    digest = hashlib.sha256(json.dumps(data.features).encode())
    for array in (
        data.x,
        data.y,
        data.weight,
        data.mass,
        data.split,
        *(data.keys[c].to_numpy() for c in KEY_COLUMNS),
    ):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def resume_key(spec: RunSpec, data: Dataset) -> str:
    """What a resume.pt must have been written for: the run's spec, its input data and the code."""
    return config_hash({"spec": spec.describe(), "inputs": inputs_hash(data), "code": code_version()})


def load_resume(path: Path, key: str) -> dict[str, Any] | None:
    """The saved state of a killed run at `path`, on the CPU; None (with a log line, so training starts fresh)
    where there is none, it is unreadable or corrupt, or it was written for other inputs, config or code."""
    if not path.exists():
        return None
    try:
        state = checkpoints.load(path)
    except checkpoints.CheckpointError as err:
        log.warning("ignoring %s, training from scratch: %s", path, err)
        return None
    if state.get("resume_key") != key:
        log.warning(
            "ignoring %s, training from scratch: it was written for other inputs, configuration or code "
            "(key %s, expected %s)",
            path,
            state.get("resume_key"),
            key,
        )
        return None
    return state


def restore(
    state: Mapping[str, Any], model: torch.nn.Module, optimiser: torch.optim.Optimizer
) -> tuple[list, dict, int]:
    """Put a loaded resume state (CPU tensors) into `model` and `optimiser` on whatever device they are,
    restore the
    generators; return the history, the best so far and the first epoch still to train."""
    model.load_state_dict(state["model"])  # copied onto the model's device
    optimiser.load_state_dict(state["optimiser"])  # its state moved to its parameters' device
    set_rng_states(state["rng"])
    return state["history"], state["best"], int(state["epoch"]) + 1


def rng_states() -> dict[str, Any]:
    """torch's CPU generator state and, where CUDA is in use, the state of every CUDA device's generator."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what `rng_states` saved; the states are byte tensors on the CPU whatever device trains."""
    torch.set_rng_state(states["cpu"].cpu())
    cuda = list(states["cuda"])
    n_devices = torch.cuda.device_count() if cuda and torch.cuda.is_available() else 0
    if len(cuda) > n_devices:
        log.warning(
            "resume.pt holds %d CUDA generator states and %d CUDA devices are visible: the others are not "
            "restored (random numbers differ from an uninterrupted run)",
            len(cuda),
            n_devices,
        )
    for index, state in enumerate(cuda[:n_devices]):
        torch.cuda.set_rng_state(state.cpu(), index)


#: a tree model's cap on its training events (`models.bdt.max_train_events`: absent or null, all), drawn
#: uniformly without replacement, seeded by the run's seed, their weights kept. A tree's cost grows with its
#: training events, a network's (events_per_epoch) does not: this keeps the BDT's cost fixed as the MC grows.
MAX_TRAIN_EVENTS = boosted.MAX_TRAIN_EVENTS


def capped_training_events(selected: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """The mask `selected` thinned to at most `cap` events, drawn uniformly without replacement (numpy's
    default_rng(seed)); unchanged when cap is None or not exceeded. Used for the trees' training events
    (`MAX_TRAIN_EVENTS`) and the events of the networks' validation loss
    (`training.validation_loss_events`)."""
    idx = np.flatnonzero(selected)
    if cap is None or idx.size <= int(cap):
        return selected
    if int(cap) < 2:
        raise ValueError(f"a cap on the events must be at least 2, got {cap}")
    keep = np.random.default_rng(seed).choice(idx, size=int(cap), replace=False)
    out = np.zeros_like(selected, dtype=bool)
    out[keep] = True
    return out


def train_tree(data: Dataset, spec: RunSpec) -> dict[str, Any]:
    """Train XGBoost or the BDT on the training split (BCE only: the loss trees support)."""
    if spec.loss_kind != "bce" or spec.disco_lambda > 0:
        raise ValueError(
            f"model {spec.model!r} supports only the BCE loss, not {spec.loss!r} (config key 'runs')"
        )
    tcfg = spec.training
    hparams = dict(spec.hparams)
    train_sel = capped_training_events(
        (data.split == TRAIN) & training_scope(data.mass, data.y, 0.0, tcfg),
        hparams.pop(MAX_TRAIN_EVENTS, None),
        spec.seed,
    )
    w = balanced_weights(data.training_weight[train_sel], data.y[train_sel])
    eval_w = metrics.split_scaled_weights(data.weight, data.y, data.split)
    n_bins = int(tcfg["significance_bins"])
    # the staged scores feed the training loss (train_sel) and the validation significance (validation split)
    # only: the other events (test split, training events out of scope) are not scored for them
    needed = train_sel | (data.split == VALIDATION)
    if spec.model == "xgboost":
        model = boosted.fit_xgboost(
            data.x[train_sel],
            data.y[train_sel],
            w,
            hparams,
            spec.seed,
            int(tcfg["threads"]),
            tcfg["device"],
        )
        n_stages = model.n_estimators
        staged = {
            k: _on_events(lambda x, k=k: boosted.xgboost_scores(model, x, k), data.x, needed)
            for k in eval_epochs(n_stages, 5, 50, 10)
        }
        scores = boosted.xgboost_scores(model, data.x)
    else:
        model = boosted.fit_bdt(data.x[train_sel], data.y[train_sel], w, hparams, spec.seed)
        n_stages = len(model[-1].estimators_)
        # one pass over the trees: the final scores of every event, the staged ones of the needed events
        scores, staged_needed = boosted.bdt_scores_and_staged(
            model, data.x, needed, eval_epochs(n_stages, 5, 50, 10)
        )
        staged = {k: _scattered(v, needed) for k, v in staged_needed.items()}
    history = [
        {
            "epoch": k,
            "train_loss": _weighted_bce(s[train_sel], data.y[train_sel], w),
            "val_loss": math.nan,
            "val_significance": validation_significance(s, data, eval_w, n_bins),
            "seconds": math.nan,
        }
        for k, s in sorted(staged.items())
    ]
    final = validation_significance(scores, data, eval_w, n_bins)
    log.info("%s: %d stages, validation significance %.4f", spec.model, n_stages, final)
    return {
        "model": model,
        "history": history,
        "best_epoch": n_stages,
        "best_significance": final,
        "scores": scores,
    }


def _scattered(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A full-length score array holding `values` at the events of `mask` and 0 elsewhere (never read)."""
    out = np.zeros(mask.size, dtype=np.asarray(values).dtype)
    out[mask] = values
    return out


def _on_events(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`predict` applied to the events of `mask` only, scattered into a full-length array (`_scattered`)."""
    return _scattered(predict(x[mask]), mask)


def _weighted_bce(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(score, 1e-7, 1 - 1e-7)
    return float(np.sum(-w * (y * np.log(p) + (1 - y) * np.log(1 - p))) / np.sum(w))


def run(
    feature_paths: Sequence[str | Path],
    spec: RunSpec,
    outdir: str | Path,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    resume_every: int | None = None,
) -> dict[str, Path]:
    """Train one (model, loss, trial) and write checkpoint.pt, history.csv and scores.parquet; a neural model
    saves its state every `resume_every` epochs (`train_neural`)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    features = spec.input_columns()
    if spec.strategy != STANDARD:
        if spec.model in OBJECT_MODELS:
            raise ValueError(
                f"model {spec.model!r} reads objects, which a mass-scan strategy ({spec.strategy!r}) "
                "does not support (its extra input would follow the object block)"
            )
        spec = scan_spec(spec)
        data = scan_dataset(feature_paths, features, spec)
        features = data.features
    else:
        data = load_dataset(feature_paths, features, spec.trial)
    if spec.multiclass:
        if spec.model in TREE_MODELS:
            raise ValueError(
                f"model {spec.model!r} trains binary only, not the multiclass loss {spec.loss!r}"
            )
        index = classes.class_index(data.keys["sample_id"].to_numpy(), spec.multiclass)
        data = dataclasses.replace(data, class_index=index)
    checkpoint: dict[str, Any] = {
        "model": spec.model,
        "loss": spec.loss,
        "features": features,
        "trial": spec.trial,
        "hparams": spec.hparams,
        "config_hash": config_hash(spec.describe()),
        "spec": spec.describe(),
    }
    if spec.model in TREE_MODELS:
        result = train_tree(data, spec)
        checkpoint.update(kind=spec.model, blob=boosted.to_bytes(result["model"]), normaliser=None)
    else:
        result = train_neural(data, spec, outdir, progress, on_epoch_end, resume_every)
        checkpoint.update(
            kind="neural", state_dict=result["state"], normaliser=result["normaliser"].to_dict()
        )
        if spec.multiclass:  # the classifier rebuilds the C-class network (hzg.learn.multiclass)
            checkpoint.update(multiclass=spec.multiclass)
    checkpoint.update(best_epoch=result["best_epoch"], best_val_significance=result["best_significance"])
    if spec.strategy != STANDARD:
        checkpoint.update(strategy=spec.strategy, mass_scan=spec.mass_scan)
        data, result = nominal_view(checkpoint, result, data)
    if spec.multiclass and spec.multiclass.get("training_only"):  # the scores of `samples`, as every run's
        keep = classes.analysis_events(data.keys["sample_id"].to_numpy(), spec.multiclass)
        data, result = subset(data, keep), {**result, "scores": np.asarray(result["scores"])[keep]}
    paths = write_outputs(outdir, checkpoint, result, data)
    log.info(
        "%s_%s trial %d: best epoch %d, validation significance %.4f",
        spec.model,
        spec.loss,
        spec.trial,
        result["best_epoch"],
        result["best_significance"],
    )
    return paths


def subset(data: Dataset, keep: np.ndarray) -> Dataset:
    """The events of `data` where `keep` is true."""
    index = np.flatnonzero(keep)

    def part(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[index]

    return dataclasses.replace(
        data,
        x=data.x[index],
        y=data.y[index],
        weight=data.weight[index],
        mass=data.mass[index],
        split=data.split[index],
        keys=data.keys.iloc[index].reset_index(drop=True),
        train_weight=part(data.train_weight),
        true_mass=part(data.true_mass),
        class_index=part(data.class_index),
    )


def write_outputs(
    outdir: Path, checkpoint: Mapping[str, Any], result: Mapping[str, Any], data: Dataset
) -> dict[str, Path]:
    """Write a trained run's checkpoint.pt, history.csv and scores.parquet (atomically) and drop its
    resume.pt."""
    paths = {
        "checkpoint": outdir / "checkpoint.pt",
        "history": outdir / "history.csv",
        "scores": outdir / "scores.parquet",
    }
    with io.atomic_path(paths["checkpoint"]) as tmp:
        torch.save(dict(checkpoint), tmp)
    with io.atomic_path(paths["history"]) as tmp:
        pd.DataFrame(result["history"]).to_csv(tmp, index=False)
    scores = data.keys.copy()
    scores["split"] = data.split
    scores["score"] = result["scores"].astype(np.float64)
    scores["mllg"] = data.mass
    scores["weight"] = data.weight
    scores["is_signal"] = data.y.astype(np.int8)
    io.write_parquet(paths["scores"], scores)
    (outdir / "resume.pt").unlink(missing_ok=True)
    return paths


# ---------------------------------------------------------------- mass-scan strategies (hzg.learn.strategies)
def scan_spec(spec: RunSpec) -> RunSpec:
    """A mass-scan run trains on the scan's mllg range (the muNN bins' span) in place of the narrow window."""
    if not spec.mass_scan:
        raise ValueError(
            f"run {run_name(spec.model, spec.loss)}: strategy {spec.strategy!r} needs `mass_scan`"
        )
    lo_hi = strategies.training_range(spec.mass_scan["edges"])
    return dataclasses.replace(spec, training={**spec.training, "narrow_window": lo_hi})


def scan_dataset(paths: Sequence[str | Path], base_features: Sequence[str], spec: RunSpec) -> Dataset:
    """The events of a mass-scan run: signal of every mass point and background, the strategy's extra input
    (mllg, or the mass hypothesis: generated mass for signal, a seeded random mass point for background) and
    its training weights, balanced within each split (so the training split is balanced exactly)."""
    scan = spec.mass_scan
    features = strategies.input_features(base_features, spec.strategy)
    data = load_dataset(paths, [f for f in features if f != strategies.HYPOTHESIS_FEATURE], spec.trial)
    sample_masses = {feat.sample_id(s): float(m) for s, m in scan["sample_masses"].items()}
    true_mass = strategies.true_masses(
        data.keys["sample_id"].to_numpy(), data.y, sample_masses, scan["nominal_mass"]
    )
    x, masses = data.x, [float(m) for m in scan["masses"]]
    train_weight = np.zeros(len(data.y))
    for split in np.unique(data.split):
        sel = data.split == split
        if spec.strategy == "munn":
            train_weight[sel] = strategies.balanced_per_mass_bin_weights(
                data.mass[sel], data.y[sel], data.weight[sel], scan["edges"]
            )
        else:
            train_weight[sel] = strategies.balanced_per_mass_point_weights(
                data.y[sel], data.weight[sel], true_mass[sel], masses
            )
    if spec.strategy == "pnn":
        hypothesis = true_mass.copy()
        bkg = data.y == 0
        hypothesis[bkg] = strategies.pnn_background_masses(int(bkg.sum()), masses, spec.seed)
        x = np.column_stack([x, hypothesis.astype(np.float32)])
    log.info(
        "%s: %d signal events at %d mass points, %d background; inputs %s",
        spec.strategy,
        int(data.y.sum()),
        len(masses),
        int((data.y == 0).sum()),
        features,
    )
    return dataclasses.replace(data, x=x, features=features, train_weight=train_weight, true_mass=true_mass)


def scan_validation_significance(
    model: torch.nn.Module, prep: _Prepared, data: Dataset, n_bins: int
) -> float:
    """Model selection of a mass-scan run: the mean over its mass points of the validation significance of
    that point's signal against all background (a pNN scored with the point as its hypothesis)."""
    masses = sorted({float(m) for m in data.true_mass[np.isfinite(data.true_mass)]})
    hyp = (
        data.features.index(strategies.HYPOTHESIS_FEATURE)
        if strategies.HYPOTHESIS_FEATURE in data.features
        else None
    )
    v, bkg = prep.val_np, prep.val_np & (data.y == 0)
    z = []
    for m in masses:
        sel = bkg | (v & np.isclose(data.true_mass, m))
        x = prep.x[torch.from_numpy(np.flatnonzero(sel)).to(prep.x.device)]
        if hyp is not None:
            x = x.clone()
            x[:, hyp] = float((m - prep.norm.mean[hyp]) / prep.norm.std[hyp])
        score = predict_neural(model, x).cpu().numpy()
        z.append(split_significance(score, data.mass[sel], prep.eval_w[sel], data.y[sel], n_bins))
    return float(np.mean(z))


def nominal_view(
    checkpoint: Mapping[str, Any], result: Mapping[str, Any], data: Dataset
) -> tuple[Dataset, dict[str, Any]]:
    """The events and scores a mass-scan run writes to scores.parquet: the nominal mass point's signal and the
    background, a pNN scored with the nominal mass as its hypothesis, as every run's scores (Table I, ROC)."""
    from hzg.learn.classifier import Classifier

    nominal = float(checkpoint["mass_scan"]["nominal_mass"])
    keep = (data.y == 0) | np.isclose(data.true_mass, nominal)
    scores = np.asarray(result["scores"])[keep]
    if strategies.HYPOTHESIS_FEATURE in data.features:
        frame = pd.DataFrame(data.x[keep], columns=data.features)
        scores = Classifier(dict(checkpoint)).predict(frame, hypothesis=nominal)
    view = dataclasses.replace(subset(data, keep), train_weight=None)
    return view, {**result, "scores": scores}
