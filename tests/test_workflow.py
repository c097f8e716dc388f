"""End to end: the DAG on config/ci.yaml in a scratch copy of the workflow, and on user n-tuples."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from hzg import features, io

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "scripts", "src", "envs"]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for item in WORKFLOW_FILES:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("ci"))
    snakemake(work, "--configfile", "config/ci.yaml")
    return work


def test_dag_produces_features_tables_plots_and_logs(ci_run):
    cfg = yaml.safe_load((ci_run / "config/ci.yaml").read_text())
    for sample in ("signal", "background"):
        frame = pd.read_parquet(ci_run / f"results/features/{sample}.parquet")
        cols = list(features.FEATURES) + list(features.DISCO_FEATURES) + ["mllg", "weight"]
        assert set(cols + ["sample", "chunk", "entry", "split_0", "split_1", "split_2"]) <= set(frame.columns)
        assert np.isfinite(frame[cols].to_numpy()).all()
        assert not frame.duplicated(["sample_id", "chunk", "entry"]).any()
        assert frame["mllg"].between(100, 180).all()
        # weights: sigma * L * (selected / generated) for unit generator weights
        n_gen = cfg["samples"][sample]["generate"]["n_events"]
        expected = cfg["samples"][sample]["xsec_pb"] * cfg["luminosity_fb"] * 1000 * len(frame) / n_gen
        assert frame["weight"].sum() == pytest.approx(expected, rel=1e-9)
    table = pd.read_csv(ci_run / "results/tables/cutflow.csv")
    assert list(table.columns) == ["cut", "signal raw", "signal expected", "signal eff. [%]",
                                   "background raw", "background expected", "background eff. [%]"]
    assert table["cut"].tolist()[0] == "all" and table["signal raw"].is_monotonic_decreasing
    assert (ci_run / "results/tables/cutflow.tex").read_text().lstrip().startswith("\\begin{table}")
    for var in list(features.FEATURES) + list(features.DISCO_FEATURES) + ["mllg"]:
        for ext in ("pdf", "png"):
            assert (ci_run / f"results/plots/features/{var}.{ext}").stat().st_size > 5000
    for rule in ("generate/signal/0", "skim/background/1", "features/signal", "features/resolution_map",
                 "tables/cutflow", "plots/features", "checks/physics"):
        assert (ci_run / f"logs/{rule}.log").stat().st_size > 0


def test_physics_sanity_loosely(ci_run):
    summary = json.loads((ci_run / "results/checks/physics.json").read_text())
    assert 123.0 < summary["signal_peak_gev"] < 127.0
    assert 1.0 < summary["signal_width_gev"] < 3.0
    # paper: 20 % of the signal and 11 % of the background pass; up to about twice that is expected
    assert 0.10 < summary["selection_fraction"]["signal"] < 0.45
    assert 0.05 < summary["selection_fraction"]["background"] < 0.25
    assert summary["background_low_over_high"] > 1.0


def test_second_run_has_nothing_to_do(ci_run):
    out = snakemake(ci_run, "--configfile", "config/ci.yaml", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def _to_delphes(nano: Path, dest: Path) -> None:
    """Rewrite a generated NanoAOD-like n-tuple in the Delphes layout (as a user would bring it)."""
    ev = uproot.open(nano)["Events"].arrays(library="ak")
    branches = {}
    for coll, nano_name in (("Electron", "Electron"), ("Muon", "Muon"), ("Photon", "Photon")):
        for d_field, n_field in (("PT", "pt"), ("Eta", "eta"), ("Phi", "phi"), ("Charge", "charge")):
            if coll == "Photon" and d_field == "Charge":
                continue
            branches[f"{coll}.{d_field}"] = ev[f"{nano_name}_{n_field}"]
    branches["Event.Weight"] = ak.unflatten(ev["genWeight"], 1)
    with uproot.recreate(dest) as out:
        out.mktree("Delphes", branches)


def test_user_ntuples_in_delphes_layout_give_the_same_candidates(ci_run, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    for chunk in (0, 1):
        _to_delphes(ci_run / f"results/mc/background/{chunk}.root", tmp_path / f"bkg{chunk}.root")
    cfg = yaml.safe_load((work / "config/ci.yaml").read_text())
    cfg["samples"]["background"] = {"kind": "background", "xsec_pb": 55.5, "branch_map": "delphes",
                                    "files": [str(tmp_path / "bkg0.root"), str(tmp_path / "bkg1.root")]}
    (work / "config/user.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work, "results/features/background.parquet", "--configfile", "config/user.yaml")
    mine = pd.read_parquet(work / "results/features/background.parquet")
    reference = pd.read_parquet(ci_run / "results/features/background.parquet")
    cols = ["chunk", "entry", "mllg", "photon_eta", "cos_theta", "weight"]
    pd.testing.assert_frame_equal(mine[cols], reference[cols])


def test_corrupt_input_stops_the_skim_with_the_file_name_and_no_output(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    bad = tmp_path / "corrupt.root"
    bad.write_bytes(b"root\x00" + bytes(range(256)) * 4)
    cfg = yaml.safe_load((work / "config/ci.yaml").read_text())
    cfg["samples"]["background"] = {"kind": "background", "xsec_pb": 55.5, "files": [str(bad)]}
    (work / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "results/skim/background/0.root", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    log = (work / "logs/skim/background/0.log").read_text()
    assert f"cannot read {bad} as a ROOT file" in log
    assert not (work / "results/skim/background/0.root").exists()
    assert not list((work / "results/skim/background").glob(".*tmp")) if (work / "results/skim/background").exists() else True


def test_invalid_config_is_refused_naming_the_key(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((work / "config/ci.yaml").read_text())
    cfg["selection"]["mll_min"] = "fifty"
    (work / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "--configfile", "config/bad.yaml", "-n", check=False)
    assert proc.returncode != 0
    assert "mll_min" in proc.stdout + proc.stderr
