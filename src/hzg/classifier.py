"""A trained classifier loaded from its checkpoint: scores for a frame of features, on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hzg import checkpoints, trees
from hzg.training import Normaliser, predict_neural


class Classifier:
    """Wraps a checkpoint written by `hzg.training.run` (neural or tree) behind one `predict`."""

    def __init__(self, checkpoint: dict[str, Any], source: str = "<checkpoint>") -> None:
        self.checkpoint = checkpoint
        self.source = source
        self.name = f"{checkpoint['model']}_{checkpoint['loss']}"
        self.features: list[str] = list(checkpoint["features"])
        self.kind: str = checkpoint["kind"]
        if self.kind == "neural":
            from hzg.models import build_model

            self.model = build_model(checkpoint["model"], len(self.features), **checkpoint["hparams"])
            self.model.load_state_dict(checkpoint["state_dict"])
            self.normaliser = Normaliser(**checkpoint["normaliser"])
        else:
            self.model = trees.from_bytes(self.kind, checkpoint["blob"])

    @classmethod
    def load(cls, path: str | Path) -> "Classifier":
        """Load a checkpoint file (CPU); a CheckpointError names the file if it is unreadable or unsafe."""
        return cls(checkpoints.load(path), str(path))  # weights only: a pickled object is refused, never run

    def predict(self, frame: pd.DataFrame, batch: int = 65536) -> np.ndarray:
        """Signal probability of every row of `frame` (which must hold the checkpoint's features)."""
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
            return trees.xgboost_scores(self.model, x).astype(np.float64)
        return trees.bdt_scores(self.model, x).astype(np.float64)
