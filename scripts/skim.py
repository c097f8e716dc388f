"""Rule skim: preselection of one n-tuple -> flat candidate tree + cutflow JSON."""

import logging

from hzg import io, logs
from hzg.data import selection, variations

logs.setup(snakemake.log[0])
source = snakemake.input.ntuple
variation = snakemake.params.get("variation", "nominal")
events = variations.apply(
    io.read_events(source, snakemake.params.branch_map), variation, snakemake.params.get("sizes", {})
)
meta = io.read_metadata(source, snakemake.params.branch_map)
cols, flow = selection.preselect(
    events,
    selection.Cuts.from_config(snakemake.params.cuts),
    source=source,
    objects_cfg=snakemake.params.objects,
)
logging.info(
    "%s (%s): %d of %d events pass the preselection", source, variation, len(cols["entry"]), len(events)
)
io.write_root(snakemake.output.skim, {"Skim": cols})
io.write_json(
    snakemake.output.cutflow,
    {
        "sample": snakemake.wildcards.sample,
        "chunk": int(snakemake.wildcards.chunk),
        "source": str(source),
        **meta,
        "cutflow": flow,
    },
)
