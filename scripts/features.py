"""Rule features: features, weights, keys and trial splits of one sample -> Parquet."""

import json
import logging
from pathlib import Path

from hzg import io, logs
from hzg.data import features, samples

logs.setup(snakemake.log[0])
p = snakemake.params
skim = samples.read_skims(snakemake.input.skims)
records = samples.read_cutflows(snakemake.input.cutflows)[p.sample]
sum_weights = sum(r["sum_weights"] for r in records)
xsec_pb = samples.sample_xsec_pb(p.sample, p.normalisation, records)
logging.info("%s: cross-section used %.5g pb (%s)", p.sample, xsec_pb, dict(p.normalisation))
res_map = json.loads(Path(snakemake.input.resolution_map).read_text())
frame = features.sample_frame(
    skim, res_map, p.sample, p.kind, xsec_pb, p.luminosity_fb, sum_weights, p.split, objects_cfg=p.objects
)
logging.info(
    "%s: %d events, %.4g expected for %.0f fb^-1; split fractions (trial 0): %s",
    p.sample,
    len(frame),
    frame["weight"].sum(),
    p.luminosity_fb,
    frame["split_0"].value_counts(normalize=True).sort_index().round(3).tolist(),
)
io.write_parquet(snakemake.output[0], frame)
