"""Test helper: write a frame shaped like the features stage's output (event key and trial splits added)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hzg.data import features as feat


def write_feature_file(frame: pd.DataFrame, name: str, directory: Path, n_trials: int = 3) -> Path:
    """Add the event key (sample_id of `name`, chunk 0, entry) and `n_trials` equal three-way splits to
    `frame`, write it as `directory/name.parquet` and return that path."""
    frame["sample_id"] = feat.sample_id(name)
    frame["chunk"] = 0
    frame["entry"] = np.arange(len(frame))
    for t in range(n_trials):
        frame[f"split_{t}"] = feat.split_index(
            frame["sample_id"], frame["chunk"], frame["entry"], t, [1, 1, 1]
        )
    path = directory / f"{name}.parquet"
    frame.to_parquet(path)
    return path
