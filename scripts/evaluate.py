"""Rule evaluate: Table I metrics of one (model, loss) on the test split of every trial -> metrics.json."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import evaluation, io, logs  # noqa: E402

logs.setup(snakemake.log[0])
p = snakemake.params
result = evaluation.evaluate_run(snakemake.input.scores, snakemake.input.checkpoints, p.evaluation, p.info)
logging.info("%s_%s, test split:\n%s", p.info["model"], p.info["loss"], evaluation.describe(result))
io.write_json(snakemake.output[0], result)
