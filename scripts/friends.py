"""Rule friends: scores of every trained (model, loss) for every entry of one input n-tuple."""
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import io, logs  # noqa: E402
from hzg.data import selection  # noqa: E402
from hzg.results import friends  # noqa: E402
from hzg.learn.classifier import Classifier  # noqa: E402

logs.setup(snakemake.log[0])
events = io.read_events(snakemake.input.ntuple, snakemake.params.branch_map)
classifiers = [Classifier.load(p) for p in snakemake.input.checkpoints]
res_map = json.loads(Path(snakemake.input.resolution_map).read_text())
cols = friends.friend_columns(events, selection.Cuts.from_config(snakemake.params.cuts), res_map, classifiers,
                              snakemake.wildcards.sample, int(snakemake.wildcards.chunk))
logging.info("%s: %d entries, %d pass the preselection; branches %s", snakemake.input.ntuple, len(events),
             int(cols["passed_preselection"].sum()), sorted(cols))
io.write_root(snakemake.output[0], {snakemake.params.tree: cols})
