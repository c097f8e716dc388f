"""Several trainings of one neural model as one batched ensemble, for a GPU that one small model cannot fill.

The K members (the trials of a run) keep their own parameters, initialisation, training events, batches,
weights, Adam state and model selection; they differ from K separate `hzg.training.train_neural` runs only in
how the work is laid out: the parameters are stacked (`torch.func.stack_module_state`), one forward pass of
all members is `torch.func.vmap` over `torch.func.functional_call` (randomness "different": every member draws
its own dropout masks), the members' losses are summed (member k's gradient is that of its own loss alone),
and one Adam (fused on CUDA) steps all stacked parameters. Data stay on the device for the whole run: every
member's normalised inputs are moved there once, and each epoch's event order and weights once per epoch (no
per-batch host transfer).

Equivalence with separate runs (tests/test_ensemble.py): with the same seeds the members start from the same
weights and see the same batches; without dropout their losses agree with the separate runs' to float rounding
(the dropout masks are drawn differently, so with dropout they agree only in distribution). Members whose
epochs have different numbers of events (`events_per_epoch: null` and splits of different size) are padded
with weight-0 events, which changes neither the weighted classifier mean nor DisCo; where a member has no
event at all in a step, its parameters and Adam moments are put back after the step, so only its step counter
(Adam's bias correction) runs one ahead of a separate run's.

Options for the GPU: `precision="bf16"` runs the forward pass under `torch.autocast(bfloat16)` (the losses in
float32, DisCo in float64 as always), `compile=True` wraps the vmapped forward in `torch.compile`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hzg import metrics
from hzg.data import objects
from hzg.learn import losses
from hzg.learn import training as tr

log = logging.getLogger(__name__)


class StackedModels(nn.Module):
    """K models of one architecture with stacked parameters; forward maps (K, B, F) to
    probabilities (K, B)."""

    def __init__(self, models: Sequence[nn.Module], compile: bool = False) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        params, buffers = torch.func.stack_module_state(list(models))
        self.k = len(models)
        self.names = list(params)
        self.params = nn.ParameterList([nn.Parameter(params[name]) for name in self.names])
        self.buffer_names = list(buffers)
        # the keys of one model's state_dict: its non-persistent buffers (hzg.learn.models.missing) are
        # stacked for the forward pass but are no part of a member's state
        self.state_keys = set(models[0].state_dict())
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", buffers[name])
        base = copy.deepcopy(models[0]).to("meta")  # the architecture only; its own weights are never used
        self._base = [
            base
        ]  # not a submodule: its (meta) parameters stay out of parameters() and state_dict()

        def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self._base[0], (p, b), (x,))

        self._vmapped = torch.func.vmap(one, randomness="different")
        self._forward = torch.compile(self._vmapped) if compile else self._vmapped

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(zip(self.names, self.params))
        buffers = {name: getattr(self, f"buffer{i}") for i, name in enumerate(self.buffer_names)}
        return params, buffers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._base[0].train(self.training)
        params, buffers = self._state()
        return self._forward(params, buffers, x)

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's state_dict, as that of one model (detached copies)."""
        params, buffers = self._state()
        return {
            name: t[k].detach().clone()
            for name, t in {**params, **buffers}.items()
            if name in self.state_keys
        }


def _stack(
    arrays: Sequence[np.ndarray], dtype: torch.dtype, device: torch.device, pad: Any = 0
) -> torch.Tensor:
    """Arrays of different lengths as one (K, max length, ...) tensor on the device, padded with `pad`."""
    n = max(len(a) for a in arrays)
    out = np.full((len(arrays), n, *arrays[0].shape[1:]), pad, dtype=arrays[0].dtype)
    for k, a in enumerate(arrays):
        out[k, : len(a)] = a
    return torch.from_numpy(out).to(device=device, dtype=dtype)


