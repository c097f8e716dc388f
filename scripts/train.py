"""Rule train: one (model, loss, trial) -> checkpoint.pt, history.csv, scores.parquet."""

from pathlib import Path

from hzg import logs
from hzg.learn import training

logs.setup(snakemake.log[0])
spec = training.RunSpec(**snakemake.params.spec)
training.run(snakemake.input.features, spec, Path(snakemake.output.checkpoint).parent)
