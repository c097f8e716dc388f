"""Rule friends: scores of every trained (model, loss) for every entry of one input n-tuple."""

import json
import logging
from pathlib import Path

from hzg import io, logs
from hzg.data import selection
from hzg.results import friends
from hzg.learn.classifier import Classifier

logs.setup(snakemake.log[0])
events = io.read_events(snakemake.input.ntuple, snakemake.params.branch_map)
classifiers = [Classifier.load(p) for p in snakemake.input.checkpoints]
res_map = json.loads(Path(snakemake.input.resolution_map).read_text())
cols = friends.friend_columns(
    events,
    selection.Cuts.from_config(snakemake.params.cuts),
    res_map,
    classifiers,
    snakemake.wildcards.sample,
    int(snakemake.wildcards.chunk),
    objects_cfg=snakemake.params.objects,
)
logging.info(
    "%s: %d entries, %d pass the preselection; branches %s",
    snakemake.input.ntuple,
    len(events),
    int(cols["passed_preselection"].sum()),
    sorted(cols),
)
io.write_root(snakemake.output[0], {snakemake.params.tree: cols})
