"""Training: scopes, weights, schedule, trees, resume after a kill."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hzg.data import features as feat
from hzg import checkpoints, metrics
from hzg.learn import boosted, training
from hzg.learn.classifier import Classifier
from hzg.config_checks import load_config
from hzg.registry import model_training
from feature_files import write_feature_file

REPO = Path(__file__).resolve().parents[1]
CONFIG = load_config(REPO / "config/ci.yaml")


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
        paths.append(write_feature_file(frame, name, tmp_path))
    return paths


def spec(model="etn", loss="bce_disco", epochs=4, **over) -> training.RunSpec:
    hparams, tcfg = model_training(model, CONFIG["models"][model], CONFIG["training"])
    tcfg = {**tcfg, "epochs": epochs, "batch_size": 512, **over}
    lcfg = CONFIG["losses"][loss]
    return training.RunSpec(
        model=model,
        loss=loss,
        loss_kind=lcfg["kind"],
        disco_lambda=lcfg["disco_lambda"],
        hparams=hparams,
        training=tcfg,
        trial=0,
    )


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


def weighted_events(n_sig=2000, n_bkg=5000, seed=3, negative=0.0):
    """In-scope training events like biased generation gives: weights spread over a factor 100, a few
    negative; the background mass is correlated with the weight (heavy events sit high)."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_sig), np.zeros(n_bkg)]
    w = np.r_[np.full(n_sig, 0.01), 10 ** rng.uniform(0, 2, n_bkg)]
    mass = np.r_[rng.normal(125, 2, n_sig), 100 + 80 * rng.beta(1 + np.log10(w[n_sig:]), 2)]
    w[n_sig:] *= np.where(rng.random(n_bkg) < negative, -1, 1)
    return y, w, mass


def test_epoch_draw_is_reproducible_and_differs_between_epochs():
    y, w, _ = weighted_events()
    idx = np.arange(len(y)) * 2 + 1  # positions in a larger dataset
    a = training.EpochSampler(idx, _spread(y), _spread(w), 3000, seed=7)
    b = training.EpochSampler(idx, _spread(y), _spread(w), 3000, seed=7)
    for epoch in (1, 2, 50):
        np.testing.assert_array_equal(a(epoch)[0], b(epoch)[0])
        np.testing.assert_array_equal(a(epoch)[1], b(epoch)[1])
    assert not np.array_equal(a(1)[0], a(2)[0])
    assert not np.array_equal(a(1)[0], training.EpochSampler(idx, _spread(y), _spread(w), 3000, seed=8)(1)[0])
    assert set(a(1)[0]) <= set(idx)


def _spread(v):
    """v at the odd positions of an array twice as long (the even ones are events out of scope)."""
    out = np.zeros(2 * len(v), dtype=np.asarray(v).dtype)
    out[1::2] = v
    return out


@pytest.mark.parametrize("n", [3000, 3001, 10**6])
def test_epoch_draw_is_half_signal_half_background(n):
    y, w, _ = weighted_events()
    sampler = training.EpochSampler(np.arange(len(y)), y, w, n, seed=1)
    events, weights = sampler(1)
    n_draw = min(n, len(y))  # never more than the in-scope events
    assert len(sampler) == len(events) == len(weights) == n_draw
    assert (y[events] == 1).sum() == n_draw // 2 and (y[events] == 0).sum() == n_draw - n_draw // 2
    np.testing.assert_array_equal(weights, 1.0)  # positive weights: every draw counts once
    # each class sums to half the epoch, as balanced_weights does for the full set
    assert weights[y[events] == 1].sum() == pytest.approx(weights[y[events] == 0].sum(), abs=1)
    # both classes in every batch, about half each
    for i in range(0, n_draw - 512, 512):
        assert 0.35 < y[events[i : i + 512]].mean() < 0.65
    with pytest.raises(ValueError, match="at least 2"):
        training.EpochSampler(np.arange(len(y)), y, w, 1, seed=1)


@pytest.mark.parametrize("negative", [0.0, 0.1])
def test_weight_proportional_draw_recovers_weighted_means(negative):
    """Draws by |w| with sign weights estimate the weighted mean (and the narrow-window fraction the DisCo
    and classifier terms see) within statistical errors; an unweighted mean is many errors away."""
    y, w, mass = weighted_events(n_sig=20_000, n_bkg=60_000, negative=negative)
    bkg = y == 0
    sampler = training.EpochSampler(np.arange(len(y)), y, w, 80_000, seed=5)
    events, weights = sampler(3)
    drawn = y[events] == 0
    for f in (mass, ((mass > 120) & (mass < 130)).astype(float)):
        truth = np.sum(w[bkg] * f[bkg]) / np.sum(w[bkg])
        estimate = np.sum(weights[drawn] * f[events[drawn]]) / np.sum(weights[drawn])
        # ratio estimator's standard error: sqrt(E_p[(f - truth)^2] / k) * sum|w| / sum(w), p = |w| / sum|w|
        p = np.abs(w[bkg]) / np.abs(w[bkg]).sum()
        sigma = np.sqrt(np.sum(p * (f[bkg] - truth) ** 2) / drawn.sum()) * np.abs(w[bkg]).sum() / w[bkg].sum()
        assert abs(estimate - truth) < 4 * sigma, (estimate, truth, sigma)
        assert abs(f[bkg].mean() - truth) > 6 * sigma  # a draw that ignored the weights would fail above