def train_neural_ensemble(
    datasets: Sequence[tr.Dataset],
    specs: Sequence[tr.RunSpec],
    precision: str = "fp32",
    compile: bool = False,
    progress_every: int = 0,
) -> list[dict[str, Any]]:
    """Train the runs `specs` (one model and loss, K trials) with their datasets as one ensemble.

    Returns one result per member in the format of `hzg.training.train_neural` (best state, normaliser,
    history, best epoch and significance, scores of all events). Not resumable: a killed ensemble starts
    again.
    """
    if len(datasets) != len(specs) or not specs:
        raise ValueError("train_neural_ensemble needs one dataset per spec, and at least one")
    first = specs[0]
    for spec in specs[1:]:
        same = (spec.model, spec.loss_kind, spec.disco_lambda, spec.hparams, spec.training) == (
            first.model,
            first.loss_kind,
            first.disco_lambda,
            first.hparams,
            first.training,
        )
        if not same:
            raise ValueError(
                "an ensemble trains one model with one loss and one training config; "
                f"{spec.describe()} differs from {first.describe()}"
            )
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    from hzg.learn.models import build_model, missing_inputs

    tcfg = first.training
    torch.set_num_threads(int(tcfg["threads"]))
    device = tr.pick_device(tcfg["device"])
    k_members = len(specs)
    members = []
    for data, spec in zip(datasets, specs):
        scope = tr.training_scope(data.mass, data.y, spec.disco_lambda, tcfg)
        train_sel, val_sel = (data.split == 0) & scope, (data.split == 1) & scope
        norm = tr.fit_normaliser(data.x[train_sel], data.features, spec.model)
        w_val = np.zeros(len(data.y))
        w_val[val_sel] = tr.balanced_weights(data.weight[val_sel], data.y[val_sel])
        members.append(
            {
                "data": data,
                "norm": norm,
                "val_sel": val_sel,
                "sampler": tr.epoch_sampler(np.flatnonzero(train_sel), data, data.weight, spec),
                "eval_w": metrics.split_scaled_weights(data.weight, data.y, data.split),
                "w_val": w_val,
            }
        )
    # Everything on the device once. Row n_k of member k (past its events) is a padding event:
    # weight 0, mass 0.
    x = _stack([m["norm"](d.x) for m, d in zip(members, datasets)], torch.float32, device)
    y = _stack([d.y for d in datasets], torch.float32, device)
    mass = _stack([d.mass.astype(np.float32) for d in datasets], torch.float32, device)
    n_events = [len(d.y) for d in datasets]

    n_objects = objects.count_objects(datasets[0].features)
    missing = missing_inputs(first.model, datasets[0].features)
    models = []
    for spec in specs:
        torch.manual_seed(spec.seed)  # as train_neural: the same initial weights as a separate run
        models.append(
            build_model(spec.model, x.shape[2], n_objects=n_objects, missing=missing, **spec.hparams)
        )
    torch.manual_seed(first.seed)
    ensemble = StackedModels(models, compile=compile).to(device)
    optimiser = tr.adam(ensemble.parameters(), float(tcfg["learning_rate"]), device)
    loss_args = {
        "kind": first.loss_kind,
        "disco_lambda": first.disco_lambda,
        "data_scope": bool(tcfg["data_scope"]),
        "narrow": tuple(tcfg["narrow_window"]),
        "wide": tuple(tcfg["wide_window"]),
        "balance_classifier": first.balance_classifier,
    }
    n_epochs, batch = int(tcfg["epochs"]), int(tcfg["batch_size"])
    schedule = set(
        tr.eval_epochs(
            n_epochs,
            int(tcfg["eval_every_early"]),
            int(tcfg["eval_early_until"]),
            int(tcfg["eval_every_late"]),
        )
    )
    histories: list[list[dict[str, float]]] = [[] for _ in specs]
    best = [
        {"significance": -math.inf, "epoch": 0, "state": ensemble.member_state(k)} for k in range(k_members)
    ]
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if precision == "bf16"
        else contextlib.nullcontext
    )
    rows = torch.arange(k_members, device=device)[:, None]

    for epoch in range(1, n_epochs + 1):
        t0 = time.perf_counter()
        ensemble.train()
        draws = [m["sampler"](epoch) for m in members]
        lengths = [len(order) for order, _ in draws]
        # padding rows point at event n_k (a padding row of x) with weight 0
        order = _stack([o for o, _ in draws], torch.int64, device, pad=-1)
        order = torch.where(order < 0, torch.tensor(n_events, device=device)[:, None], order)
        w_epoch = _stack([w.astype(np.float32) for _, w in draws], torch.float32, device)
        x_pad = torch.cat((x, x.new_zeros(k_members, 1, x.shape[2])), dim=1)
        y_pad = torch.cat((y, y.new_zeros(k_members, 1)), dim=1)
        m_pad = torch.cat((mass, mass.new_zeros(k_members, 1)), dim=1)
        totals, seen = torch.zeros(k_members, dtype=torch.float64, device=device), np.zeros(k_members)
        for i in range(0, max(lengths), batch):
            idx = order[:, i : i + batch]
            n_real = np.clip(np.array(lengths) - i, 0, idx.shape[1])
            active = n_real >= 2  # as train_neural: a lone last event is skipped
            xb = x_pad[rows, idx]
            with autocast():
                out = ensemble(xb).float()
            member_losses = []
            for k in range(k_members):
                if active[k]:
                    loss_k = losses.total_loss_by_weight(
                        out[k], y_pad[k, idx[k]], w_epoch[k, i : i + batch], m_pad[k, idx[k]], **loss_args
                    )
                else:
                    loss_k = out[k].sum() * 0.0
                member_losses.append(loss_k)
            stacked = torch.stack(member_losses)
            saved = None
            if not active.all():
                saved = _save_members(ensemble, optimiser, np.flatnonzero(~active))
            optimiser.zero_grad(set_to_none=True)
            stacked.sum().backward()
            optimiser.step()
            if saved is not None:
                _restore_members(saved)
            totals += stacked.detach().double() * torch.from_numpy(n_real * active).to(device)
            seen += n_real * active
        train_loss = (totals.cpu().numpy() / np.maximum(seen, 1)).tolist()
        validation = (
            _validate(ensemble, members, x, y, mass, loss_args, int(tcfg["significance_bins"]))
            if epoch in schedule
            else [{}] * k_members
        )
        seconds = time.perf_counter() - t0
        for k in range(k_members):
            row = {
                "epoch": epoch,
                "train_loss": train_loss[k],
                "val_loss": math.nan,
                "val_significance": math.nan,
                "seconds": seconds,
                **validation[k],
            }
            if epoch in schedule:
                if row["val_significance"] > best[k]["significance"]:
                    best[k] = {
                        "significance": row["val_significance"],
                        "epoch": epoch,
                        "state": ensemble.member_state(k),
                    }
            histories[k].append(row)
        if progress_every and epoch % progress_every == 0:
            log.info(
                "ensemble of %d, epoch %d: train losses %s",
                k_members,
                epoch,
                ", ".join(f"{v:.5f}" for v in train_loss),
            )
    results = []
    for k, (m, spec) in enumerate(zip(members, specs)):
        model = build_model(spec.model, x.shape[2], n_objects=n_objects, missing=missing, **spec.hparams).to(
            device
        )
        model.load_state_dict(best[k]["state"])
        scores = tr.predict_neural(model, x[k, : n_events[k]]).cpu().numpy()
        results.append(
            {
                "state": {n: t.cpu() for n, t in best[k]["state"].items()},
                "normaliser": m["norm"],
                "history": histories[k],
                "best_epoch": best[k]["epoch"],
                "best_significance": best[k]["significance"],
                "scores": scores,
            }
        )
    return results


