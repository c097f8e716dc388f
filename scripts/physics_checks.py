"""Rule physics_checks: signal mllg peak and width, selection fractions, falling background -> JSON + log."""

import json
import logging
from pathlib import Path

import pandas as pd

from hzg import io, logs
from hzg.data import checks, samples

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
io.write_json(snakemake.output[0], summary)
