"""Reruns after a config edit: on the finished ci DAG, `snakemake -n` with one value changed lists exactly
the jobs that depend on that value (rerun triggers at their default: mtime, params, input, software-env,
code). Assertions are on rule names and wildcards, so they hold as rules are added downstream.

The edited config is written outside the run's directory and only dry runs are made, so the shared
`ci_run` (tests/conftest.py) is left as it was.
"""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hzg.config_checks import load_config

from conftest import snakemake  # noqa: E402  (the ci DAG runs once per session)

pytestmark = pytest.mark.slow
JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+\S[^\n]*\n?)*)", re.M)
# rules of the data side: none of them reads a trained model
DATA_SIDE = {
    "generate",
    "skim",
    "cutflow_table",
    "resolution_map",
    "features",
    "feature_plots",
    "physics_checks",
    "skim_variation",
    "features_variation",
}


def dry_run_jobs(work: Path, configfile: Path) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job `snakemake -n` would run, checked against its Job stats table."""
    proc = snakemake(work, "-n", "--configfile", str(configfile))
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return []
    jobs = []
    for m in JOB.finditer(out):
        wc = re.search(r"^[ \t]+wildcards: (.*)$", m.group(2), re.M)
        wildcards = dict(item.split("=", 1) for item in wc.group(1).split(", ")) if wc else {}
        jobs.append((m.group(1), wildcards))
    stats = re.search(r"Job stats:\n.*\n-+ +-+\n((?:\S+ +\d+\n)+)", out)
    assert stats, f"no Job stats table in the dry run:\n{out[-3000:]}"
    counts = {name: int(n) for name, n in (line.split() for line in stats.group(1).splitlines())}
    assert counts.pop("total") == len(jobs) and counts == Counter(r for r, _ in jobs), (counts, jobs)
    return jobs


def edited(cfg: dict, tmp_path: Path, name: str, *path_and_value) -> Path:
    """The config with one value replaced, written in the same key order (params compare as text)."""
    *keys, value = path_and_value
    new = yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False))
    node = new
    for key in keys[:-1]:
        node = node[key]
    assert keys[-1] in node
    node[keys[-1]] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(new, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def finished(ci_run, tmp_path_factory):
    """The finished ci run and its config; the config as rewritten here changes nothing by itself."""
    cfg = load_config(ci_run / "config/ci.yaml")
    same = edited(cfg, tmp_path_factory.mktemp("cfg"), "same", "luminosity_fb", cfg["luminosity_fb"])
    assert dry_run_jobs(ci_run, same) == [], "the finished ci run is not up to date (changed by a test?)"
    return ci_run, cfg


def test_disco_lambda_reruns_only_the_training_of_its_runs_and_what_reads_it(finished, tmp_path):
    work, cfg = finished
    loss = "bce_disco"
    jobs = dry_run_jobs(
        work,
        edited(
            cfg,
            tmp_path,
            "lambda",
            "losses",
            loss,
            "disco_lambda",
            2 * cfg["losses"][loss]["disco_lambda"] + 1,
        ),
    )
    rules = {r for r, _ in jobs}
    assert not rules & DATA_SIDE, sorted(rules & DATA_SIDE)
    trained = {(wc["model"], wc["loss"], int(wc["trial"])) for r, wc in jobs if r == "train"}
    expected = {
        (run["model"], loss, t)
        for run in cfg["runs"]
        if run["loss"] == loss
        for t in range(cfg["split"]["n_trials"])
    }
    assert expected and trained == expected
    # no job of another loss (train, and any per-run rule downstream: evaluation, plots, ...)
    assert all(wc["loss"] == loss for _, wc in jobs if "loss" in wc), [
        j for j in jobs if j[1].get("loss") != loss
    ]
    assert not any(r == "train" and wc["model"] == "etn" and wc["loss"] == "bce" for r, wc in jobs)
    # downstream: every reader of those models reruns, for that loss only
    runs = {(run["model"], run["loss"]) for run in cfg["runs"] if run["loss"] == loss}
    counts = Counter(r for r, _ in jobs)
    for rule in ("evaluate", "fit", "fit_plots"):
        assert {(wc["model"], wc["loss"]) for r, wc in jobs if r == rule} == runs, rule
    for rule in ("table_one", "roc_plot", "fit_table"):
        assert counts[rule] == 1, (rule, counts)
    friends = {wc["sample"] for r, wc in jobs if r == "friends"}  # one job per sample: a tree per n-tuple
    assert friends == set(cfg["samples"])
    assert "evaluate_random" not in counts  # it reads no model


def test_mll_min_reruns_from_the_skim_on_but_not_the_generation(finished, tmp_path):
    work, cfg = finished
    jobs = dry_run_jobs(
        work, edited(cfg, tmp_path, "mll", "selection", "mll_min", cfg["selection"]["mll_min"] + 5.0)
    )
    rules = Counter(r for r, _ in jobs)
    assert "generate" not in rules
    n_chunks = {s: v["generate"]["n_chunks"] for s, v in cfg["samples"].items()}
    skims = {(wc["sample"], int(wc["chunk"])) for r, wc in jobs if r == "skim"}
    assert skims == {(s, c) for s, n in n_chunks.items() for c in range(n)}
    assert {wc["sample"] for r, wc in jobs if r == "features"} == set(cfg["samples"])
    for rule in ("cutflow_table", "resolution_map", "feature_plots", "physics_checks"):
        assert rules[rule] == 1, (rule, rules)
    trained = {(wc["model"], wc["loss"], int(wc["trial"])) for r, wc in jobs if r == "train"}
    assert trained == {
        (run["model"], run["loss"], t) for run in cfg["runs"] for t in range(cfg["split"]["n_trials"])
    }


def _reversed_keys(value, keep=False):
    """The same config with every mapping's keys in reverse order (`keep`: this mapping's own order kept)."""
    if isinstance(value, dict):
        keys = list(value) if keep else list(reversed(value))
        return {k: _reversed_keys(value[k]) for k in keys}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def test_the_same_values_in_another_key_order_rerun_nothing(finished, tmp_path):
    """Params compare as text: the rules get the config with its keys sorted, so the file's key order does not
    matter (the samples' order does: it is the order of the training inputs and table columns)."""
    work, cfg = finished
    shuffled = {k: _reversed_keys(v, keep=(k == "samples")) for k, v in reversed(cfg.items())}
    assert list(shuffled) != list(cfg) and list(shuffled["training"]) != list(cfg["training"])
    path = tmp_path / "reordered.yaml"
    path.write_text(yaml.safe_dump(shuffled, sort_keys=False))
    assert dry_run_jobs(work, path) == []


def test_how_often_training_saves_its_state_reruns_nothing(finished, tmp_path):
    """training.resume_every does not change a result: not a param of the training jobs, so an edit of it
    reruns no job (the jobs read it from the config when they run)."""
    work, cfg = finished
    path = edited(cfg, tmp_path, "resume", "training", "resume_every", cfg["training"]["resume_every"] + 4)
    assert dry_run_jobs(work, path) == []