@torch.no_grad()
def member_scores(
    ensemble: StackedModels, x: torch.Tensor, index: Sequence[torch.Tensor], batch: int = 65536
) -> list[torch.Tensor]:
    """Scores in evaluation mode of member k on events x[k, index[k]], all members in one pass per batch."""
    ensemble.eval()
    n = max((len(i) for i in index), default=0)
    padded = torch.stack(
        [torch.cat((i, i.new_zeros(n - len(i)))) for i in index]
    )  # (K, n), padded with event 0
    rows = torch.arange(len(index), device=x.device)[:, None]
    out = [ensemble(x[rows, padded[:, s : s + batch]]).float() for s in range(0, n, batch)]
    scores = torch.cat(out, dim=1) if out else x.new_zeros(len(index), 0)
    return [scores[k, : len(i)] for k, i in enumerate(index)]


def _validate(
    ensemble: StackedModels,
    members: list[dict],
    x: torch.Tensor,
    y: torch.Tensor,
    mass: torch.Tensor,
    loss_args: dict,
    n_bins: int,
) -> list[dict[str, float]]:
    """Validation loss and significance of every member, as train_neural computes them."""
    dev = x.device
    scope_idx = [torch.from_numpy(np.flatnonzero(m["val_sel"])).to(dev) for m in members]
    all_idx = [torch.from_numpy(np.flatnonzero(m["data"].split == 1)).to(dev) for m in members]
    scope_scores = member_scores(ensemble, x, scope_idx)
    all_scores = member_scores(ensemble, x, all_idx)
    out = []
    for k, m in enumerate(members):
        data, idx = m["data"], scope_idx[k]
        w = torch.from_numpy(m["w_val"].astype(np.float32)).to(dev)
        with torch.no_grad():
            vloss, _ = losses.total_loss(scope_scores[k], y[k, idx], w[idx], mass[k, idx], **loss_args)
        val_np = data.split == 1
        out.append(
            {
                "val_loss": float(vloss),
                "val_significance": tr.split_significance(
                    all_scores[k].cpu().numpy(),
                    data.mass[val_np],
                    m["eval_w"][val_np],
                    data.y[val_np],
                    n_bins,
                ),
            }
        )
    return out