@pytest.mark.parametrize("negative", [0.0, 0.1])
def test_narrow_share_draws_that_share_in_the_window_and_keeps_every_weighted_mean(negative):
    """`narrow_share`: half of the background draws fall in 120-130 GeV (where |w| puts far fewer), and the
    scaled weights still estimate the background's weighted means over the wide window (what DisCo sees)
    and its weight sum (the classes' balance); the signal draw is the one without a share."""
    y, w, mass = weighted_events(n_sig=20_000, n_bkg=60_000, negative=negative)
    narrow = (mass > 120) & (mass < 130)
    bkg = y == 0
    sampler = training.EpochSampler(np.arange(len(y)), y, w, 80_000, seed=5, narrow=narrow, narrow_share=0.5)
    events, weights = sampler(3)
    drawn = y[events] == 0
    assert np.mean(narrow[events[drawn]]) == pytest.approx(0.5, abs=1e-4)
    share = np.abs(w[bkg & narrow]).sum() / np.abs(w[bkg]).sum()
    assert share < 0.3  # what a draw by |w| alone would put there
    for f in (mass, narrow.astype(float), (mass > 150).astype(float)):
        truth = np.sum(w[bkg] * f[bkg]) / np.sum(w[bkg])
        estimate = np.sum(weights[drawn] * f[events[drawn]]) / np.sum(weights[drawn])
        assert estimate == pytest.approx(truth, abs=0.02 * max(truth, 1.0)), (estimate, truth)
    assert weights[drawn].sum() == pytest.approx(drawn.sum(), rel=0.05)
    plain = training.EpochSampler(np.arange(len(y)), y, w, 80_000, seed=5)
    np.testing.assert_array_equal(np.sort(events[~drawn]), np.sort(plain(3)[0][y[plain(3)[0]] == 1]))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        training.EpochSampler(np.arange(len(y)), y, w, 100, seed=5, narrow=narrow, narrow_share=1.0)
    with pytest.raises(ValueError, match="no training events in"):
        training.EpochSampler(
            np.arange(len(y)), y, w, 100, seed=5, narrow=np.zeros(len(y), bool), narrow_share=0.5
        )


@pytest.mark.parametrize(
    "negative_where", ["nowhere", "everywhere", "outside the window only", "inside the window only"]
)
def test_split_draw_expectations_are_exact_for_any_sign_of_the_weights(negative_where):
    """The draw's exact expectation (each group's per-draw probabilities times what a drawn event carries,
    no sampling) of every weighted sum is n sum(w f) / sum(w): a draw of the class by |w| alone, whatever
    the share, its rounding to whole draws, and where the negative weights sit."""
    from hzg.learn import draws

    rng = np.random.default_rng(8)
    n_events = 5000
    mass = rng.uniform(100, 180, n_events)
    inside = (mass > 120) & (mass < 130)
    w = rng.exponential(1.0, n_events)
    flip = {
        "nowhere": np.zeros(n_events, bool),
        "everywhere": rng.random(n_events) < 0.2,
        "outside the window only": ~inside & (rng.random(n_events) < 0.25),
        "inside the window only": inside & (rng.random(n_events) < 0.3),
    }[negative_where]
    w = np.where(flip, -0.5 * w, w)
    pos = np.arange(n_events)
    for n, share in ((4096, 0.3), (1000, 0.5), (7, 0.3)):
        groups = draws.split_class_draw(pos, inside, w, n, share, "background")
        assert sum(count for *_, count in groups) == n and all(count >= 1 for *_, count in groups)
        for f in (np.ones(n_events), mass, inside.astype(float), (mass > 150).astype(float)):
            expected = 0.0
            for g_pos, cdf, carried, count in groups:
                prob = np.diff(np.concatenate([[0.0], cdf]))
                expected += count * np.sum(prob * carried * f[g_pos])
            assert expected == pytest.approx(n * np.sum(w * f) / np.sum(w), rel=1e-9)


def test_narrow_share_needs_disco_with_the_data_scope_and_a_drawn_epoch():
    base = spec(loss="bce_disco")
    assert training.sampler_narrow_share(base) is None
    shared = training.RunSpec(**{**base.__dict__, "narrow_share": 0.5})
    assert training.sampler_narrow_share(shared) == 0.5
    assert shared.describe()["narrow_share"] == 0.5 and "narrow_share" not in base.describe()
    for change in (
        {"disco_lambda": 0.0},
        {"training": {**base.training, "data_scope": False}},
        {"training": {**base.training, "events_per_epoch": None}},
    ):
        with pytest.raises(ValueError, match="losses.bce_disco.narrow_share"):
            training.sampler_narrow_share(training.RunSpec(**{**shared.__dict__, **change}))


