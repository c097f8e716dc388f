"""End to end: the DAG on config/ci.yaml in a scratch copy of the workflow, and on user n-tuples."""

import html
import json
import subprocess
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from hzg import checkpoints
from hzg.data import features
from hzg.config_checks import load_config

pytestmark = pytest.mark.slow
from conftest import copy_workflow, snakemake  # noqa: E402  (the ci DAG runs once per session)


def test_dag_produces_features_tables_plots_and_logs(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    # ISR and FSR backgrounds, FSR as two slices of its first initial-state emission
    assert list(cfg["samples"]) == ["signal", "background", "background_fsr", "background_fsr_jet"]
    for sample in cfg["samples"]:
        frame = pd.read_parquet(ci_run / f"results/features/{sample}.parquet")
        cols = list(features.FEATURES) + list(features.DISCO_FEATURES) + ["mllg", "weight"]
        assert set(cols + ["sample", "chunk", "entry", "split_0", "split_1", "split_2"]) <= set(frame.columns)
        assert np.isfinite(frame[cols].to_numpy()).all()
        assert not frame.duplicated(["sample_id", "chunk", "entry"]).any()
        assert frame["mllg"].between(100, 180).all()
        # weights: sigma * L * (selected / generated generator weight); sigma = xsec_pb, or k_factor x the
        # generator's sigma read from the n-tuples' Runs trees (the background is generated with a bias)
        runs = [
            uproot.open(p)["Runs"].arrays(library="np")
            for p in sorted((ci_run / f"results/mc/{sample}").glob("*.root"))
        ]
        n_gen = sum(float(r["genEventCount"].sum()) for r in runs)
        sum_w = sum(float(r["genEventSumw"].sum()) for r in runs)
        sigma_gen = sum(float((r["sigmaGen_pb"] * r["genEventCount"]).sum()) for r in runs) / n_gen
        spec = cfg["samples"][sample]
        xsec = spec["xsec_pb"] if "xsec_pb" in spec else spec["k_factor"] * sigma_gen
        flows = [
            json.loads(p.read_text()) for p in (ci_run / f"results/skim/{sample}").glob("*.cutflow.json")
        ]
        selected_w = sum(f["cutflow"][-1]["sum_weights"] for f in flows)
        expected = xsec * cfg["luminosity_fb"] * 1000 * selected_w / sum_w
        assert frame["weight"].sum() == pytest.approx(expected, rel=1e-9)
        if sample != "signal":
            assert (
                frame["weight"].std() > 0.1 * frame["weight"].mean()
            )  # the biased / enhanced generation's weights flow through
    norm = pd.read_csv(ci_run / "results/tables/normalisation.csv").set_index("sample")
    assert float(norm.loc["signal", "sigma used [pb]"]) == pytest.approx(5.01e-3)
    assert norm.loc["background", "how"] == f"{cfg['samples']['background']['k_factor']:g} x generator"
    table = pd.read_csv(ci_run / "results/tables/cutflow.csv")
    assert list(table.columns) == ["cut"] + [
        f"{sample} {what}" for sample in cfg["samples"] for what in ("raw", "expected", "eff. [%]")
    ]
    assert table["cut"].tolist()[0] == "all" and table["signal raw"].is_monotonic_decreasing
    assert (ci_run / "results/tables/cutflow.tex").read_text().lstrip().startswith("\\begin{table}")
    for var in list(features.FEATURES) + list(features.DISCO_FEATURES) + ["mllg"]:
        assert_plot(
            ci_run / f"results/plots/features/{features.file_stem(var)}"
        )  # what is plotted: tests/test_plotting.py
    for rule in (
        "generate/signal/0",
        "skim/background/1",
        "features/signal",
        "features/resolution_map",
        "tables/cutflow",
        "plots/features",
        "checks/physics",
    ):
        assert (ci_run / f"logs/{rule}.log").stat().st_size > 0


def test_every_job_wrote_a_benchmark_and_the_run_has_a_time_and_memory_table(ci_run):
    bench = ci_run / "results/benchmarks"
    for job in (
        "generate/signal/0",
        "skim/background/1",
        "features/signal",
        "train/etn_bce/trial0",
        "evaluate/etn_bce",
        "friends/signal",
        "fit/etn_bce",
        "table_one/table_one",
        "cutflow_table/cutflow_table",
    ):
        frame = pd.read_csv(bench / f"{job}.tsv", sep="\t")
        assert frame["s"].iloc[-1] > 0 and frame["max_rss"].iloc[-1] > 0, job
    rules = pd.read_csv(ci_run / "results/tables/benchmarks.csv")
    assert {"generate", "skim", "features", "train", "evaluate", "friends", "fit", "table_one"} <= set(
        rules["rule"]
    )
    assert (rules["wall time [s]"] > 0).all() and (rules["max RSS [MB]"] > 0).all()
    stages = pd.read_csv(ci_run / "results/tables/benchmark_stages.csv").set_index("stage")
    assert list(stages.index) == [
        "generate",
        "skim",
        "features",
        "train",
        "evaluate",
        "friends",
        "fit",
        "report",
        "total",
    ]
    assert stages.loc["total", "wall time [s]"] == pytest.approx(rules["wall time [s]"].sum())
    assert (
        (ci_run / "results/tables/benchmark_stages.md")
        .read_text()
        .startswith("**Time and memory per stage**")
    )


def assert_plot(stem: Path) -> None:
    """stem.png is an image with something drawn on it, stem.pdf a PDF (the plotted data:
    tests/test_plotting.py)."""
    import matplotlib.image as mpimg

    png = mpimg.imread(stem.with_suffix(".png"))
    assert png.ndim == 3 and min(png.shape[:2]) > 300, (stem, png.shape)
    assert png[..., :3].std() > 0.05, f"{stem}.png is blank"
    assert stem.with_suffix(".pdf").read_bytes().startswith(b"%PDF"), stem


def test_physics_sanity_loosely(ci_run):
    summary = json.loads((ci_run / "results/checks/physics.json").read_text())
    assert 123.0 < summary["signal_peak_gev"] < 127.0
    assert 1.0 < summary["signal_width_gev"] < 3.0
    # paper: 20 % of the signal and 11 % of the background pass; up to about twice that is expected
    assert 0.10 < summary["selection_fraction"]["signal"] < 0.45
    assert 0.05 < summary["selection_fraction"]["background"] < 0.25
    assert summary["background_low_over_high"] > 1.0
    # the same numbers as a table beside the paper's (Markdown, CSV, LaTeX; the CSV in the report)
    table = pd.read_csv(ci_run / "results/tables/physics_checks.csv").set_index("Check")
    assert table.loc["Signal mllg peak [GeV]", "This run"] == pytest.approx(
        summary["signal_peak_gev"], abs=0.005
    )
    assert table.loc["Selection fraction, signal [%]", "Reference"] == "20.0 (paper)"
    assert "Every number is in" in (ci_run / "results/tables/physics_checks.md").read_text()


def test_every_training_job_wrote_checkpoint_history_and_keyed_scores(ci_run):
    cfg = load_config(ci_run / "config/ci.yaml")
    n_events = sum(len(pd.read_parquet(ci_run / f"results/features/{s}.parquet")) for s in cfg["samples"])
    for run in cfg["runs"]:
        for trial in range(cfg["split"]["n_trials"]):
            d = ci_run / f"results/models/{run['model']}_{run['loss']}/trial{trial}"
            ckpt = checkpoints.load(d / "checkpoint.pt")  # weights only: nothing executable in a checkpoint
            assert ckpt["model"] == run["model"] and ckpt["loss"] == run["loss"] and ckpt["trial"] == trial
            assert len(ckpt["features"]) == (15 if "disco" in run["loss"] else 12)
            assert len(ckpt["config_hash"]) == 16
            history = pd.read_csv(d / "history.csv")
            assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_significance", "seconds"]
            scores = pd.read_parquet(d / "scores.parquet")
            assert len(scores) == n_events and not scores.duplicated(["sample_id", "chunk", "entry"]).any()
            assert scores["score"].between(0, 1).all()
            assert not (d / "resume.pt").exists()


def test_etn_learns_on_generated_events(ci_run):
    """Validation AUC in 120-130 GeV (negative weights set to 0), each trial and on average."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for trial in range(3):
        s = pd.read_parquet(ci_run / f"results/models/etn_bce/trial{trial}/scores.parquet")
        v = s[(s.split == 1) & (s.mllg > 120) & (s.mllg < 130)]
        aucs.append(roc_auc_score(v.is_signal, v.score, sample_weight=v.weight.clip(lower=0)))
    assert min(aucs) > 0.55 and np.mean(aucs) > 0.62, aucs


def test_dag_produces_table_one_metrics_and_evaluation_plots(ci_run):
    from hzg import registry
    from hzg.results import evaluation

    cfg = load_config(ci_run / "config/ci.yaml")
    runs = [f"{r['model']}_{r['loss']}" for r in cfg["runs"]]
    for run in runs + ["random"]:
        result = json.loads((ci_run / f"results/eval/{run}/metrics.json").read_text())
        assert result["n_trials"] == cfg["split"]["n_trials"] == len(result["trials"])
        assert set(evaluation.METRICS) <= set(result["summary"])
        for trial in result["trials"]:
            assert 0.0 <= trial["auc"] <= 1.0 and trial["significance"] > 0 and trial["bkg_correlation"] > 0
            assert 0.0 <= trial["overtraining_p"] <= 1.0
            assert len(trial["background_mc_per_bin"]) == cfg["evaluation"]["n_score_bins"]
            effective = trial["background_mc_effective_per_bin"]
            assert all(0 <= e <= n + 1e-6 for e, n in zip(effective, trial["background_mc_per_bin"]))
            if run != "random":  # the sample of each event flows from the n-tuple through scores to metrics
                backgrounds = {k for k, v in cfg["samples"].items() if v["kind"] == "background"}
                for per_bin, n in zip(trial["background_mc_by_sample"], trial["background_mc_per_bin"]):
                    assert set(per_bin) <= backgrounds and bool(per_bin) == (n > 0)
                    if per_bin:
                        assert sum(v["sumw2"] for v in per_bin.values()) == pytest.approx(1.0)
            assert trial["significance_mc_err"] > 0
            assert trial["min_background_mc"] == cfg["evaluation"]["min_background_mc"]
            assert (trial["best_epoch"] is None) == (run.split("_")[0] in ("xgboost", "bdt", "random"))
    table = pd.read_csv(ci_run / "results/tables/table1.csv")
    assert list(table.columns) == [
        "Technique",
        "Loss",
        "Signi.",
        "Signi. MC stat.",
        "AUC (%)",
        "Bkg. Corr. (1e-3)",
        "Bkg. Corr. floor (1e-3)",
        "Bkg. Corr. above noise (1e-3)",
        "Bkg. dCor² (1e-3)",
        "Bkg. MC per bin, min (raw / eff.)",
        "Best epoch",
        "Overtraining p-value",
    ]
    expected = {
        (registry.MODEL_LABELS[r["model"]], registry.loss_label(r["model"], cfg["losses"][r["loss"]]))
        for r in cfg["runs"]
    } | {("Random", "N.A.")}
    assert len(table) == len(cfg["runs"]) + 1 and set(zip(table["Technique"], table["Loss"])) == expected
    assert table.iloc[0]["Technique"] == "Random"
    assert (
        table["Signi."].str.fullmatch(r"\d+\.\d\d ± \d+\.\d\d( †)?").all()
    )  # † : < min_background_mc bkg. MC
    assert (table["Signi. MC stat."].astype(float) > 0).all()
    assert "Random" in (ci_run / "results/tables/table1.md").read_text()
    assert (ci_run / "results/tables/table1.tex").read_text().lstrip().startswith("\\begin{table}")
    plots = ["roc", "roc_trials"] + [
        f"{run}/{kind}" for run in runs for kind in ("scores", "sculpting", "training", "training_bands")
    ]
    attention = [f"{r['model']}_{r['loss']}" for r in cfg["runs"] if r["model"] in registry.ATTENTION_MODELS]
    assert attention  # the ci grid has ETN runs: their attention maps and Grad-CAM attribution
    plots += [f"{run}/{kind}" for run in attention for kind in ("attention", "gradcam")]
    for plot in plots:
        assert_plot(ci_run / f"results/plots/eval/{plot}")
    logs = ["eval/random", "tables/table1", "plots/roc"] + [f"eval/{run}" for run in runs]
    for log in logs + [f"eval/{run}.interpret" for run in attention]:
        assert (ci_run / f"logs/{log}.log").stat().st_size > 0
    assert not (ci_run / "results/plots/eval/xgboost_bce/attention.png").exists()  # trees have no attention


def test_report_builds_with_tables_and_plots(ci_run):
    report = ci_run / "results/report.html"
    snakemake(ci_run, "--report", str(report.relative_to(ci_run)), "--configfile", "config/ci.yaml")
    text = report.read_text()
    cfg = load_config(ci_run / "config/ci.yaml")
    for needle in (
        "Table I",
        "Sculpting",
        "Training",
        "Features",
        "table1.csv",
        "table1_paper.csv",
        "roc.png",
        "roc_trials.png",
        "Benchmarks",
        "benchmark_stages.csv",
        "Fit",
        "fit.csv",
        "spurious_signal.csv",
        "Selection",
        "cutflow.csv",
        "normalisation.csv",
        "physics_checks.csv",
    ):
        assert needle in text, needle
    # every plot and table the rules mark for the report is in it, embedded (its bytes, base64), not only
    # named
    import base64

    for run in (f"{r['model']}_{r['loss']}" for r in cfg["runs"]):
        for kind in ("scores", "sculpting", "training", "training_bands"):
            assert f"results/plots/eval/{run}/{kind}.png" in text, (run, kind)
        for kind in ["scan", "pulls", "ranking"] + [
            f"postfit_{c}" for c in range(cfg["fit"]["n_score_bins"])
        ]:
            assert f"results/plots/fit/{run}/{kind}.png" in text, (run, kind)
    for var in list(features.FEATURES) + ["mllg"]:
        assert f"results/plots/features/{features.file_stem(var)}.png" in text, var
    png = (ci_run / "results/plots/eval/roc.png").read_bytes()
    assert base64.b64encode(png)[100:400].decode() in text  # the ROC image itself
    # the tables' captions in the report define their columns with the library's text, the one under their
    # Markdown and LaTeX (one source); RST's markup characters in it ("|S_spur|") are text, not markup
    from hzg.results import tables

    fit_bkg = cfg["fit"]["background"]
    for note in (
        tables.TABLE_ONE_COLUMNS,
        tables.FIT_CAPTION,
        tables.fit_table_note(
            cfg["fit"]["trial"], fit_bkg["spurious_criterion"], fit_bkg["spurious_mc_tolerance"]
        ),
        tables.spurious_caption(fit_bkg["spurious_criterion"], fit_bkg["spurious_mc_tolerance"]),
        tables.SPURIOUS_NOTE,
        tables.PHYSICS_CHECKS_CAPTION,
        tables.PHYSICS_CHECKS_NOTE,
        tables.PAPER_CAPTION,
        tables.PAPER_NOTE,
    ):
        assert json.dumps(html.escape(note, quote=False).replace('"', "&quot;"))[1:-1] in text, note[:60]


def test_report_opens_clean_in_a_headless_browser(ci_run):
    """results/report.html in a real browser (Debian's chromium, headless): the front page renders with Table
    I and
    images, and no page (all pages' captions are embedded in the file) shows a docutils "System Message"."""
    import re
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser: apt-get install chromium")
    report = ci_run / "results/report.html"
    if not report.exists():
        snakemake(ci_run, "--report", str(report.relative_to(ci_run)), "--configfile", "config/ci.yaml")
    assert "System Message" not in report.read_text()
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            "--virtual-time-budget=15000",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rendered = re.sub(r"<script\b.*?</script>", "", proc.stdout, flags=re.S)  # what the page shows
    assert "System Message" not in rendered
    assert "Table I" in rendered and re.search(r"<(img|svg)\b", rendered), rendered[-3000:]


def test_output_names_are_unique_regardless_of_case(ci_run):
    """No two outputs differ only in case (on a case-insensitive filesystem one would overwrite the other)."""
    for top in ("results", "logs"):
        paths = [str(p.relative_to(ci_run)) for p in (ci_run / top).rglob("*")]
        seen = {}
        for path in paths:
            assert path.lower() not in seen, f"{path} and {seen[path.lower()]} differ only in case"
            seen[path.lower()] = path


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
    cfg = load_config(work / "config/ci.yaml")
    # Delphes files carry no generator cross-section: the user gives the sigma that the generated sample used
    runs = [
        uproot.open(p)["Runs"].arrays(library="np")
        for p in sorted((ci_run / "results/mc/background").glob("*.root"))
    ]
    sigma_gen = sum(float((r["sigmaGen_pb"] * r["genEventCount"]).sum()) for r in runs) / sum(
        float(r["genEventCount"].sum()) for r in runs
    )
    cfg["samples"]["background"] = {
        "kind": "background",
        "xsec_pb": cfg["samples"]["background"]["k_factor"] * sigma_gen,
        "branch_map": "delphes",
        "files": [str(tmp_path / "bkg0.root"), str(tmp_path / "bkg1.root")],
    }
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
    cfg = load_config(work / "config/ci.yaml")
    cfg["samples"]["background"] = {"kind": "background", "xsec_pb": 55.5, "files": [str(bad)]}
    (work / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "results/skim/background/0.root", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    log = (work / "logs/skim/background/0.log").read_text()
    assert f"cannot read {bad} as a ROOT file" in log
    assert not (work / "results/skim/background/0.root").exists()
    assert (
        not list((work / "results/skim/background").glob(".*tmp"))
        if (work / "results/skim/background").exists()
        else True
    )


def test_invalid_config_is_refused_naming_the_key(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    cfg = load_config(work / "config/ci.yaml")
    cfg["selection"]["mll_min"] = "fifty"
    (work / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "--configfile", "config/bad.yaml", "-n", check=False)
    assert proc.returncode != 0
    assert "mll_min" in proc.stdout + proc.stderr


def test_roc_trial_beyond_the_trials_is_refused_naming_the_key(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    cfg = load_config(work / "config/ci.yaml")
    cfg["evaluation"]["roc_trial"] = cfg["split"]["n_trials"]
    (work / "config/bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "--configfile", "config/bad.yaml", "-n", check=False)
    assert proc.returncode != 0
    assert "evaluation.roc_trial" in proc.stdout + proc.stderr
