"""Rule roc_plot: ROC curves of every run on the test split, in the mass window of the AUC: one trial's
curves (roc), and every trial's as a band between the lowest and highest trial with the mean (roc_trials)."""

import logging
from pathlib import Path

from hzg import logs, registry
from hzg.results import bands, evaluation, plotting

logs.setup(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
rocs = [plotting.roc_of_test_split(evaluation.read_scores(path), p.window) for path in inp.scores]
if len(rocs) != len(p.runs) * p.n_trials:
    raise ValueError(f"{len(rocs)} score files for {len(p.runs)} runs x {p.n_trials} trials")
per_run = [
    (registry.run_title(run["model"], p.losses[run["loss"]]), rocs[i * p.n_trials : (i + 1) * p.n_trials])
    for i, run in enumerate(p.runs)
]
lumi = (p.luminosity_fb, p.sqrt_s_tev)

curves = []
for name, trials in per_run:
    fpr, tpr, auc = trials[p.trial]
    band = bands.roc_band([(fpr, tpr)])
    curves.append((name, band.mean, band.x, auc))
paths = plotting.roc_curves(curves, Path(out.png).with_suffix(""), *lumi, p.window, note=f"trial {p.trial}")
logging.info(
    "AUC on the test split of trial %d: %s; wrote %s",
    p.trial,
    ", ".join(f"{c[0]} {100 * c[3]:.1f} %" for c in curves),
    ", ".join(map(str, paths)),
)

runs = [
    (name, bands.roc_band([(fpr, tpr) for fpr, tpr, _ in trials]), [auc for *_, auc in trials])
    for name, trials in per_run
]
paths = plotting.roc_bands(runs, Path(out.trials_png).with_suffix(""), *lumi, p.window, p.n_trials)
logging.info(
    "AUC on the test split, mean ± std of %d trials: %s; wrote %s",
    p.n_trials,
    ", ".join(f"{name} {plotting.auc_text(aucs)}" for name, _, aucs in runs),
    ", ".join(map(str, paths)),
)