def test_epoch_draw_weights_keep_the_signs_and_balance():
    y, w, _ = weighted_events(negative=0.1)
    events, weights = training.EpochSampler(np.arange(len(y)), y, w, 20_000, seed=2)(1)
    bkg = y[events] == 0
    np.testing.assert_array_equal(np.sign(weights), np.sign(w[events]))
    scale = np.abs(w[y == 0]).sum() / w[y == 0].sum()  # sign weights scaled so the class sums to its draws
    np.testing.assert_allclose(np.abs(weights[bkg]), scale)
    assert weights[bkg].sum() == pytest.approx(bkg.sum(), rel=0.05)
    assert weights[~bkg].sum() == (~bkg).sum()
    with pytest.raises(ValueError, match="class 0"):
        training.EpochSampler(np.arange(len(y)), y, np.where(y == 0, -1.0, w), 100, seed=2)


def test_events_per_epoch_null_is_the_full_shuffled_pass_with_balanced_weights():
    y, w, _ = weighted_events()
    idx = np.arange(len(y)) * 2 + 1
    sampler = training.EpochSampler(idx, _spread(y), _spread(w), None, seed=11)
    assert len(sampler) == len(idx)
    for epoch in (1, 2):
        events, weights = sampler(epoch)
        old_order = torch.randperm(
            len(idx), generator=torch.Generator().manual_seed(11 * 1_000_003 + epoch)
        ).numpy()
        np.testing.assert_array_equal(events, idx[old_order])
        np.testing.assert_array_equal(weights, training.balanced_weights(w, y)[old_order])


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
    ckpt = checkpoints.load(out["checkpoint"])  # weights only: no pickled object in a checkpoint
    assert ckpt["kind"] == model and ckpt["features"] == list(feat.FEATURES)
    assert len(pd.read_csv(out["history"])) > 0


def test_trees_refuse_losses_they_cannot_train(tmp_path):
    paths = synthetic_features(tmp_path, n=300)
    with pytest.raises(ValueError, match="only the BCE loss"):
        training.run(paths, spec("xgboost", "bce_disco"), tmp_path / "x", progress=False)


class Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("events_per_epoch", [600, None])
def test_resume_after_kill_gives_the_same_history(tmp_path, events_per_epoch):
    paths = synthetic_features(tmp_path, n=1500)
    s = spec("etn", "bce_disco", epochs=6, eval_every_early=2, events_per_epoch=events_per_epoch)
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


def test_resume_files_are_written_every_resume_every_epochs():
    assert [e for e in range(1, 31) if training.resume_epoch(e, 10)] == [10, 20, 30]
    assert all(training.resume_epoch(e, 1) for e in range(1, 5))
    with pytest.raises(ValueError, match="resume_every"):
        training.resume_epoch(3, 0)


def test_resume_every_is_not_part_of_a_runs_description_hash_or_resume_key():
    """How often a job saves its state does not change its result: the same description (spec hash, resume
    key) whatever resume_every is, and the default's hashes stay those of its trained runs."""
    assert spec(resume_every=1).describe() == spec(resume_every=10).describe()
    assert "resume_every" not in spec(resume_every=7).describe()["training"]


@pytest.mark.slow
def test_a_job_killed_between_resume_files_goes_on_from_the_last_one(tmp_path):
    """resume_every = 3: killed after epoch 5, the job left epoch 3's resume file; rerun, it trains epochs 4-6
    again and ends with the history and scores of an uninterrupted run."""
    paths = synthetic_features(tmp_path, n=1500)
    s = spec("etn", "bce", epochs=6, eval_every_early=2, resume_every=3)
    full = training.run(paths, s, tmp_path / "full", progress=False)
    assert not (tmp_path / "full/resume.pt").exists()

    def kill_after_5(epoch):
        if epoch == 5:
            raise Killed

    with pytest.raises(Killed):
        training.run(paths, s, tmp_path / "resumed", progress=False, on_epoch_end=kill_after_5)
    state = training.load_resume(
        tmp_path / "resumed/resume.pt",
        training.resume_key(s, training.load_dataset(paths, s.input_columns(), 0)),
    )
    assert state is not None and state["epoch"] == 3
    epochs = []
    resumed = training.run(paths, s, tmp_path / "resumed", progress=False, on_epoch_end=epochs.append)
    assert epochs == [4, 5, 6]
    a = pd.read_csv(full["history"]).drop(columns="seconds")
    b = pd.read_csv(resumed["history"]).drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_parquet(full["scores"]), pd.read_parquet(resumed["scores"]))


