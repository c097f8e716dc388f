"""Rule friends: scores of every trained (model, loss) for every entry of each input n-tuple of one sample,
one friend tree per n-tuple (results/friends/{sample}/{chunk}.root)."""

import json
from pathlib import Path

from hzg import logs
from hzg.data import selection
from hzg.results import friends
from hzg.learn.classifier import Classifier, pin_scoring_threads

logs.setup(snakemake.log[0])
pin_scoring_threads(snakemake.threads)  # the same scores, to the last bit, in every run
friends.write_sample_friends(
    list(snakemake.input.ntuples),
    snakemake.params.chunks,
    snakemake.output[0],
    snakemake.wildcards.sample,
    snakemake.params.branch_map,
    selection.Cuts.from_config(snakemake.params.cuts),
    json.loads(Path(snakemake.input.resolution_map).read_text()),
    [Classifier.load(p) for p in snakemake.input.checkpoints],
    snakemake.params.tree,
    objects_cfg=snakemake.params.objects,
)
