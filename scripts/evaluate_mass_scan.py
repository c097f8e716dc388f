"""Rule evaluate_mass_scan: one run's AUC, significance and background correlation at every mass point."""

import logging

from hzg import io, logs
from hzg.learn.classifier import pin_scoring_threads
from hzg.results import evaluation, mass_scan

logs.setup(snakemake.log[0])
pin_scoring_threads(snakemake.threads)  # the same scores, to the last bit, in every run
p = snakemake.params
result = mass_scan.evaluate_run(
    snakemake.input.checkpoints,
    snakemake.input.features,
    p.sample_masses,
    p.nominal_mass,
    p.evaluation,
    p.title,
)
for point in result["points"]:
    logging.info(
        "m_H %g GeV: significance %.3f, AUC %.4f, background correlation %.3g",
        point["higgs_mass"],
        point["significance"]["mean"],
        point["auc"]["mean"],
        point["bkg_correlation"]["mean"],
    )
io.write_json(snakemake.output[0], evaluation.to_json_safe(result))
