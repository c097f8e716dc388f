"""GPU check (run on a machine with CUDA, a few seconds): a neural training job killed mid-run resumes on the
GPU
and gives the same history and scores as an uninterrupted run on the GPU (issue 13, item 1: the saved CPU
generator
state must not be moved onto CUDA, and the CUDA generator state must be saved and restored).

Usage: python bench/gpu_check.py   (exit status 0: passed; prints what it compared)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hzg.data import features as feat
from hzg.learn import training
from hzg.config_checks import load_config
from hzg.registry import model_training

REPO = Path(__file__).resolve().parents[1]


class Killed(Exception):
    pass


def synthetic_features(outdir: Path, n: int = 3000) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name, is_sig in (("signal", 1), ("background", 0)):
        cols = list(feat.FEATURES) + list(feat.DISCO_FEATURES)
        x = rng.normal(size=(n, len(cols))) + (np.r_[np.ones(4), np.zeros(len(cols) - 4)] if is_sig else 0)
        frame = pd.DataFrame(x, columns=cols)
        frame["mllg"] = rng.normal(125, 2, n) if is_sig else 100 + rng.exponential(30, n) % 80
        frame["weight"], frame["is_signal"] = (0.01 if is_sig else 1.0), np.int8(is_sig)
        frame["sample_id"], frame["chunk"], frame["entry"] = feat.sample_id(name), 0, np.arange(n)
        frame["split_0"] = feat.split_index(frame["sample_id"], frame["chunk"], frame["entry"], 0, [1, 1, 1])
        paths.append(outdir / f"{name}.parquet")
        frame.to_parquet(paths[-1])
    return paths


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 1
    cfg = load_config(REPO / "config/ci.yaml")
    hparams, tcfg = model_training("etn", cfg["models"]["etn"], cfg["training"])
    tcfg = {**tcfg, "epochs": 6, "eval_every_early": 2, "device": "cuda", "batch_size": 512}
    spec = training.RunSpec(
        model="etn",
        loss="bce_disco",
        loss_kind="bce",
        disco_lambda=10.0,
        hparams=hparams,
        training=tcfg,
        trial=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = synthetic_features(tmp)
        full = training.run(paths, spec, tmp / "full", progress=False)

        def kill(epoch: int) -> None:
            if epoch == 3:
                raise Killed

        try:
            training.run(paths, spec, tmp / "resumed", progress=False, on_epoch_end=kill)
        except Killed:
            pass
        state = torch.load(tmp / "resumed/resume.pt", map_location="cpu", weights_only=True)
        assert state["rng"]["cpu"].device.type == "cpu" and len(state["rng"]["cuda"]) >= 1, (
            "CUDA RNG state not saved"
        )
        resumed = training.run(paths, spec, tmp / "resumed", progress=False)
        a = pd.read_csv(full["history"]).drop(columns="seconds")
        b = pd.read_csv(resumed["history"]).drop(columns="seconds")
        pd.testing.assert_frame_equal(a, b, rtol=1e-5)
        pd.testing.assert_frame_equal(
            pd.read_parquet(full["scores"]), pd.read_parquet(resumed["scores"]), rtol=1e-5
        )
        print(
            f"resume on {torch.cuda.get_device_name()}: history of {len(a)} epochs and "
            f"{len(pd.read_parquet(full['scores']))} scores equal to the uninterrupted run (rtol 1e-5)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
