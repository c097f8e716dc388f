"""Conservation on the ci run: every event and weight is accounted for from the n-tuple through the cutflow,
the skim,
the features and the trial splits to the scores (friend trees: tests/test_friends.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import uproot
from hzg.config_checks import load_config

pytestmark = pytest.mark.slow


def test_cutflow_conserves_events_and_weights_from_ntuple_to_skim(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    for sample, spec in cfg["samples"].items():
        for chunk in range(spec["generate"]["n_chunks"]):
            events = uproot.open(ci_run / f"results/mc/{sample}/{chunk}.root")["Events"]
            weights = events["genWeight"].array(library="np")
            flow = json.loads((ci_run / f"results/skim/{sample}/{chunk}.cutflow.json").read_text())["cutflow"]
            skim = uproot.open(ci_run / f"results/skim/{sample}/{chunk}.root")["Skim"].arrays(
                ["entry", "weight"], library="np"
            )
            assert flow[0]["n_raw"] == events.num_entries
            assert math.isclose(flow[0]["sum_weights"], weights.sum(), rel_tol=1e-12)
            assert all(a["n_raw"] >= b["n_raw"] for a, b in zip(flow, flow[1:]))
            assert flow[-1]["n_raw"] == len(skim["entry"])
            assert math.isclose(flow[-1]["sum_weights"], skim["weight"].sum(), rel_tol=1e-12, abs_tol=1e-12)
            np.testing.assert_array_equal(
                skim["weight"], weights[skim["entry"]]
            )  # each event keeps its weight


def test_features_hold_exactly_the_skimmed_events_and_the_splits_partition_them(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    for sample, spec in cfg["samples"].items():
        frame = pd.read_parquet(ci_run / f"results/features/{sample}.parquet")
        keys = set()
        for chunk in range(spec["generate"]["n_chunks"]):
            entries = uproot.open(ci_run / f"results/skim/{sample}/{chunk}.root")["Skim"]["entry"].array(
                library="np"
            )
            keys |= {(chunk, int(e)) for e in entries}
        assert len(frame) == len(keys) and set(zip(frame["chunk"], frame["entry"])) == keys
        for trial in range(cfg["split"]["n_trials"]):
            split = frame[f"split_{trial}"].to_numpy()
            assert set(np.unique(split)) == {0, 1, 2}  # each event in exactly one of train, validation, test
            counts = np.bincount(split, minlength=3)
            assert counts.sum() == len(frame)
            assert np.all(np.abs(counts - len(frame) / 3) < 5 * math.sqrt(len(frame) * 2 / 9)), counts
        other = [c for c in frame.columns if c.startswith("split_")]
        assert len({tuple(frame[c]) for c in other}) == len(other)  # trials split differently


def test_every_trial_scores_every_event_once(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    frames = pd.concat([pd.read_parquet(ci_run / f"results/features/{s}.parquet") for s in cfg["samples"]])
    keys = frames.set_index(["sample_id", "chunk", "entry"]).index
    for run in cfg["runs"]:
        for trial in range(cfg["split"]["n_trials"]):
            scores = pd.read_parquet(
                ci_run / f"results/models/{run['model']}_{run['loss']}/trial{trial}/scores.parquet"
            )
            idx = scores.set_index(["sample_id", "chunk", "entry"]).index
            assert idx.is_unique and idx.sort_values().equals(keys.sort_values())
            merged = scores.merge(
                frames[["sample_id", "chunk", "entry", f"split_{trial}", "weight"]],
                on=["sample_id", "chunk", "entry"],
            )
            np.testing.assert_array_equal(merged["split"], merged[f"split_{trial}"])
            np.testing.assert_array_equal(merged["weight_x"], merged["weight_y"])
