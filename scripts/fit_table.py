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
tables.write_table(
    frame,
    Path(snakemake.output.fit[0]).with_suffix(""),
    caption="Binned profile-likelihood fit of mllg per score category, the MC as Asimov data (mu = 1)",
)
tables.write_table(
    tables.spurious_table(fits),
    Path(snakemake.output.spurious[0]).with_suffix(""),
    caption=(
        "Background function and spurious signal per category (ATLAS relaxed criterion "
        "zeta = max(0, |S_spur| - 2 dS_MC) < 0.2 sigma_S; MC-limited: dS_MC > sigma_S)"
    ),
)
