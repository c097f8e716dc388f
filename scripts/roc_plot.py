"""Rule roc_plot: ROC curves of every run on the test split of one trial, in the mass window of the AUC."""

import logging
from pathlib import Path

from hzg import logs, registry
from hzg.results import evaluation, plotting

logs.setup(snakemake.log[0])
p = snakemake.params
curves = [
    (
        registry.run_title(run["model"], p.losses[run["loss"]]),
        *plotting.roc_on_test(evaluation.read_scores(path), p.window),
    )
    for run, path in zip(p.runs, snakemake.input.scores)
]
paths = plotting.roc_curves(
    curves,
    Path(snakemake.output.png).with_suffix(""),
    p.luminosity_fb,
    p.sqrt_s_tev,
    p.window,
    note=f"trial {p.trial}",
)
logging.info(
    "AUC on the test split of trial %d: %s; wrote %s",
    p.trial,
    ", ".join(f"{c[0]} {100 * c[3]:.1f} %" for c in curves),
    ", ".join(map(str, paths)),
)
