"""Rule mass_scan_summary: the table of every mass-scan run at every mass point with the background sculpting
at the nominal mass (Table I's correlation metrics, the fit's spurious signal), and the plot of AUC and
significance against m_H."""

import json
from pathlib import Path

from hzg import logs
from hzg.results import mass_scan


def read(paths):
    return {name: json.loads(Path(path).read_text()) for name, path in zip(snakemake.params.runs, paths)}


logs.setup(snakemake.log[0])
p = snakemake.params
runs = read(snakemake.input.runs)
sculpting = mass_scan.sculpting_frame(
    {name: r["title"] for name, r in runs.items()}, read(snakemake.input.metrics), read(snakemake.input.fits)
)
mass_scan.write_table(
    runs, snakemake.output.md, snakemake.output.csv, p.caption, sculpting, snakemake.output.sculpting
)
mass_scan.plot(
    runs,
    Path(snakemake.output.png).with_suffix(""),
    p.luminosity_fb,
    p.sqrt_s_tev,
    p.window_relative,
)
