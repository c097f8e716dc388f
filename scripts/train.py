"""Rule train: one (model, loss, trial) -> checkpoint.pt, history.csv, scores.parquet."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import logs  # noqa: E402
from hzg.learn import training  # noqa: E402

logs.setup(snakemake.log[0])
spec = training.RunSpec(**snakemake.params.spec)
training.run(snakemake.input.features, spec, Path(snakemake.output.checkpoint).parent)
