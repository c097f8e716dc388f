"""Rule evaluate_random: the random classifier (uniform scores) through the same metrics -> metrics.json."""

import logging

from hzg import io, logs
from hzg.results import evaluation

logs.setup(snakemake.log[0])
result = evaluation.evaluate_random(
    snakemake.input.features, snakemake.params.n_trials, snakemake.params.evaluation
)
logging.info("random classifier, test split:\n%s", evaluation.describe(result))
io.write_json(snakemake.output[0], result)
