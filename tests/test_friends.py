"""Friend trees: entry-for-entry alignment with the input n-tuple, scores equal to the training
stage's, readable as a friend by ROOT itself; bad input stops with a clear error and no output."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import uproot

from hzg import io
from hzg.config_checks import load_config

pytestmark = pytest.mark.slow


def _runs(cfg):
    return [f"{r['model']}_{r['loss']}" for r in cfg["runs"]]


def test_friend_has_every_entry_in_order_with_scores_of_every_run(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    for sample in cfg["samples"]:
        for chunk in range(cfg["samples"][sample]["generate"]["n_chunks"]):
            n_input = uproot.open(ci_run / f"results/mc/{sample}/{chunk}.root")["Events"].num_entries
            friend = uproot.open(ci_run / f"results/friends/{sample}/{chunk}.root")["Friends"].arrays(
                library="pd"
            )
            assert len(friend) == n_input
            np.testing.assert_array_equal(friend["entry"], np.arange(n_input))
            assert (friend["chunk"] == chunk).all()
            skim = uproot.open(ci_run / f"results/skim/{sample}/{chunk}.root")["Skim"].arrays(
                ["entry"], library="np"
            )
            np.testing.assert_array_equal(np.flatnonzero(friend["passed_preselection"]), skim["entry"])
            for run in _runs(cfg):
                col = friend[f"score_{run}"]
                assert (col[~friend["passed_preselection"]] == -1.0).all()
                assert col[friend["passed_preselection"]].between(0, 1).all()


def test_friend_scores_equal_the_training_stage_scores(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    friends = pd.concat(
        [
            uproot.open(p)["Friends"].arrays(library="pd")
            for p in sorted((ci_run / "results/friends").glob("*/*.root"))
        ]
    )
    friends = friends[friends["passed_preselection"]]
    for run in _runs(cfg):
        scores = pd.read_parquet(
            ci_run / f"results/models/{run}/trial{cfg['friends']['trial']}/scores.parquet"
        )
        merged = friends.merge(scores, on=["sample_id", "chunk", "entry"], validate="one_to_one")
        assert len(merged) == len(scores) == len(friends)
        assert friends[f"score_{run}"].dtype == np.float64  # as the models give them: no float32 rounding
        if run.split("_")[0] in ("bdt", "xgboost"):  # float64 trees' scores: float64 agreement, not float32's
            np.testing.assert_allclose(merged[f"score_{run}"], merged["score"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(merged[f"score_{run}"], merged["score"], rtol=1e-5, atol=1e-6)


def test_a_chunk_where_no_event_passes_carries_every_feature_column(ci_run):
    """An n-tuple chunk without a selected event still has the features stage's columns (an empty frame),
    so that every classifier scores it: one reading sigma_m / m_llg (features.sigma_m: relative) and one
    reading m_llg (a mass-parametrised network's input). Before, such a chunk stopped the job."""
    from hzg import checkpoints
    from hzg.data import selection
    from hzg.learn.classifier import Classifier
    from hzg.results import friends as friend_trees

    cfg = load_config(ci_run / "config/ci.yaml")
    checkpoint = checkpoints.load(ci_run / "results/models/xgboost_bce/trial0/checkpoint.pt")
    renamed = [
        Classifier({**checkpoint, "features": [new if f == old else f for f in checkpoint["features"]]})
        for old, new in (("sigma_m", "sigma_m_over_m"), ("cos_theta", "mllg"))
    ]
    events = io.read_events(ci_run / "results/mc/background/0.root", cfg["branch_map"])
    res_map = json.loads((ci_run / "results/features/resolution_map.json").read_text())
    nothing = selection.Cuts.from_config({**cfg["selection"], "mllg_min": 1e5, "mllg_max": 2e5})
    cols = friend_trees.friend_columns(events, nothing, res_map, renamed, "background", 0)
    assert not cols["passed_preselection"].any()
    for clf in renamed:
        assert (cols[friend_trees.score_branch(clf)] == -1.0).all()
    passing = friend_trees.friend_columns(
        events, selection.Cuts.from_config(cfg["selection"]), res_map, renamed, "background", 0
    )
    assert passing["passed_preselection"].any()


ROOT_SCRIPT = r"""
import sys, ROOT
ntuple, friend, branch = sys.argv[1:4]
f = ROOT.TFile.Open(ntuple)
events = f.Get("Events")
events.AddFriend("Friends", friend)
n_pass = events.Draw("Friends." + branch, "Friends.passed_preselection && Friends.entry == Entry$", "goff")
df = ROOT.RDataFrame(events)
mean = df.Filter("Friends.passed_preselection").Mean("Friends." + branch).GetValue()
print(events.GetEntries(), n_pass, mean)
"""


def test_root_reads_the_score_through_addfriend_and_rdataframe(ci_run, tmp_path):
    pytest.importorskip("ROOT", reason="ROOT (the `root` package of the test extras) is not installed")
    cfg = load_config(ci_run / "config/ci.yaml")
    run = _runs(cfg)[0]
    script = tmp_path / "read.py"
    script.write_text(ROOT_SCRIPT)
    ntuple = ci_run / "results/mc/signal/0.root"
    friend = ci_run / "results/friends/signal/0.root"
    out = subprocess.run(
        [sys.executable, str(script), str(ntuple), str(friend), f"score_{run}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    n_entries, n_pass, mean = out.stdout.split()[-3:]
    expected = uproot.open(friend)["Friends"].arrays(library="pd")
    passed = expected[expected["passed_preselection"]]
    assert int(n_entries) == len(expected)
    assert int(n_pass) == len(passed)  # every passing entry matched its own Entry$ through the friend
    assert float(mean) == pytest.approx(passed[f"score_{run}"].mean(), rel=1e-5)


def test_truncated_input_is_refused_with_the_file_name(ci_run, tmp_path):
    source = ci_run / "results/mc/background/0.root"
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(io.InputError, match=str(truncated)):
        io.read_events(truncated, "nanoaod")


def test_one_job_writes_the_friend_tree_of_every_ntuple_of_its_sample(ci_run, tmp_path):
    """friends.write_sample_friends (the rule's job): the same trees as the workflow's, one per n-tuple and in
    chunk order; n-tuples and chunks that do not pair up are refused with the sample."""
    import json

    from hzg.data import selection
    from hzg.learn.classifier import Classifier
    from hzg.results import friends

    cfg = load_config(ci_run / "config/ci.yaml")
    n = cfg["samples"]["signal"]["generate"]["n_chunks"]
    ntuples = [ci_run / f"results/mc/signal/{c}.root" for c in range(n)]
    checkpoints = [  # in the order of runs, as the workflow gives them
        ci_run / f"results/models/{r['model']}_{r['loss']}/trial{cfg['friends']['trial']}/checkpoint.pt"
        for r in cfg["runs"]
    ]
    args = dict(
        sample="signal",
        branch_map=io.resolve_branch_map("nanoaod"),
        cuts=selection.Cuts.from_config(cfg["selection"]),
        res_map=json.loads((ci_run / "results/features/resolution_map.json").read_text()),
        classifiers=[Classifier.load(p) for p in checkpoints],
        tree=cfg["friends"]["tree"],
        progress=False,
    )
    written = friends.write_sample_friends(ntuples, list(range(n)), tmp_path / "signal", **args)
    assert [p.name for p in written] == [f"{c}.root" for c in range(n)]
    for c in range(n):  # the same trees as the workflow's (scores up to the thread count's rounding)
        mine = uproot.open(tmp_path / f"signal/{c}.root")["Friends"].arrays(library="np")
        workflow = uproot.open(ci_run / f"results/friends/signal/{c}.root")["Friends"].arrays(library="np")
        assert list(mine) == list(workflow)
        for branch, values in workflow.items():
            if branch.startswith("score_"):
                np.testing.assert_allclose(mine[branch], values, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(mine[branch], values)
    with pytest.raises(ValueError, match="sample 'signal': 2 n-tuples for 1 chunks"):
        friends.write_sample_friends(ntuples[:2], [0], tmp_path / "x", **args)
