"""Rule cutflow_table: sum the per-chunk cutflows of every sample -> Markdown, CSV, LaTeX."""

import logging
from pathlib import Path

from hzg import logs
from hzg.data import samples
from hzg.results import tables

logs.setup(snakemake.log[0])
lumi = snakemake.params.luminosity_fb
flows, yield_per_weight, xsec = samples.merge_cutflows(
    snakemake.input.cutflows, snakemake.params.normalisation, lumi
)
frame = tables.cutflow_frame(flows, yield_per_weight)
tables.write_table(
    frame,
    Path(snakemake.output.cutflow[0]).with_suffix(""),
    caption=f"Cutflow: raw MC events, expected events for {lumi:g}/fb and weighted efficiency",
)
logging.info("cutflow:\n%s", frame.to_markdown(index=False, floatfmt=".1f"))
norm = tables.normalisation_frame(
    samples.read_cutflows(snakemake.input.cutflows), xsec, snakemake.params.normalisation, lumi
)
tables.write_table(
    norm,
    Path(snakemake.output.normalisation[0]).with_suffix(""),
    caption="Normalisation per sample",
    note=snakemake.params.note,
)
logging.info("normalisation:\n%s", norm.to_markdown(index=False))
