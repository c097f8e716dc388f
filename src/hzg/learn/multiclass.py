"""Multiclass and two-phase training (seed thesis 002, Secs. 2.1.4, 2.6, 2.7): the C-class network, its loss,
its epoch draw and its phases. The classes and their weights: `hzg.learn.classes`.

* Network: any model of `hzg.learn.models` with its last Linear(d, 1) replaced by Linear(d, C)
  (`MulticlassNet`); the rest of the model is unchanged. It keeps the binary models' interface: `logits(x)` is
  the binary logit and `forward(x)` the signal probability (batch,), so validation, scores, friend trees, fits
  and interpretation need nothing new; `class_logits(x)` gives the C logits.
* Binary score (Table I, friend trees, fits): the probability of the signal classes, sum_{c in S} softmax_c =
  sigmoid(LLR), LLR = logsumexp_{c in S} z_c - logsumexp_{c in B} z_c, the log-likelihood ratio of the signal
  classes to the background classes (up to the constant log of the training's class priors, the same for
  every event). The two are one number: the score is the probability, its logit the LLR.
* Loss of the multiclass phase: the weighted cross-entropy, eq. (2.20)-(2.22) of 002 with event and class
  weights, -sum_i w_i alpha_{t_i} log softmax(z_i)_{t_i} / sum_i w_i alpha_{t_i}, on the narrow window with
  data scope; DisCo (lambda > 0) on the binary score of the background as for the binary runs.
* The epoch draw (`ClassEpochSampler`, the multiclass `training.EpochSampler`): events_per_epoch N draws N/C
  events of every class by |w|, each carrying sign(w) sum|w| / sum(w), so every class carries the same
  expected weight: 002's class weights (`classes.class_weights`) times the event weights, realised by the
  draw; the loss then gets these weights with alpha = 1. Null: every event once, with
  `classes.class_balanced_weights` (the same class weights, exactly).
* Two-phase (002, Sec. 2.7): after the multiclass phase the same network, weights and optimiser go on with
  BCE on the signal probability above: the signal classes against the background classes (ggH and VBF
  against Z gamma and FSR in config/methods.yaml; VBF is signal by its kind, though Table I's signal is that
  of `samples`, ggH), drawn by `training.EpochSampler` as a binary run. The head stays C-wide: the binary
  logit is the LLR, so no new parameters enter. The epoch kept is the best validation significance of the
  binary phase: the run's model is the fine-tuned one (the multiclass phase's epochs are validated and drawn
  in the training curves, but a two-phase run that kept one of them would be the multiclass run again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hzg.learn import classes as cls_mod
from hzg.learn import losses
from hzg.learn.draws import class_draw, draw_classes


def _output_layer(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The last registered Linear layer with one output of `model`: (its parent, its name there, it)."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear) and child.out_features == 1:
                found = (parent, name, child)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no Linear(d, 1) output layer")
    return found


def log_likelihood_ratio(class_logits: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """logsumexp of the signal classes' logits minus that of the background classes' (batch,)."""
    neg = torch.finfo(class_logits.dtype).min
    sig = torch.logsumexp(class_logits.masked_fill(~signal, neg), dim=-1)
    bkg = torch.logsumexp(class_logits.masked_fill(signal, neg), dim=-1)
    return sig - bkg


class MulticlassNet(nn.Module):
    """A model of `hzg.learn.models` with C outputs (module text); `signal` marks the signal classes."""

    def __init__(self, base: nn.Module, signal: Sequence[bool]) -> None:
        super().__init__()
        signal = [bool(s) for s in signal]
        if len(signal) < 2 or all(signal) or not any(signal):
            raise ValueError(f"a multiclass network needs signal and background classes, got {signal}")
        parent, name, old = _output_layer(base)
        setattr(parent, name, nn.Linear(old.in_features, len(signal), bias=old.bias is not None))
        self.base = base
        self.register_buffer("signal", torch.tensor(signal, dtype=torch.bool))

    @property
    def n_classes(self) -> int:
        return int(self.signal.numel())

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The C logits (batch, C)."""
        return self.base.logits(x).reshape(len(x), self.n_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The binary logit: the log-likelihood ratio of the signal classes (batch,)."""
        return log_likelihood_ratio(self.class_logits(x), self.signal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The signal probability (batch,): the sum of the signal classes' softmax = sigmoid(LLR)."""
        return torch.sigmoid(self.logits(x))


def wrap(model: nn.Module, spec: Mapping[str, Any]) -> MulticlassNet:
    """`model` as the multiclass network of a run's (or checkpoint's) `multiclass` spec."""
    return MulticlassNet(model, cls_mod.signal_mask(spec))


def unwrap(model: nn.Module) -> nn.Module:
    """The binary model inside a MulticlassNet (its layers, attention and tokens), else `model`."""
    return model.base if isinstance(model, MulticlassNet) else model


def cross_entropy(
    class_logits: torch.Tensor,
    target: torch.Tensor,
    w: torch.Tensor,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """-sum_i w_i a_{t_i} log softmax(z_i)_{t_i} / sum_i w_i a_{t_i} (a = 1 without class weights); 0 where
    the weights sum to 0."""
    logp = torch.log_softmax(class_logits, dim=-1)
    t = target.reshape(-1).long()
    ww = w.reshape(-1).to(logp.dtype)
    if class_weight is not None:
        ww = ww * class_weight.to(logp.dtype)[t]
    nll = -logp.gather(1, t[:, None])[:, 0]
    return losses._weighted_mean(nll, ww)


def total_loss(
    class_logits: torch.Tensor,
    target: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    mass: torch.Tensor,
    signal: torch.Tensor,
    disco_lambda: float,
    data_scope: bool,
    narrow: tuple[float, float],
    wide: tuple[float, float],
    **_: Any,
) -> torch.Tensor:
    """The multiclass phase's loss: `cross_entropy` (narrow window with data scope) + lambda DisCo(mass,
    signal probability) on the background (wide window), as `losses.total_loss_by_weight` (weights zeroed
    outside the scope, no host synchronisation)."""
    y, w, mass = y.reshape(-1), w.reshape(-1), mass.reshape(-1)
    cw = w * losses.classifier_mask(mass, narrow).to(w.dtype) if data_scope else w
    loss = cross_entropy(class_logits, target, cw)
    if disco_lambda > 0:
        prob = torch.sigmoid(log_likelihood_ratio(class_logits, signal))
        dmask = losses.disco_mask(mass, y, wide) if data_scope else (y == 0)
        loss = loss + disco_lambda * losses.distance_correlation(mass, prob, w * dmask.to(w.dtype))
    return loss


class ClassEpochSampler:
    """The events of each multiclass epoch and their weights (module text), a function of (seed, epoch)."""

    def __init__(
        self,
        idx: np.ndarray,
        cls: np.ndarray,
        weight: np.ndarray,
        n_classes: int,
        events_per_epoch: int | None,
        seed: int,
    ) -> None:
        self.idx = np.asarray(idx, np.int64)
        self.seed = int(seed)
        c = np.asarray(cls)[self.idx]
        w = np.asarray(weight, np.float64)[self.idx]
        self.events_per_epoch = None if events_per_epoch is None else int(events_per_epoch)
        if self.events_per_epoch is None:
            self.weight = cls_mod.class_balanced_weights(w, c, n_classes)
            return
        if self.events_per_epoch < n_classes:
            raise ValueError(
                f"events_per_epoch {events_per_epoch} is below the number of classes {n_classes}"
            )
        self.n_draw = min(self.events_per_epoch, len(self.idx))
        self.classes = [
            class_draw(
                np.flatnonzero(c == k),
                w,
                self.n_draw // n_classes + (1 if k < self.n_draw % n_classes else 0),
                k,
            )
            for k in range(n_classes)
        ]

    def __len__(self) -> int:
        return len(self.idx) if self.events_per_epoch is None else self.n_draw

    def __call__(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Event indices (into the dataset) of epoch `epoch`, in training order, and their weights."""
        rng = np.random.default_rng([self.seed, epoch, 2002])
        if self.events_per_epoch is None:
            order = rng.permutation(len(self.idx))
            return self.idx[order], self.weight[order]
        picks, weights = draw_classes(self.classes, rng, self.n_draw)
        return self.idx[picks], weights


class Prepared:
    """What the multiclass phase adds to `training._Prepared`: class targets, its draw, its validation
    weights and the signal mask, on the training device."""

    def __init__(
        self,
        data: Any,
        spec: Mapping[str, Any],
        train_sel: np.ndarray,
        val_sel: np.ndarray,
        events_per_epoch: int | None,
        seed: int,
        device: torch.device,
    ) -> None:
        n_classes = len(spec["classes"])
        cls = data.class_index
        self.target = torch.from_numpy(cls).to(device)
        self.signal = torch.tensor(cls_mod.signal_mask(spec), dtype=torch.bool, device=device)
        self.sampler = ClassEpochSampler(
            np.flatnonzero(train_sel), cls, data.training_weight, n_classes, events_per_epoch, seed
        )
        w_val = np.zeros(len(cls))
        w_val[val_sel] = cls_mod.class_balanced_weights(
            data.training_weight[val_sel], cls[val_sel], n_classes
        )
        self.w_val = torch.from_numpy(w_val.astype(np.float32)).to(device)


def train_epoch(
    model: MulticlassNet, optimiser: torch.optim.Optimizer, prep: Any, epoch: int, batch: int, loss_args: Any
) -> float:
    """One multiclass epoch (as `training._train_epoch`); the mean training loss per event."""
    device, multi = prep.x.device, prep.multi
    model.train()
    order_np, w_np = multi.sampler(epoch)
    order = torch.from_numpy(order_np).to(device)
    w_epoch = torch.from_numpy(w_np.astype(np.float32)).to(device)
    total, seen = 0.0, 0
    for i in range(0, len(multi.sampler), batch):
        idx = order[i : i + batch]
        if len(idx) < 2:
            continue
        loss = total_loss(
            model.class_logits(prep.x[idx]),
            multi.target[idx],
            prep.y[idx],
            w_epoch[i : i + batch],
            prep.m[idx],
            multi.signal,
            **loss_args,
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def validation_loss(model: MulticlassNet, prep: Any, loss_args: Any) -> float:
    """The multiclass loss on the in-scope validation events (class-balanced true weights)."""
    model.eval()
    i, multi = prep.val_idx, prep.multi
    if len(i) == 0:
        return 0.0
    z = torch.cat([model.class_logits(prep.x[i[j : j + 65536]]) for j in range(0, len(i), 65536)])
    loss = total_loss(z, multi.target[i], prep.y[i], multi.w_val[i], prep.m[i], multi.signal, **loss_args)
    return float(loss)
