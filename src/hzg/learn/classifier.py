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


class Normaliser:
    """Standardisation with statistics of the training split only."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.std = np.where(np.asarray(std) > 0, std, 1.0).astype(np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, columns: Sequence[str] | None = None) -> "Normaliser":
        """Mean and std of every column of `x`; given the column names, the object block (if any) is
        treated as `hzg.data.objects.normalisation` says (type codes kept, padding left out)."""
        mean, std = x.mean(axis=0), x.std(axis=0)
        from hzg.data import objects

        if columns is not None and objects.count_objects(list(columns)):
            mean, std = mean.astype(np.float64), std.astype(np.float64)
            objects.normalisation(x, list(columns), mean, std)
        return cls(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


@torch.no_grad()
def predict_neural(model: torch.nn.Module, x: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """Scores of a neural model in evaluation mode, in batches, on the device of `x`."""
    model.eval()
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
            from hzg.learn.models import build_model

            from hzg.data import objects

            n_objects = objects.count_objects(self.features)
            self.model = build_model(
                checkpoint["model"], len(self.features), n_objects=n_objects, **checkpoint["hparams"]
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

    def predict(self, frame: pd.DataFrame, batch: int = 65536, hypothesis: float | None = None) -> np.ndarray:
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