@pytest.mark.slow
def test_neural_training_selects_the_best_validation_epoch(tmp_path):
    paths = synthetic_features(tmp_path, n=1500)
    out = training.run(
        paths, spec("dfnn", "bce", epochs=8, eval_every_early=2), tmp_path / "d", progress=False
    )
    hist = pd.read_csv(out["history"])
    ckpt = checkpoints.load(out["checkpoint"])
    evaluated = hist.dropna(subset=["val_significance"])
    assert list(evaluated.epoch) == [2, 4, 6, 8]
    assert ckpt["best_epoch"] == int(evaluated.loc[evaluated.val_significance.idxmax(), "epoch"])
    assert ckpt["best_val_significance"] == pytest.approx(evaluated.val_significance.max())
    assert set(ckpt["normaliser"]) == {"mean", "std"} and len(ckpt["normaliser"]["mean"]) == 12


def test_a_non_finite_training_loss_stops_the_job_naming_the_run_and_epoch(tmp_path, monkeypatch):
    """A diverged model (NaN loss) stops the job at that epoch, with no checkpoint or scores written."""
    paths = synthetic_features(tmp_path, n=600)
    real = training._train_epoch

    def diverging(model, optimiser, prep, epoch, batch, args):
        loss = real(model, optimiser, prep, epoch, batch, args)
        return float("nan") if epoch == 3 else loss

    monkeypatch.setattr(training, "_train_epoch", diverging)
    with pytest.raises(FloatingPointError, match=r"dfnn_bce trial 0: the training loss is nan at epoch 3"):
        training.run(paths, spec("dfnn", "bce", epochs=5), tmp_path / "d", progress=False)
    assert not any((tmp_path / "d" / name).exists() for name in ("checkpoint.pt", "scores.parquet"))


def test_training_draws_events_per_epoch_from_the_training_scope(tmp_path, monkeypatch):
    paths = synthetic_features(tmp_path, n=600)
    seen = []

    class Recording(training.EpochSampler):
        def __call__(self, epoch):
            events, weights = super().__call__(epoch)
            seen.append((epoch, events, weights, self.idx))
            return events, weights

    monkeypatch.setattr(training, "EpochSampler", Recording)
    training.run(
        paths, spec("dfnn", "bce_disco", epochs=2, events_per_epoch=300), tmp_path / "d", progress=False
    )
    data = training.load_dataset(paths, training.feature_names(10.0), 0)
    scope = (data.split == 0) & training.training_scope(data.mass, data.y, 10.0, CONFIG["training"])
    assert [e for e, *_ in seen] == [1, 2]
    for _, events, weights, idx in seen:
        np.testing.assert_array_equal(idx, np.flatnonzero(scope))
        assert len(events) == 300 and scope[events].all() and (data.y[events] == 1).sum() == 150
        np.testing.assert_array_equal(weights, 1.0)


# ---------------------------------------------------------------- resume: devices, generators, stale or
# corrupt files
def _killed_run(tmp_path, paths, s, after=2):
    def kill(epoch):
        if epoch == after:
            raise Killed

    with pytest.raises(Killed):
        training.run(paths, s, tmp_path / "run", progress=False, on_epoch_end=kill)
    return tmp_path / "run" / "resume.pt"


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_resume_state_loads_on_the_cpu_and_restores_onto_another_device(tmp_path):
    """A job on a GPU resumes: the saved generator state stays a CPU byte tensor (torch.set_rng_state refuses
    any
    other), the weights and optimiser state go to the model's device (here `meta`, standing for CUDA)."""
    paths = synthetic_features(tmp_path, n=300)
    s = spec("dfnn", "bce", epochs=3)
    resume = _killed_run(tmp_path, paths, s)
    data = training.load_dataset(paths, training.feature_names(0.0), 0)
    state = training.load_resume(resume, training.resume_key(s, data))
    assert state is not None and state["epoch"] == 2
    assert state["rng"]["cpu"].device.type == "cpu" and state["rng"]["cpu"].dtype == torch.uint8
    from hzg.learn.models import build_model

    model = build_model("dfnn", len(data.features), **s.hparams).to("meta")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(999)  # something else than the saved state
    history, best, start = training.restore(state, model, optimiser)
    assert start == 3 and len(history) == 2 and best["epoch"] in (0, 2)
    assert torch.equal(torch.get_rng_state(), state["rng"]["cpu"])
    assert all(p.device.type == "meta" for p in model.parameters())
    assert all(
        v.device.type == "meta" for st in optimiser.state.values() for k, v in st.items() if k != "step"
    )


def test_cuda_generator_states_are_saved_and_restored(monkeypatch):
    """With CUDA in use (mocked: no GPU here) the state of every CUDA generator is saved and restored."""
    saved = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [t.clone() for t in saved])
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda state, device: restored.__setitem__(device, state)
    )
    states = training.rng_states()
    assert [t.tolist() for t in states["cuda"]] == [[1, 2, 3], [4, 5]]
    training.set_rng_states(states)
    assert {d: t.tolist() for d, t in restored.items()} == {0: [1, 2, 3], 1: [4, 5]}
    assert all(t.device.type == "cpu" for t in restored.values())


