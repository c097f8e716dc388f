"""Rule fit_table: per run mu, Z, limit, spurious signal and fit problems beside the binned counting; per
category the background function and its spurious signal."""

import json
from pathlib import Path

from hzg import logs
from hzg.results import tables

logs.setup(snakemake.log[0])
fits = {run: json.loads(Path(p).read_text()) for run, p in zip(snakemake.params.runs, snakemake.input.fits)}
metrics = {
    run: json.loads(Path(p).read_text()) for run, p in zip(snakemake.params.runs, snakemake.input.metrics)
}
frame = tables.fit_table(fits, metrics, snakemake.params.trial)
criterion, tolerance = snakemake.params.spurious_criterion, snakemake.params.spurious_mc_tolerance
tables.write_table(
    frame,
    Path(snakemake.output.fit[0]).with_suffix(""),
    caption=tables.FIT_CAPTION,
    note=tables.fit_table_note(snakemake.params.trial, criterion, tolerance),
)
tables.write_table(
    tables.spurious_table(fits),
    Path(snakemake.output.spurious[0]).with_suffix(""),
    caption=tables.spurious_caption(criterion, tolerance),
    note=tables.SPURIOUS_NOTE,
)
