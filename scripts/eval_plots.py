"""Rule eval_plots: per run, train vs test score distributions, background mllg per score bin, training curves."""
import json
import logging
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import evaluation, logs, plotting  # noqa: E402

logs.setup(snakemake.log[0])
p, out = snakemake.params, snakemake.output
title = f"{evaluation.run_title(p.model, p.loss)}, trial {p.trial}"
frame = evaluation.read_scores(snakemake.input.scores)
plotting.score_distributions(evaluation.overtraining_plot_data(frame, p.evaluation), Path(out.scores).with_suffix(""),
                             p.luminosity_fb, p.sqrt_s_tev, title)
edges, shapes, corr, counts = evaluation.sculpting_data(frame, p.evaluation)
plotting.background_mass_shapes(edges, shapes, corr * 1e3, Path(out.sculpting).with_suffix(""), p.luminosity_fb,
                                p.sqrt_s_tev, title, counts)
trials = json.loads(Path(snakemake.input.metrics).read_text())["trials"]
curves = [(f"trial {t['trial']}", *(h[c].to_numpy() for c in ("epoch", "train_loss", "val_loss", "val_significance")),
           t["best_epoch"]) for t, h in zip(trials, map(pd.read_csv, snakemake.input.histories))]
plotting.training_curves(curves, Path(out.training).with_suffix(""), p.luminosity_fb, p.sqrt_s_tev,
                         evaluation.run_title(p.model, p.loss), xlabel=p.epoch_label)
logging.info("plots of %s written to %s (background correlation %.2fe-3)", title, Path(out.scores).parent, corr * 1e3)