def _save_members(ensemble: StackedModels, optimiser: torch.optim.Optimizer, ks: np.ndarray) -> list:
    """Copies of members ks' slices of every parameter and its Adam moments."""
    ks_t = torch.from_numpy(ks)
    saved = []
    for p in ensemble.parameters():
        state = optimiser.state.get(p, {})
        tensors = [p.data] + [state[n] for n in ("exp_avg", "exp_avg_sq") if n in state]
        saved.extend((t, ks_t.to(t.device), t[ks_t.to(t.device)].clone()) for t in tensors)
    return saved


def _restore_members(saved: list) -> None:
    with torch.no_grad():
        for t, ks, values in saved:
            t[ks] = values


def run_trials(
    feature_paths: Sequence[str | Path],
    specs: Sequence[tr.RunSpec],
    outdirs: Sequence[str | Path],
    precision: str = "fp32",
    compile: bool = False,
) -> list[dict[str, Path]]:
    """Train the trials `specs` of one (model, loss) as one ensemble and write, per trial, what
    `hzg.training.run` writes (checkpoint.pt, history.csv, scores.parquet in its outdir), so that every later
    stage reads them alike.

    For a training job that holds a GPU: with `training.ensemble_trials: true` a rule would call this once per
    (model, loss) with the outdirs of all trials, instead of `training.run` once per trial.
    """
    from hzg.registry import NEURAL_MODELS

    if len(specs) != len(outdirs):
        raise ValueError("run_trials needs one outdir per spec")
    bad = sorted({s.model for s in specs} - set(NEURAL_MODELS))
    if bad:
        raise ValueError(f"an ensemble trains neural models only, not {bad}")
    features = specs[0].input_columns()
    datasets = [tr.load_dataset(feature_paths, features, s.trial) for s in specs]
    results = train_neural_ensemble(datasets, specs, precision=precision, compile=compile)
    written = []
    for spec, data, result, outdir in zip(specs, datasets, results, outdirs):
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        checkpoint = {
            "model": spec.model,
            "loss": spec.loss,
            "features": features,
            "trial": spec.trial,
            "hparams": spec.hparams,
            "config_hash": tr.config_hash(spec.describe()),
            "spec": spec.describe(),
            "kind": "neural",
            "state_dict": result["state"],
            "normaliser": result["normaliser"].to_dict(),
            "best_epoch": result["best_epoch"],
            "best_val_significance": result["best_significance"],
        }
        written.append(tr.write_outputs(outdir, checkpoint, result, data))
    return written
