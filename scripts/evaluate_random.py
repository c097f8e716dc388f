"""Rule evaluate_random: the random classifier (uniform scores) through the same metrics -> metrics.json."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import io, logs  # noqa: E402
from hzg.results import evaluation  # noqa: E402

logs.setup(snakemake.log[0])
result = evaluation.evaluate_random(snakemake.input.features, snakemake.params.n_trials, snakemake.params.evaluation)
logging.info("random classifier, test split:\n%s", evaluation.describe(result))
io.write_json(snakemake.output[0], result)
