"""Rule train: one (model, loss, trial) -> checkpoint.pt, history.csv, scores.parquet."""

from pathlib import Path

from hzg import logs
from hzg.learn import training

logs.setup(snakemake.log[0])
spec = training.RunSpec(**snakemake.params.spec)
# from the config, not the params: how often the job saves its state does not change its result (no rerun)
resume_every = snakemake.config["training"].get("resume_every", 1)
training.run(
    snakemake.input.features, spec, Path(snakemake.output.checkpoint).parent, resume_every=resume_every
)
