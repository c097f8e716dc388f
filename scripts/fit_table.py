"""Rule fit_table: mu uncertainty, expected significance and limit per run, beside the binned counting."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from hzg import logs, reporting, tables  # noqa: E402

logs.setup(snakemake.log[0])
fits = {run: json.loads(Path(p).read_text()) for run, p in zip(snakemake.params.runs, snakemake.input.fits)}
metrics = {run: json.loads(Path(p).read_text()) for run, p in zip(snakemake.params.runs, snakemake.input.metrics)}
frame = reporting.fit_table(fits, metrics, snakemake.params.trial)
tables.write_table(frame, Path(snakemake.output[0]).with_suffix(""),
                   caption="Expected results of the binned profile-likelihood fit (Asimov, mu = 1)")
