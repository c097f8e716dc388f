"""Rule evaluate: Table I metrics of one (model, loss) on the test split of every trial -> metrics.json, and
its plots: train vs test scores, background mllg per score bin (trial `trial`) and the training curves of all
trials, trial by trial (training) and as the band between the lowest and highest trial (training_bands)."""

import logging
from pathlib import Path

import pandas as pd

from hzg import io, logs, registry
from hzg.results import evaluation, plotting

logs.setup(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
result = evaluation.evaluate_run(
    inp.scores, inp.checkpoints, p.evaluation, p.info, sample_names=list(snakemake.config["samples"])
)
logging.info("%s_%s, test split:\n%s", p.info["model"], p.info["loss"], evaluation.describe(result))
io.write_json(out.metrics, result)

name = registry.run_title(p.info["model"], p.info)
frame, lumi = evaluation.read_scores(inp.scores[p.trial]), (p.luminosity_fb, p.sqrt_s_tev)
plotting.score_distributions(
    plotting.overtraining_plot_data(frame, p.evaluation),
    Path(out.scores).with_suffix(""),
    *lumi,
    f"{name}, trial {p.trial}",
)
edges, shapes, corr, counts = plotting.sculpting_data(frame, p.evaluation)
plotting.background_mass_shapes(
    edges, shapes, corr * 1e3, Path(out.sculpting).with_suffix(""), *lumi, f"{name}, trial {p.trial}", counts
)
curves = [
    (
        f"trial {t['trial']}",
        *(h[c].to_numpy() for c in ("epoch", "train_loss", "val_loss", "val_significance")),
        t["best_epoch"],
    )
    for t, h in zip(result["trials"], map(pd.read_csv, inp.histories))
]
plotting.training_curves(curves, Path(out.training).with_suffix(""), *lumi, name, xlabel=p.epoch_label)
plotting.training_bands(curves, Path(out.training_bands).with_suffix(""), *lumi, name, xlabel=p.epoch_label)