def test_cuda_states_without_cuda_are_logged_not_fatal(caplog):
    states = {"cpu": torch.get_rng_state(), "cuda": [torch.zeros(4, dtype=torch.uint8)]}
    training.set_rng_states(states)
    assert "1 CUDA generator states and 0 CUDA devices" in caplog.text


def test_resume_is_keyed_on_the_inputs_and_the_code(tmp_path, monkeypatch):
    paths = synthetic_features(tmp_path, n=300)
    s = spec("dfnn", "bce", epochs=3)
    data = training.load_dataset(paths, training.feature_names(0.0), 0)
    key = training.resume_key(s, data)
    data.weight = data.weight.copy()
    data.weight[0] *= 2.0  # a selection or weight edit upstream
    assert training.resume_key(s, data) != key
    data.weight[0] /= 2.0
    assert training.resume_key(s, data) == key
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert training.resume_key(s, data) != key


def test_stale_resume_is_ignored_and_training_starts_fresh(tmp_path, caplog):
    paths = synthetic_features(tmp_path, n=300)
    s = spec("dfnn", "bce", epochs=3)
    resume = _killed_run(tmp_path, paths, s)
    (tmp_path / "new").mkdir()
    fresh_paths = synthetic_features(tmp_path / "new", n=300, seed=1)  # the inputs changed since the kill
    fresh = training.run(fresh_paths, s, tmp_path / "fresh", progress=False)
    out = training.run(fresh_paths, s, resume.parent, progress=False)
    assert "training from scratch: it was written for other inputs" in caplog.text
    pd.testing.assert_frame_equal(
        pd.read_csv(out["history"]).drop(columns="seconds"),
        pd.read_csv(fresh["history"]).drop(columns="seconds"),
    )


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_corrupt_resume_is_ignored_and_training_starts_fresh(tmp_path, caplog, content):
    paths = synthetic_features(tmp_path, n=300)
    s = spec("dfnn", "bce", epochs=2)
    resume = _killed_run(tmp_path, paths, s, after=1)
    if content is None:  # truncated mid-file
        resume.write_bytes(resume.read_bytes()[: resume.stat().st_size // 2])
    else:
        resume.write_bytes(content)
    out = training.run(paths, s, resume.parent, progress=False)
    assert f"ignoring {resume}, training from scratch" in caplog.text
    assert pd.read_csv(out["history"]).epoch.tolist() == [1, 2]


# ---------------------------------------------------------------- checkpoints run no code
class _Payload:
    """Unpickling this runs code: it creates the file named."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_carrying_a_pickled_object_is_refused_and_not_run(tmp_path):
    paths = synthetic_features(tmp_path, n=300)
    out = training.run(paths, spec("xgboost", "bce"), tmp_path / "x", progress=False)
    ckpt = checkpoints.load(out["checkpoint"])
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    torch.save({**ckpt, "extra": _Payload(str(marker))}, evil)
    for load in (checkpoints.load, Classifier.load):
        with pytest.raises(
            checkpoints.CheckpointError, match=rf"refusing to load {evil}: it holds objects other"
        ):
            load(evil)
    from hzg.results import evaluation

    with pytest.raises(checkpoints.CheckpointError):
        evaluation.best_epoch(evil)
    assert not marker.exists()
    assert training.load_resume(evil, "any") is None  # a resume file like it: ignored, never run
    assert not marker.exists()


def test_bdt_is_stored_as_arrays_with_the_same_scores(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=2000) > 0).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 2000)
    model = boosted.fit_bdt(x, y, w, {**CONFIG["models"]["bdt"], "n_trees": 40}, seed=1)
    blob = boosted.to_bytes(model)
    assert blob.startswith(b"{")  # JSON, not a pickle
    loaded = boosted.from_bytes("bdt", blob)
    assert isinstance(loaded, boosted.ArrayBDT)
    xt = rng.normal(size=(3000, 5)).astype(np.float32) * 2
    np.testing.assert_allclose(
        boosted.bdt_scores(loaded, xt), boosted.bdt_scores(model, xt), rtol=1e-12, atol=1e-15
    )
    staged = boosted.bdt_staged_scores(model, xt, [5, 40])
    mine = list(loaded.staged_decision(xt))
    for stage in (5, 40):
        np.testing.assert_allclose(boosted._binary_softmax(mine[stage - 1])[:, 1], staged[stage], rtol=1e-12)
    import pickle

    with pytest.raises(ValueError, match="not stored as JSON arrays"):
        boosted.from_bytes("bdt", pickle.dumps(model))


@pytest.mark.parametrize("name", ["xgboost", "bdt"])
def test_tree_hyper_parameters_come_from_the_config_and_name_a_missing_key(name):
    section = CONFIG["models"][name]
    assert boosted.hyper_parameters(section, name) == section
    missing = {k: v for k, v in section.items() if k != "max_depth"}
    with pytest.raises(ValueError, match=rf"config key\(s\) models\.{name}\.max_depth missing"):
        boosted.hyper_parameters(missing, name)
    first = boosted.HPARAM_KEYS[name][0]
    with pytest.raises(ValueError, match=f"models.{name}.{first}, "):  # a missing section: every key named
        boosted.hyper_parameters(None, name)
    with pytest.raises(
        ValueError, match=rf"unknown hyper-parameter\(s\) \['depth'\] in config key models\.{name}"
    ):
        boosted.hyper_parameters({**section, "depth": 3}, name)
    fit = boosted.fit_bdt if name == "bdt" else boosted.fit_xgboost
    x, y, w = np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.ones(4)
    with pytest.raises(ValueError, match=f"models.{name}.max_depth"):
        fit(x, y, w, missing, seed=1) if name == "bdt" else fit(x, y, w, missing, seed=1, threads=1)


def test_significance_mass_range_holds_every_window_so_background_outside_it_never_counts():
    rng = np.random.default_rng(7)
    n_s, n_b = 3000, 20000
    score = rng.random(n_s + n_b)
    mass = np.r_[rng.normal(125, 2, n_s), 100 + rng.exponential(30, n_b) % 80]
    weight = np.r_[np.full(n_s, 0.01), rng.uniform(0.5, 2.0, n_b)]
    y = np.r_[np.ones(n_s), np.zeros(n_b)].astype(bool)
    lo, hi = metrics.significance_mass_range(score[y], mass[y], weight[y], 8)
    assert 110 < lo < 125 < hi < 140
    full = metrics.binned_significance_detail(score, mass, weight, y, 8)
    garbage = score.copy()
    outside = ~y & ((mass < lo) | (mass > hi))
    garbage[outside] = rng.random(outside.sum())  # any score: these events fall in no window
    assert metrics.binned_significance_detail(garbage, mass, weight, y, 8) == full
    assert np.isnan(metrics.significance_mass_range(score[:3], mass[:3], np.zeros(3), 8)[0])


@pytest.mark.parametrize(
    ("model", "loss", "cap"), [("etn", "bce", None), ("dfnn", "bce_disco", None), ("dfnn", "bce_disco", 500)]
)
def test_validation_pass_equals_scoring_every_validation_event(tmp_path, model, loss, cap):
    paths = synthetic_features(tmp_path, n=2500)
    s = spec(model, loss, validation_loss_events=cap)
    data = training.load_dataset(paths, training.feature_names(s.disco_lambda, s.sigma_m), 0)
    prep = training._prepare_data(data, s, torch.device("cpu"))
    torch.manual_seed(0)
    net, _ = training._build_model_and_optimiser(s, prep.x.shape[1], torch.device("cpu"))
    args = training._loss_args(s)
    loss_value, z = training._validate(net, prep, data, args, 8)
    v = prep.val_np
    every = training.predict_neural(net, prep.x[torch.from_numpy(np.flatnonzero(v))]).numpy()
    expected = training.split_significance(every, data.mass[v], prep.eval_w[v], data.y[v], 8)
    assert z == pytest.approx(expected, rel=1e-6) and np.isfinite(loss_value)
    # the validation loss: the in-scope validation events, at most `cap` of them
    in_scope = (data.split == 1) & training.training_scope(data.mass, data.y, s.disco_lambda, s.training)
    assert len(prep.val_idx) == (in_scope.sum() if cap is None else cap)
    assert int((prep.w_val > 0).sum()) == len(prep.val_idx)


@pytest.mark.parametrize("model", ["xgboost", "bdt"])
def test_tree_history_equals_scoring_every_event_at_every_stage(tmp_path, model):
    paths = synthetic_features(tmp_path, n=1500)
    s = spec(model, "bce")
    s = training.RunSpec(
        **{**s.__dict__, "hparams": {**s.hparams, **({"n_trees": 60} if model == "bdt" else {})}}
    )
    data = training.load_dataset(paths, training.feature_names(0.0), 0)
    result = training.train_tree(data, s)
    trained = result["model"]
    eval_w = metrics.split_scaled_weights(data.weight, data.y, data.split)
    for row in result["history"]:
        k = row["epoch"]
        every = (
            boosted.xgboost_scores(trained, data.x, k)
            if model == "xgboost"
            else boosted.bdt_staged_scores(trained, data.x, [k])[k]
        )
        assert row["val_significance"] == training.validation_significance(every, data, eval_w, 8)


def test_tree_training_events_are_capped_uniformly_and_reproducibly(tmp_path):
    selected = np.zeros(1000, bool)
    selected[::2] = True
    capped = training.capped_training_events(selected, 100, seed=3)
    assert capped.sum() == 100 and not np.any(capped & ~selected)
    assert np.array_equal(capped, training.capped_training_events(selected, 100, seed=3))
    assert np.array_equal(training.capped_training_events(selected, None, 3), selected)
    assert np.array_equal(training.capped_training_events(selected, 10_000, 3), selected)
    # the BDT trains on the capped events: its hyper-parameters reach it without the cap key
    paths = synthetic_features(tmp_path, n=1500)
    s = spec("bdt", "bce")
    s = training.RunSpec(**{**s.__dict__, "hparams": {**s.hparams, "n_trees": 20, "max_train_events": 300}})
    data = training.load_dataset(paths, training.feature_names(0.0), 0)
    result = training.train_tree(data, s)
    assert result["model"][-1].n_estimators == 20


def test_a_neural_models_learning_rate_drives_adam_and_never_reaches_the_model():
    hparams, tcfg = model_training("etn", CONFIG["models"]["etn"], CONFIG["training"])
    assert (
        "learning_rate" not in hparams and tcfg["learning_rate"] == CONFIG["models"]["etn"]["learning_rate"]
    )
    assert CONFIG["training"]["learning_rate"] != tcfg["learning_rate"]  # the config itself is untouched
    run = spec("etn", "bce", epochs=1)
    model, optimiser = training._build_model_and_optimiser(run, 12, torch.device("cpu"))
    assert optimiser.param_groups[0]["lr"] == CONFIG["models"]["etn"]["learning_rate"]
    # a model without its own keeps training.learning_rate; a tree's learning_rate stays its shrinkage
    assert model_training("dfnn", CONFIG["models"]["dfnn"], CONFIG["training"]) == (
        CONFIG["models"]["dfnn"],
        CONFIG["training"],
    )
    tree, tree_tcfg = model_training("xgboost", CONFIG["models"]["xgboost"], CONFIG["training"])
    assert (
        tree["learning_rate"] == CONFIG["models"]["xgboost"]["learning_rate"]
        and tree_tcfg == CONFIG["training"]
    )


def test_scoring_threads_are_pinned_by_every_script_that_scores():
    from pathlib import Path

    from hzg.learn.classifier import pin_scoring_threads

    before = torch.get_num_threads()
    try:
        pin_scoring_threads(1)
        assert torch.get_num_threads() == 1
        pin_scoring_threads(0)  # a rule without threads: one
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    scoring = [  # scripts that run a network: a Classifier's, or the mass scan's evaluation (it loads them)
        p
        for p in scripts.glob("*.py")
        if "Classifier" in p.read_text() or "mass_scan.evaluate_run" in p.read_text()
    ]
    assert {p.name for p in scoring} >= {"fit.py", "friends.py", "interpret.py", "evaluate_mass_scan.py"}
    for path in scoring:
        assert "pin_scoring_threads(snakemake.threads)" in path.read_text(), path.name


def test_bdt_scores_are_scikit_learns_bit_for_bit():
    """boosted.bdt_scores / bdt_staged_scores sum the trees' votes from their leaf indices: the same floats as
    scikit-learn's predict_proba and staged_predict_proba, in and out of the training sample."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 4))
    y = (x[:, 0] - 0.7 * x[:, 2] + rng.normal(size=3000) > 0).astype(int)
    w = rng.uniform(0.2, 2.0, 3000)
    model = boosted.fit_bdt(x, y, w, {**CONFIG["models"]["bdt"], "n_trees": 30}, seed=2)
    other = rng.normal(size=(5000, 4)) * 1.5
    for sample in (x, other):
        assert np.array_equal(boosted.bdt_scores(model, sample), model.predict_proba(sample)[:, 1])
    grid, boost = model[0], model[-1]
    reference = {i: p[:, 1] for i, p in enumerate(boost.staged_predict_proba(grid.transform(other)), start=1)}
    staged = boosted.bdt_staged_scores(model, other, [1, 5, 30])
    assert sorted(staged) == [1, 5, 30]
    for stage, scores in staged.items():
        assert np.array_equal(scores, reference[stage]), stage


@pytest.mark.parametrize("depth", [1, 3, 4, 5])
def test_bdt_tree_tables_give_the_walks_votes_at_every_depth(depth):
    """The trees' tables (8-bit codes up to 8 splits, 16-bit up to 16) and the node-by-node walk of the trees
    too deep for a table (depth 5: up to 31 splits) vote as scikit-learn's trees, in the pipeline and in the
    BDT loaded from its arrays; the one-pass final + staged scores of the training are the two functions'."""
    rng = np.random.default_rng(depth)
    x = rng.normal(size=(4000, 6))
    y = (x[:, 0] * x[:, 1] - 0.5 * x[:, 2] + rng.normal(size=4000) > 0).astype(int)
    w = rng.uniform(0.2, 2.0, 4000)
    hp = {**CONFIG["models"]["bdt"], "n_trees": 12, "max_depth": depth, "min_node_fraction": 0.001}
    model = boosted.fit_bdt(x, y, w, hp, seed=4)
    splits = [int((e.tree_.children_left >= 0).sum()) for e in model[-1].estimators_]
    assert max(splits) <= 2**depth - 1
    if depth == 4:
        assert max(splits) > 8  # 16-bit codes are exercised
    if depth == 5:
        assert max(splits) > boosted.TABLE_MAX_SPLITS  # the walk is exercised
    other = rng.normal(size=(3000, 6)) * 1.5
    assert np.array_equal(boosted.bdt_scores(model, other), model.predict_proba(other)[:, 1])
    loaded = boosted.from_bytes("bdt", boosted.to_bytes(model))
    mine = boosted.bdt_scores(loaded, other)
    np.testing.assert_allclose(mine, boosted.bdt_scores(model, other), rtol=1e-12)
    for est, (_, votes) in zip(model[-1].estimators_, boosted._tree_votes(model, other)):
        assert np.array_equal(votes > 0, est.predict(model[0].transform(other)) == 1)
    needed = rng.uniform(size=len(other)) < 0.3
    final, staged = boosted.bdt_scores_and_staged(model, other, needed, [1, 7, 12])
    assert np.array_equal(final, boosted.bdt_scores(model, other))
    alone = boosted.bdt_staged_scores(model, other[needed], [1, 7, 12])
    assert all(np.array_equal(staged[k], alone[k]) for k in (1, 7, 12))


def test_training_flushes_denormals_and_restores_the_state_after():
    import torch

    from hzg.learn import training

    torch.set_flush_denormal(False)
    assert not training.denormals_flushed()
    with training.flushed_denormals() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush denormals")
        assert training.denormals_flushed()
        assert (torch.tensor([1e-30]) * 1e-9).item() == 0.0
    assert not training.denormals_flushed()  # other code (hypothesis) needs IEEE subnormals
    with training.flushed_denormals():
        with training.flushed_denormals():
            pass
        assert training.denormals_flushed()  # a nested block leaves the outer one's state
    assert not training.denormals_flushed()


# ---------------------------------------------------------------- reading the feature files
def test_load_dataset_reads_only_the_columns_of_the_run(tmp_path, monkeypatch):
    """The features of the run, its split, weight, mass, label and event key: not the other columns."""
    paths = synthetic_features(tmp_path, n=300)
    read = []
    real = pd.read_parquet

    def recording(path, columns=None, **kwargs):
        read.append(columns)
        return real(path, columns=columns, **kwargs)

    monkeypatch.setattr(training.pd, "read_parquet", recording)
    features = training.feature_names(0.0)
    data = training.load_dataset(paths, features, 1)
    wanted = {*features, "split_1", "weight", "mllg", "is_signal", *training.KEY_COLUMNS}
    assert len(read) == len(paths) and all(set(c) == wanted for c in read)
    everything = pd.concat([real(p) for p in paths], ignore_index=True)
    np.testing.assert_array_equal(data.x, everything[features].to_numpy(np.float32))
    np.testing.assert_array_equal(data.split, everything["split_1"].to_numpy(np.int8))


def test_load_dataset_names_the_file_that_lacks_a_column(tmp_path):
    paths = synthetic_features(tmp_path, n=300)
    frame = pd.read_parquet(paths[-1]).drop(columns=["weight"])
    frame.to_parquet(paths[-1])
    with pytest.raises(KeyError, match=rf"lack columns \['weight'\].*{paths[-1].name}: \['weight'\]"):
        training.load_dataset(paths, training.feature_names(0.0), 0)


def test_load_dataset_names_a_missing_or_corrupt_file(tmp_path):
    paths = synthetic_features(tmp_path, n=300)
    paths[0].write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=f"cannot read the Parquet file {paths[0]}"):
        training.load_dataset(paths, training.feature_names(0.0), 0)
    with pytest.raises(FileNotFoundError, match="nowhere.parquet does not exist"):
        training.load_dataset([tmp_path / "nowhere.parquet"], training.feature_names(0.0), 0)


def test_the_cpu_adam_is_pytorchs_default_loop_bit_for_bit_and_cuda_gets_the_fused_one():
    from hzg.learn.models import build_model

    x = torch.randn(256, 12, generator=torch.Generator().manual_seed(0))
    y = (torch.arange(256) % 2).float()
    params = []
    pytorch_default = lambda p: torch.optim.Adam(p, lr=6e-3)  # noqa: E731
    for make in (pytorch_default, lambda p: training.adam(p, 6e-3, torch.device("cpu"))):
        torch.manual_seed(1)
        model = build_model("etn", 12)
        opt = make(model.parameters())
        for _ in range(4):
            loss = torch.nn.functional.binary_cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        params.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*params))
    cpu = training.adam([torch.zeros(2, requires_grad=True)], 1e-3, torch.device("cpu")).defaults
    assert cpu["foreach"] is True and not cpu["fused"]
    cuda = training.adam([torch.zeros(2, requires_grad=True)], 1e-3, torch.device("cuda")).defaults
    assert cuda["fused"] is True and not cuda["foreach"]
