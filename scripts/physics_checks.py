"""Rule physics_checks: signal mllg peak and width, selection fractions, falling background, sigma_m pulls
-> JSON, table, log."""

import json
import logging
from pathlib import Path

import pandas as pd

from hzg import io, logs
from hzg.data import checks, samples
from hzg.results import tables

logs.setup(snakemake.log[0])
sig = pd.concat([pd.read_parquet(f) for f in snakemake.input.signal])
bkg = pd.concat([pd.read_parquet(f) for f in snakemake.input.background])
fractions = {
    s: checks.selection_fraction(r) for s, r in samples.read_cutflows(snakemake.input.cutflows).items()
}
res_map = json.loads(Path(snakemake.input.resolution_map).read_text())
summary = checks.physics_summary(
    sig["mllg"].to_numpy(),
    sig["weight"].to_numpy(),
    bkg["mllg"].to_numpy(),
    bkg["weight"].to_numpy(),
    fractions,
    res_map,
)
logging.info("physics sanity:\n%s", json.dumps(summary, indent=2))
io.write_json(snakemake.output.json, summary)
tables.write_table(
    tables.physics_checks_frame(summary),
    Path(snakemake.output.table[0]).with_suffix(""),
    caption=tables.PHYSICS_CHECKS_CAPTION,
    note=tables.PHYSICS_CHECKS_NOTE,
)
