"""Cross-key config constraints are refused before any job runs, with the keys named."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hzg.config_checks import ConfigError, canonical, canonicalise_config, check_config, load_config, problems

REPO = Path(__file__).resolve().parents[1]
CI = load_config(REPO / "config/ci.yaml")


def edited(*edits):
    cfg = copy.deepcopy(CI)
    for path, value in edits:
        node = cfg
        *keys, last = path.split(".")
        for key in keys:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return cfg


@pytest.mark.parametrize("name", ["ci", "config", "paper", "methods", "mass_scan"])
def test_shipped_configs_pass(name):
    assert problems(load_config(REPO / f"config/{name}.yaml")) == []


@pytest.mark.parametrize(
    "edits, message",
    [
        ([("split.n_trials", 4)], "split.n_trials is 4 but split.seeds has only 3 seeds"),
        ([("split.seeds", [11, 11, 33])], "split.seeds [11, 11, 33] repeat a seed"),
        ([("fit.trial", 3)], "fit.trial is 3 but split.n_trials is 3 (trials 0 to 2)"),
        ([("friends.trial", 7)], "friends.trial is 7 but split.n_trials is 3"),
        ([("evaluation.roc_trial", 3)], "evaluation.roc_trial is 3 but split.n_trials is 3"),
        ([("split.n_trials", 1), ("fit.trial", 1)], "fit.trial is 1 but split.n_trials is 1 (trials 0 to 0)"),
        ([("resolution_map.sample", "signl")], "resolution_map.sample 'signl' is not one of samples"),
        ([("runs.0.loss", "bce_dsco")], "runs[0].loss 'bce_dsco' is not one of losses"),
        ([("runs.2.loss", "bce_disco")], "runs[2]: model 'xgboost' supports only a BCE loss without DisCo"),
        ([("runs.1.model", "etn"), ("runs.1.loss", "bce")], "runs[1] repeats etn_bce"),
        ([("models.xgboost", {})], "runs[2]: model 'xgboost' takes its hyper-parameters from models.xgboost"),
        (
            [("training.narrow_window", [130.0, 120.0])],
            "training.narrow_window [130.0, 120.0] is not an interval",
        ),
        ([("training.narrow_window", [90.0, 130.0])], "training.narrow_window [90.0, 130.0] is not inside"),
        ([("training.events_per_epoch", 1)], "training.events_per_epoch is 1"),
        (
            [("training.events_per_epoch", None)],
            "runs[1] (etn_bce_disco): losses.bce_disco.narrow_share is 0.3 but it needs "
            "training.events_per_epoch (not null)",
        ),
        (
            [("training.data_scope", False)],
            "runs[1] (etn_bce_disco): losses.bce_disco.narrow_share is 0.3 but it needs training.data_scope;",
        ),
        (
            [("losses.bce_disco.disco_lambda", 0.0)],
            "narrow_share is 0.3 but it needs losses.bce_disco.disco_lambda > 0;",
        ),
        ([("selection.mllg_min", 180.0)], "selection.mllg_min 180.0 is not below selection.mllg_max 180.0"),
        (
            [("generation.level", "hadron"), ("generation.qcd_final_state_shower", False)],
            "generation.qcd_final_state_shower is false but generation.level is 'hadron'",
        ),
        (
            [
                (f"samples.{name}.kind", "signal")
                for name, spec in CI["samples"].items()
                if spec["kind"] == "background"
            ],
            "at least one signal and one background sample",
        ),
        (
            [("fit.variations", {})],
            "fit.systematics.shape lists 'photon_energy_scale' but fit.variations has no size",
        ),
    ],
)
def test_each_cross_key_constraint_is_refused_with_its_keys(edits, message):
    with pytest.raises(ConfigError) as err:
        check_config(edited(*edits))
    assert message in str(err.value)


def test_all_problems_are_reported_at_once():
    found = problems(edited(("split.n_trials", 5), ("fit.trial", 6), ("friends.trial", 6)))
    assert len(found) == 3


@pytest.mark.slow
def test_snakemake_refuses_the_config_before_any_job(tmp_path):
    """The KeyError of the review (n_trials > seeds, met in training) is now a config error of the dry run."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edited(("split.n_trials", 4), ("fit.trial", 3))))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "split.n_trials is 4 but split.seeds has only 3 seeds" in out
    assert "Job stats" not in out


def test_canonical_sorts_every_mapping_and_keeps_lists_and_the_samples_order():
    a = {"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 0}
    b = {"a": 0, "b": {"x": [{"p": 2, "q": 1}], "y": 1}}
    assert repr(canonical(a)) == repr(canonical(b)) == "{'a': 0, 'b': {'x': [{'p': 2, 'q': 1}], 'y': 1}}"
    assert canonical({"l": [3, 1, 2]}) == {"l": [3, 1, 2]}
    cfg = {
        "split": {"seeds": [1], "n_trials": 1},
        "samples": {"zz": {"kind": "signal", "generate": {}}, "aa": {}},
    }
    canonicalise_config(cfg)
    assert list(cfg) == ["samples", "split"] and list(cfg["split"]) == ["n_trials", "seeds"]
    assert list(cfg["samples"]) == ["zz", "aa"] and list(cfg["samples"]["zz"]) == ["generate", "kind"]


def _same_leaves(default, overlay, path=""):
    """Keys of `overlay` whose value equals the default's (an overlay should hold only differences)."""
    out = []
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(default.get(key), dict) and path + key != "samples":
            out += _same_leaves(default[key], value, f"{path}{key}.")
        elif key in default and default[key] == value:
            out.append(path + key)
    return out


@pytest.mark.parametrize("name", ["ci", "paper", "methods"])
def test_ci_and_paper_are_overlays_holding_only_differences(name):
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    overlay = yaml.safe_load((REPO / f"config/{name}.yaml").read_text())
    assert _same_leaves(default, overlay) == []


def test_an_overlay_merges_key_by_key_and_replaces_samples_whole(tmp_path):
    from hzg.config_checks import merge_overlay

    default = {"training": {"epochs": 5, "seed": 1}, "samples": {"s": {"kind": "signal", "xsec_pb": 1.0}}}
    merged = merge_overlay(
        default, {"training": {"epochs": 7}, "samples": {"s": {"kind": "signal", "k_factor": 2}}}
    )
    assert merged == {
        "training": {"epochs": 7, "seed": 1},
        "samples": {"s": {"kind": "signal", "k_factor": 2}},
    }


def test_fsr_slice_needs_both_drell_yan_samples_and_its_pt():
    assert CI["generation"]["fsr_slice_pt"] and CI["samples"]["background_fsr_jet"]
    without_slice = copy.deepcopy(CI)
    del without_slice["samples"]["background_fsr_jet"]
    assert any(
        "no sample generates the slice (process drellyan_jet_fsr)" in p for p in problems(without_slice)
    )
    without_below = copy.deepcopy(CI)
    del without_below["samples"]["background_fsr"]
    assert any("no sample generates drellyan_fsr" in p for p in problems(without_below))
    assert any(
        "generate drellyan_jet_fsr" in p and "generation.fsr_slice_pt is null" in p
        for p in problems(edited(("generation.fsr_slice_pt", None)))
    )
    # unsliced: drellyan_fsr alone, no slice pT
    unsliced = edited(("generation.fsr_slice_pt", None))
    del unsliced["samples"]["background_fsr_jet"]
    assert problems(unsliced) == []
