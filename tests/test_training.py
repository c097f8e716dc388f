"""Training: scopes, weights, schedule, trees, resume after a kill."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hzg import features as feat
from hzg import metrics, training

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config/ci.yaml").read_text())


def synthetic_features(tmp_path: Path, n: int = 3000, seed: int = 0) -> list[Path]:
    """Two Parquet files shaped like the features stage's output; signal shifted in a few features."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, is_sig in (("signal", 1), ("background", 0)):
        cols = list(feat.FEATURES) + list(feat.DISCO_FEATURES)
        x = rng.normal(size=(n, len(cols)))
        if is_sig:
            x[:, :4] += 1.0
        frame = pd.DataFrame(x, columns=cols)
        frame["mllg"] = rng.normal(125, 2, n) if is_sig else 100 + rng.exponential(30, n) % 80
        frame["weight"] = 0.01 if is_sig else 1.0
        frame["is_signal"] = np.int8(is_sig)
        frame["sample_id"] = feat.sample_id(name)
        frame["chunk"] = 0
        frame["entry"] = np.arange(n)
        for t in range(3):
            frame[f"split_{t}"] = feat.split_index(frame["sample_id"], frame["chunk"], frame["entry"], t, [1, 1, 1])
        paths.append(tmp_path / f"{name}.parquet")
        frame.to_parquet(paths[-1])
    return paths


def spec(model="etn", loss="bce_disco", epochs=4, **over) -> training.RunSpec:
    tcfg = {**CONFIG["training"], "epochs": epochs, "batch_size": 512, **over}
    lcfg = CONFIG["losses"][loss]
    return training.RunSpec(model=model, loss=loss, loss_kind=lcfg["kind"], disco_lambda=lcfg["disco_lambda"],
                            hparams=CONFIG["models"][model], training=tcfg, trial=0)


def test_eval_schedule_is_the_papers():
    sched = training.eval_epochs(1200, 5, 50, 10)
    assert sched[:10] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert sched[10:13] == [60, 70, 80] and sched[-1] == 1200 and len(sched) == 10 + 115
    assert training.eval_epochs(12, 5, 50, 10) == [5, 10, 12]
    assert training.eval_epochs(3, 5, 50, 10) == [3]


def test_balanced_weights_give_equal_class_sums():
    w = np.array([0.01, 0.02, 5.0, 7.0, 1.0])
    y = np.array([1, 1, 0, 0, 0])
    b = training.balanced_weights(w, y)
    assert b[y == 1].sum() == pytest.approx(2.5) and b[y == 0].sum() == pytest.approx(2.5)
    assert b[1] / b[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="class 1"):
        training.balanced_weights(w[2:], y[2:])


def test_split_scaled_weights_restore_full_yield_per_split():
    w = np.ones(6)
    y = np.array([1, 1, 1, 0, 0, 0])
    split = np.array([0, 0, 1, 0, 1, 2])
    s = metrics.split_scaled_weights(w, y, split)
    assert s[(split == 0) & (y == 1)].sum() == pytest.approx(3.0)
    assert s[(split == 2) & (y == 0)].sum() == pytest.approx(3.0)


def test_training_scope_is_the_papers_data_scope():
    mass = np.array([119.9, 120.5, 129.9, 130.1, 150.0, 150.0, 181.0])
    y = np.array([1, 1, 0, 0, 0, 1, 0])
    tcfg = CONFIG["training"]
    np.testing.assert_array_equal(training.training_scope(mass, y, 0.0, tcfg), [0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(training.training_scope(mass, y, 10.0, tcfg), [0, 1, 1, 1, 1, 0, 0])
    assert training.training_scope(mass, y, 10.0, {**tcfg, "data_scope": False}).all()


def test_feature_lists():
    assert training.feature_names(0.0) == list(feat.FEATURES)
    assert training.feature_names(10.0)[-3:] == ["photon_pt_over_mllg", "lep1_pt", "lep2_pt"]


@pytest.mark.parametrize("model", ["xgboost", "bdt"])
def test_trees_learn_and_write_their_outputs(tmp_path, model):
    paths = synthetic_features(tmp_path)
    out = training.run(paths, spec(model, "bce"), tmp_path / model, progress=False)
    scores = pd.read_parquet(out["scores"])
    from sklearn.metrics import roc_auc_score

    test = scores[scores.split == 2]
    assert roc_auc_score(test.is_signal, test.score) > 0.8
    ckpt = torch.load(out["checkpoint"], weights_only=False)
    assert ckpt["kind"] == model and ckpt["features"] == list(feat.FEATURES)
    assert len(pd.read_csv(out["history"])) > 0


def test_trees_refuse_losses_they_cannot_train(tmp_path):
    paths = synthetic_features(tmp_path, n=300)
    with pytest.raises(ValueError, match="only the BCE loss"):
        training.run(paths, spec("xgboost", "bce_disco"), tmp_path / "x", progress=False)


class Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_history(tmp_path):
    paths = synthetic_features(tmp_path, n=1500)
    s = spec("etn", "bce_disco", epochs=6, eval_every_early=2)
    full = training.run(paths, s, tmp_path / "full", progress=False)

    def kill_after_3(epoch):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        training.run(paths, s, tmp_path / "resumed", progress=False, on_epoch_end=kill_after_3)
    assert (tmp_path / "resumed/resume.pt").exists() and not (tmp_path / "resumed/history.csv").exists()
    resumed = training.run(paths, s, tmp_path / "resumed", progress=False)
    a = pd.read_csv(full["history"]).drop(columns="seconds")
    b = pd.read_csv(resumed["history"]).drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    assert not (tmp_path / "resumed/resume.pt").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(full["scores"]), pd.read_parquet(resumed["scores"]))


@pytest.mark.slow
def test_neural_training_selects_the_best_validation_epoch(tmp_path):
    paths = synthetic_features(tmp_path, n=1500)
    out = training.run(paths, spec("dfnn", "bce", epochs=8, eval_every_early=2), tmp_path / "d", progress=False)
    hist = pd.read_csv(out["history"])
    ckpt = torch.load(out["checkpoint"], weights_only=False)
    evaluated = hist.dropna(subset=["val_significance"])
    assert list(evaluated.epoch) == [2, 4, 6, 8]
    assert ckpt["best_epoch"] == int(evaluated.loc[evaluated.val_significance.idxmax(), "epoch"])
    assert ckpt["best_val_significance"] == pytest.approx(evaluated.val_significance.max())
    assert set(ckpt["normaliser"]) == {"mean", "std"} and len(ckpt["normaliser"]["mean"]) == 12
