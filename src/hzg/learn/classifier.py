"""A trained classifier loaded from its checkpoint: scores for a frame of features, on CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hzg import checkpoints
from hzg.learn import boosted, strategies
from hzg.registry import run_name


#: The number a missing value (NaN) becomes in the inputs of a network whose missing mode is "sentinel"
#: (registry `missing_mode`), before standardisation: outside every jet feature's physical range, as the
#: -999 of the n-tuples that encode a missing value so (seed paper 002, Sec. 2.3.4). The normaliser's
#: statistics then include it, as they would for such an n-tuple.
SENTINEL = -999.0


class Normaliser:
    """Standardisation with statistics of the training split only.

    Missing values (NaN; `hzg.data.features.OPTIONAL_FEATURES`): with `sentinel` None (the default) they stay
    NaN, for the network to replace by its learned token, and the statistics are those of the present values
    only; with a `sentinel` number, NaN becomes that number before the statistics and before standardising.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, sentinel: float | None = None) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.std = np.where(np.asarray(std) > 0, std, 1.0).astype(np.float32)
        self.sentinel = None if sentinel is None else float(sentinel)

    @classmethod
    def fit(
        cls, x: np.ndarray, columns: Sequence[str] | None = None, sentinel: float | None = None
    ) -> "Normaliser":
        """Mean and std of every column of `x` (of its present values where a column has NaN; NaN replaced
        by `sentinel` first when given); given the column names, the object block (if any) is treated as
        `hzg.data.objects.normalisation` says (type codes kept, padding left out)."""
        if sentinel is not None:
            x = _fill(x, float(sentinel))
        if np.isnan(x).any():  # missing values: statistics of the present ones (an all-NaN column: 0, 1)
            present = ~np.isnan(x)
            n = present.sum(axis=0)
            mean = np.where(n > 0, np.nansum(x, axis=0, dtype=np.float64) / np.maximum(n, 1), 0.0)
            var = np.nansum((x - mean) ** 2, axis=0, dtype=np.float64) / np.maximum(n, 1)
            mean, std = mean.astype(x.dtype), np.where(n > 0, np.sqrt(var), 1.0).astype(x.dtype)
        else:  # as always (the runs without missing values keep their numbers bit for bit)
            mean, std = x.mean(axis=0), x.std(axis=0)
        from hzg.data import objects

        if columns is not None and objects.count_objects(list(columns)):
            mean, std = mean.astype(np.float64), std.astype(np.float64)
            objects.normalisation(x, list(columns), mean, std)
        return cls(mean, std, sentinel)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.sentinel is not None:
            x = _fill(x, self.sentinel)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        out = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        return out if self.sentinel is None else {**out, "sentinel": self.sentinel}


def _fill(x: np.ndarray, value: float) -> np.ndarray:
    """`x` with its NaN replaced by `value` (a copy where there are any)."""
    nan = np.isnan(x)
    return np.where(nan, np.asarray(value, x.dtype), x) if nan.any() else x


def pin_scoring_threads(threads: int) -> None:
    """Score with a fixed number of torch CPU threads (a job's `threads`). A network's output can change
    in its last bit with the thread count (etn_bce_disco on the default's 680 k background events: 1 event
    differs between 1 and 2 threads, never between two runs with 2), enough to move an event across a
    score-bin edge of the fit; with the count fixed by the rule, every run gives the same numbers."""
    torch.set_num_threads(max(1, int(threads)))


#: Events per forward pass when scoring, per device type. On a CPU a small batch keeps the attention
#: models' intermediate tensors in cache: the ETN and the ETN + objects score 2.3x faster in batches of
#: 4096 than of 65 536 (one thread; bench/bench_scoring.py); a GPU wants large batches.
SCORING_BATCH: dict[str, int] = {"cpu": 4096, "cuda": 65536}


def scoring_batch(device: torch.device) -> int:
    """Events per forward pass of `predict_neural` on `device` (`SCORING_BATCH`; CUDA's for other
    accelerators)."""
    return SCORING_BATCH.get(device.type, SCORING_BATCH["cuda"])


@torch.no_grad()
def predict_neural(model: torch.nn.Module, x: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Scores of a neural model in evaluation mode, in batches (`scoring_batch` of the device by default), on
    the device of `x`."""
    model.eval()
    batch = scoring_batch(x.device) if batch is None else int(batch)
    if batch < 1:
        raise ValueError(f"scoring batch must be a positive number of events, got {batch}")
    return (
        torch.cat([model(x[i : i + batch]).float() for i in range(0, len(x), batch)])
        if len(x)
        else x.new_zeros(0)
    )


class Classifier:
    """Wraps a checkpoint written by `hzg.learn.training.run` (neural or tree) behind one `predict`."""

    def __init__(self, checkpoint: dict[str, Any], source: str = "<checkpoint>") -> None:
        self.checkpoint = checkpoint
        self.source = source
        self.name = run_name(checkpoint["model"], checkpoint["loss"])
        self.features: list[str] = list(checkpoint["features"])
        self.kind: str = checkpoint["kind"]
        if self.kind == "neural":
            from hzg.learn.models import build_model, missing_inputs

            from hzg.data import objects

            n_objects = objects.count_objects(self.features)
            self.model = build_model(
                checkpoint["model"],
                len(self.features),
                n_objects=n_objects,
                missing=missing_inputs(checkpoint["model"], self.features),
                **checkpoint["hparams"],
            )
            if checkpoint.get("multiclass"):  # C outputs, scored by the signal classes' probability
                from hzg.learn import multiclass

                self.model = multiclass.wrap(self.model, checkpoint["multiclass"])
            self.model.load_state_dict(checkpoint["state_dict"])
            self.normaliser = Normaliser(**checkpoint["normaliser"])
        else:
            self.model = boosted.from_bytes(self.kind, checkpoint["blob"])

    @classmethod
    def load(cls, path: str | Path) -> "Classifier":
        """Load a checkpoint file (CPU); a CheckpointError names the file if it is unreadable or unsafe."""
        return cls(checkpoints.load(path), str(path))  # weights only: a pickled object is refused, never run

    def predict(
        self, frame: pd.DataFrame, batch: int | None = None, hypothesis: float | None = None
    ) -> np.ndarray:
        """Signal probability of every row of `frame` (which must hold the checkpoint's features). A
        parametrised network (strategy pnn) scores with the Higgs mass `hypothesis`, by default its nominal
        mass (125 GeV) where the frame has no hypothesis column; other classifiers ignore it."""
        frame = strategies.with_hypothesis(frame, self.features, self.checkpoint, hypothesis)
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise KeyError(f"{self.source}: classifier {self.name} needs features {missing}")
        x = frame[self.features].to_numpy(np.float32)
        if len(x) == 0:
            return np.zeros(0, np.float64)
        if self.kind == "neural":
            return (
                predict_neural(self.model, torch.from_numpy(self.normaliser(x)), batch)
                .numpy()
                .astype(np.float64)
            )
        if self.kind == "xgboost":
            return boosted.xgboost_scores(self.model, x).astype(np.float64)
        return boosted.bdt_scores(self.model, x).astype(np.float64)
