"""Rule mass_scan_summary: the table of every mass-scan run at every mass point, and the plot of AUC and
significance against m_H."""

import json
from pathlib import Path

from hzg import logs
from hzg.results import mass_scan

logs.setup(snakemake.log[0])
p = snakemake.params
runs = {name: json.loads(Path(path).read_text()) for name, path in zip(p.runs, snakemake.input.runs)}
mass_scan.write_table(runs, snakemake.output.md, snakemake.output.csv, p.caption)
mass_scan.plot(
    runs,
    Path(snakemake.output.png).with_suffix(""),
    p.luminosity_fb,
    p.sqrt_s_tev,
    p.window_relative,
)
