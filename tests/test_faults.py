"""Fault injection and reproducibility on the ci config.

One scratch copy of the workflow is run with jobs killed (SIGKILL, `hzg.faults`) during generation, the skim,
training and the fit, Snakemake itself killed with two of them (as a node failure would), and then resumed
the way
the README says (`--unlock`, then `--rerun-incomplete`). Its outputs are compared with the uninterrupted ci
run
(tests/conftest.py): a second run of the same DAG. Tolerance for neural and fit numbers on CPU: relative 1e-6
(measured: identical); n-tuples, skims, cutflows, features and friend trees byte for byte; tree-model metrics
exactly.
A different seed changes the numbers.
"""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hzg.config_checks import load_config

from conftest import copy_workflow, run_killable, snakemake  # noqa: E402

pytestmark = pytest.mark.slow
REL_TOL = 1e-6
DATA_GLOBS = [
    "results/mc/*/*.root",
    "results/skim/*/*.root",
    "results/skim/*/*.cutflow.json",
    "results/features/*.parquet",
    "results/friends/*/*.root",
]


def _run(work: Path, fault: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess:
    """snakemake in its own process group (a group kill takes it and its jobs, not pytest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZG_FAULT")}
    if fault:
        env.update(fault, HZG_FAULT_ONCE=str(work / ".faults"))
        (work / ".faults").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/ci.yaml", *args]
    returncode, out = run_killable(cmd, work, env, timeout=1800)
    return subprocess.CompletedProcess(cmd, returncode, out, "")


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def _close(a, b, path=""):
    """Same structure, numbers within REL_TOL."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    """The ci DAG, interrupted four times and resumed each time as the README says."""
    work = copy_workflow(tmp_path_factory.mktemp("faults"))
    record = []
    # 1. a generation job killed just before its n-tuple is in place; Snakemake reports it and stops
    p = _run(work, {"HZG_FAULT_AT": "results/mc/background/1.root"})
    record.append(("generate: job SIGKILLed", p))
    assert p.returncode != 0 and "Error in rule generate" in p.stdout, p.stdout[-3000:]
    assert not (work / "results/mc/background/1.root").exists()
    # 2. a skim job kills its process group: Snakemake dies with it, as on a node failure (the skim of the
    # n-tuple killed in 1., which cannot have run yet whatever order the scheduler chose in 1.)
    p = _run(
        work, {"HZG_FAULT_AT": "results/skim/background/1.root", "HZG_FAULT_GROUP": "1"}, "--rerun-incomplete"
    )
    record.append(("skim: Snakemake SIGKILLed", p))
    assert p.returncode == -signal.SIGKILL
    p = _run(work, None, "--rerun-incomplete")
    assert p.returncode != 0 and "Directory cannot be locked" in p.stdout, p.stdout[-3000:]
    record.append(("rerun after a killed Snakemake", p))
    assert _run(work, None, "--unlock").returncode == 0
    # 3. a training job killed while saving its state after epoch 3 (resumes from epoch 2's resume.pt)
    p = _run(work, {"HZG_FAULT_AT": "etn_bce/trial0/resume.pt", "HZG_FAULT_SKIP": "2"}, "--rerun-incomplete")
    record.append(("train: job SIGKILLed", p))
    assert p.returncode != 0 and "Error in rule train" in p.stdout, p.stdout[-3000:]
    assert (work / "results/models/etn_bce/trial0/resume.pt").exists()
    # 4. the fit killed with Snakemake
    p = _run(
        work, {"HZG_FAULT_AT": "results/fit/etn_bce/fit.json", "HZG_FAULT_GROUP": "1"}, "--rerun-incomplete"
    )
    record.append(("fit: Snakemake SIGKILLed", p))
    assert p.returncode == -signal.SIGKILL
    assert _run(work, None, "--unlock").returncode == 0
    p = _run(work, None, "--rerun-incomplete")
    assert p.returncode == 0, p.stdout[-6000:]
    return work


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(faulted, ci_run):
    for pattern in DATA_GLOBS:
        files = sorted(p.relative_to(ci_run) for p in ci_run.glob(pattern))
        assert files and files == sorted(p.relative_to(faulted) for p in faulted.glob(pattern)), pattern
        for rel in files:
            assert (faulted / rel).read_bytes() == (ci_run / rel).read_bytes(), rel
    cfg = load_config(ci_run / "config/ci.yaml")
    for run in cfg["runs"]:
        name = f"{run['model']}_{run['loss']}"
        a, b = (
            _metrics(ci_run / f"results/eval/{name}/metrics.json"),
            _metrics(faulted / f"results/eval/{name}/metrics.json"),
        )
        if run["model"] in ("xgboost", "bdt"):
            assert a == b, name
        else:
            _close(a, b, name)
        for t in range(cfg["split"]["n_trials"]):
            rel = f"results/models/{name}/trial{t}/scores.parquet"
            pd.testing.assert_frame_equal(
                pd.read_parquet(ci_run / rel),
                pd.read_parquet(faulted / rel),
                rtol=REL_TOL,
                check_exact=run["model"] in ("xgboost", "bdt"),
            )
        _close(
            _metrics(ci_run / f"results/fit/{name}/fit.json"),
            _metrics(faulted / f"results/fit/{name}/fit.json"),
        )
    assert (ci_run / "results/tables/table1.csv").read_text() == (
        faulted / "results/tables/table1.csv"
    ).read_text()


def test_nothing_is_left_half_written_or_to_do(faulted):
    assert not [p for p in faulted.rglob("*.tmp")], "temporary files left"
    assert not list(faulted.glob("results/models/*/trial*/resume.pt"))
    out = snakemake(faulted, "--configfile", "config/ci.yaml", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_a_different_seed_changes_the_numbers(faulted, ci_run, tmp_path):
    cfg = load_config(faulted / "config/ci.yaml")
    cfg["training"]["seed"] += 1
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/models/etn_bce/trial0/scores.parquet"
    snakemake(faulted, target, "--configfile", str(path))  # targets first: --configfile takes several files
    assert not pd.read_parquet(faulted / target)["score"].equals(pd.read_parquet(ci_run / target)["score"])
    cfg["samples"]["signal"]["generate"]["seed"] += 1
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(faulted, "results/skim/signal/0.root", "--configfile", str(path))
    import uproot

    with (
        uproot.open(faulted / "results/skim/signal/0.root") as f,
        uproot.open(ci_run / "results/skim/signal/0.root") as g,
    ):
        assert (
            f["Skim"]["mllg"].array(library="np").tolist() != g["Skim"]["mllg"].array(library="np").tolist()
        )
