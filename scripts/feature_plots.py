"""Rule feature_plots: normalised signal vs background distribution of every feature and of mllg."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hzg import logs
from hzg.data import features
from hzg.results import plotting

logs.setup(snakemake.log[0])
p = snakemake.params
sig = pd.concat([pd.read_parquet(f) for f in snakemake.input.signal])
bkg = pd.concat([pd.read_parquet(f) for f in snakemake.input.background])
for var in p.variables:
    edges = plotting.binning([sig[var], bkg[var]], p.n_bins, discrete=(var == "lep_flavour"))
    if var == "mllg":
        edges = np.linspace(*p.mllg_range, p.n_bins + 1)  # the selection's mllg window
    unit = features.UNITS.get(var, "")
    paths = plotting.signal_vs_background(
        sig[var].to_numpy(),
        sig["weight"].to_numpy(),
        bkg[var].to_numpy(),
        bkg["weight"].to_numpy(),
        plotting.axis_label(features.LABELS[var], unit),
        Path(p.outdir) / features.file_stem(var),
        p.luminosity_fb,
        p.sqrt_s_tev,
        edges,
        unit=unit,
    )
    logging.info("wrote %s", ", ".join(map(str, paths)))
